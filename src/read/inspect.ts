// Shows what a backup holds: sections, totals, hash algorithm, when and by which tool it was made, warnings.
// Works on Oxios-made backups too (no index): their totals are counted by walking the tree.

import { resolve } from 'node:path';
import { throwIfAborted } from '../core/errors.js';
import { requirePath, signalOption } from '../core/options.js';
import { walk } from '../core/walk.js';
import { formatOf, RESERVED_ROOT_NAMES, type SkippedCounts } from '../format/manifest.js';
import { readManifest } from '../format/manifest-schema.js';
import { type ManifestNote, manifestNotes } from './manifest-notes.js';
import { resolveBackupPath } from './repository-listing.js';

export interface InspectOptions {
  /** The backup directory (the one holding manifest.json). */
  backup: string;
  signal?: AbortSignal;
}

export interface InspectResult {
  command: 'inspect';
  backup: string;
  version: number;
  createdAt: string;
  /** The manifest's `oxios_version`: the app version recorded by whoever made the backup. */
  appVersion: string;
  /** `statesnap` with its version, or null for a backup made by Oxios itself. */
  tool: { name: string; version: string } | null;
  /** The format of statesnap's index and manifest extras (docs/format.md), or null for an Oxios backup. */
  format: number | null;
  sections: Array<{ name: string; entry_count: number }>;
  files: number;
  dirs: number;
  bytes: number;
  /** Where the totals come from: the manifest (statesnap backups) or a walk of the tree (Oxios backups). */
  totalsFrom: 'manifest' | 'walk';
  hashAlgorithm: string | null;
  indexEntries: number | null;
  skipped: SkippedCounts | null;
  warnings: { count: number; byProblem: Record<string, number> } | null;
  /**
   * What the manifest says that does not stop a restore: section counts that differ from the tree (Oxios
   * counts symlinks it does not copy), a section name that is not a folder, an empty or odd created_at.
   */
  notes: ManifestNote[];
  /** Always 0: a backup that cannot be inspected is an error. Every command's result carries one. */
  exitCode: 0;
}

export async function inspect(options: InspectOptions): Promise<InspectResult> {
  const backupDir = resolve(resolveBackupPath(requirePath('backup', options.backup)));
  const signal = signalOption(options.signal);
  // An aborted signal stops every operation the same way, even one that would only read a manifest.
  throwIfAborted(signal, backupDir);
  const manifest = readManifest(backupDir);
  const extras = manifest.statesnap;
  const base = {
    command: 'inspect' as const,
    backup: backupDir,
    version: manifest.version,
    createdAt: manifest.created_at,
    appVersion: manifest.oxios_version,
    sections: manifest.sections,
    notes: manifestNotes(backupDir, manifest),
  };
  if (extras) {
    return {
      ...base,
      tool: { name: extras.tool, version: extras.tool_version },
      format: formatOf(extras),
      ...extras.totals,
      totalsFrom: 'manifest',
      hashAlgorithm: extras.hash_algorithm,
      indexEntries: extras.index.entries,
      skipped: extras.skipped,
      warnings: { count: extras.warnings.count, byProblem: extras.warnings.by_problem },
      exitCode: 0,
    };
  }
  const totals = { files: 0, dirs: 0, bytes: 0 };
  await walk(
    backupDir,
    { tree: 'backup', isExcluded: () => false, reservedRootNames: RESERVED_ROOT_NAMES, signal },
    {
      dir: (dir) => {
        if (dir.rel !== '') totals.dirs++;
      },
      file: (file) => {
        totals.files++;
        totals.bytes += file.size;
        return undefined;
      },
      skip: () => {},
      problem: () => {},
    },
  );
  return {
    ...base,
    tool: null,
    format: null,
    ...totals,
    totalsFrom: 'walk',
    hashAlgorithm: null,
    indexEntries: null,
    skipped: null,
    warnings: null,
    exitCode: 0,
  };
}
