// Shows what a backup holds: sections, totals, hash algorithm, when and by which tool it was made, warnings.
// Works on Oxios-made backups too (no index): their totals are counted by walking the tree.

import { resolve } from 'node:path';
import { throwIfAborted } from '../core/errors.js';
import { requirePath, signalOption } from '../core/options.js';
import { walk } from '../core/walk.js';
import { formatOf, RESERVED_ROOT_NAMES, type SkippedCounts } from '../format/manifest.js';
import { readManifest } from '../format/manifest-schema.js';
import { isS3Location } from '../s3/location.js';
import type { S3Options } from '../s3/settings.js';
import { type ManifestNote, manifestNotes } from './manifest-notes.js';

export interface InspectOptions {
  /** The backup directory (the one holding manifest.json), or a snapshot in object storage (`s3://…/<id>`). */
  backup: string;
  /** How object storage is reached (endpoint, region, profile). @default the AWS environment */
  s3?: S3Options;
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
  /** A snapshot in object storage: its data objects, the bytes they hold, and what its run uploaded. */
  storage?: { objects: number; objectBytes: number; bytesUploaded: number; base: string | null };
  /** Always 0: a backup that cannot be inspected is an error. Every command's result carries one. */
  exitCode: 0;
}

/** A snapshot in object storage: everything comes from its manifest (one GET after the repository checks). */
async function inspectSnapshot(location: string, options: InspectOptions): Promise<InspectResult> {
  const { openS3Snapshot } = await import('./s3-reader.js');
  const snapshot = await openS3Snapshot(location, { ...options.s3, signal: options.signal });
  snapshot.close();
  const { manifest, extras } = snapshot;
  const { s3 } = extras;
  return {
    command: 'inspect',
    backup: snapshot.root,
    version: manifest.version,
    createdAt: manifest.created_at,
    appVersion: manifest.oxios_version,
    sections: manifest.sections,
    notes: snapshot.notes(),
    tool: { name: extras.tool, version: extras.tool_version },
    format: extras.format,
    ...extras.totals,
    totalsFrom: 'manifest',
    hashAlgorithm: extras.hash_algorithm,
    indexEntries: s3.index.entries,
    skipped: extras.skipped,
    warnings: { count: extras.warnings.count, byProblem: extras.warnings.by_problem },
    storage: {
      objects: s3.objects.length,
      objectBytes: s3.objects.reduce((sum, object) => sum + object.size, 0),
      bytesUploaded: s3.bytes_uploaded,
      base: extras.base?.id ?? null,
    },
    exitCode: 0,
  };
}

export async function inspect(options: InspectOptions): Promise<InspectResult> {
  const given = requirePath('backup', options.backup);
  const signal = signalOption(options.signal);
  if (isS3Location(given)) {
    throwIfAborted(signal, given);
    return inspectSnapshot(given, { ...options, signal });
  }
  const backupDir = resolve(given);
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
