// What a backup's manifest says that is worth knowing but never a reason to refuse the backup: Oxios' own
// restore accepts any of these, so statesnap shows them (inspect, verify, restore results) and goes on.
// A section count differs from the tree because Oxios counts symlinks it does not copy and a live store
// changes between the count and the copy; Oxios never uses a section name or created_at when it restores.

import { join } from 'node:path';
import { quoted } from '../core/errors.js';
import { WARNING_LIST_LIMIT } from '../core/warnings.js';
import { MANIFEST_FILE, type Manifest, unsafeRelativePathReason } from '../format/manifest.js';
import { countSectionInBackup } from '../format/sections.js';

/**
 * `section-count`: a section declares another number of entries than the backup holds (counted as Oxios
 * counts them); `section-name`: a section name that is not a relative folder of the store (never used as a
 * path); `created-at`: `created_at` is empty or not an RFC 3339 time.
 */
export type ManifestNoteKind = 'section-count' | 'section-name' | 'created-at';

export interface ManifestNote {
  /** The section's folder in the backup, or the manifest for what concerns the manifest alone. */
  path: string;
  note: ManifestNoteKind;
  message: string;
}

/** Counts as people read them everywhere statesnap prints one: `1,358`. */
function count(n: number): string {
  return n.toLocaleString('en-US');
}

const RFC_3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

function createdAtNote(createdAt: string): string | null {
  if (createdAt === '') return 'created_at is empty: when the backup was made is unknown';
  if (RFC_3339.test(createdAt) && !Number.isNaN(Date.parse(createdAt))) return null;
  return `created_at ${quoted(createdAt)} is not an RFC 3339 time`;
}

/** The notes about the manifest of the backup at `root` (a real path), the first WARNING_LIST_LIMIT of them. */
export function manifestNotes(root: string, manifest: Manifest): ManifestNote[] {
  const manifestPath = join(root, MANIFEST_FILE);
  const notes: ManifestNote[] = [];
  const createdAt = createdAtNote(manifest.created_at);
  if (createdAt !== null) notes.push({ path: manifestPath, note: 'created-at', message: createdAt });
  for (const { name, entry_count: declared } of manifest.sections) {
    if (notes.length >= WARNING_LIST_LIMIT) break;
    const found = countSectionInBackup(root, name);
    if (found === null) {
      notes.push({
        path: manifestPath,
        note: 'section-name',
        message: `section ${quoted(name)} ${unsafeRelativePathReason(name)}: not a folder of the store, not counted`,
      });
    } else if (found !== declared) {
      notes.push({
        path: join(root, name),
        note: 'section-count',
        message: `section ${quoted(name)} declares ${count(declared)} entries; the backup holds ${count(found)}`,
      });
    }
  }
  return notes;
}
