// The first, validating read of a backup, before anything is created: the whole index is validated (or the
// Oxios tree walked), its totals checked against the manifest, and what will not be restored listed.

import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { assert, StatesnapError } from '../core/errors.js';
import type { IncludeRules } from '../core/excludes.js';
import type { ProgressReport, RestoreProgress } from '../core/progress.js';
import { type FileOp, fsPath, type SkippedKind } from '../core/protocol.js';
import type { EntrySink, PlannedDir } from '../core/walk.js';
import { WARNING_LIST_LIMIT, type WarningLog } from '../core/warnings.js';
import { MANIFEST_FILE } from '../format/manifest.js';
import { type BackupReader, backupEntryPath, totalsMismatch } from '../read/backup-reader.js';
import { selectingSink } from './partial.js';
import type { RestoreTarget } from './restore-target.js';

export interface SkippedEntries {
  count: number;
  byKind: Partial<Record<SkippedKind, number>>;
  /** The first entries only (see `count`), each by its absolute path in the backup. */
  list: Array<{ path: string; kind: SkippedKind }>;
}

/** What the first read of the backup found. */
export interface Scan {
  files: number;
  bytes: number;
  /** Directories in stream order (parents first), the root ('') included. */
  dirs: PlannedDir[];
  skipped: SkippedEntries;
}

// During `checking`, progress is reported once per this many files: the whole check of a 1M-file index
// takes seconds, and a call per entry would cost more than the check.
const CHECKING_PROGRESS_EVERY = 4096;

// Files from this size on are looked at on disk (one lstat each; a store holds few of them): a sparse one takes
// only its data blocks, and so does its restored copy, which keeps the holes. Smaller ones count in full.
const SPARSE_FROM_BYTES = 1 << 20;

/** The bytes of data a backup file (and so its restored copy) takes on disk. */
function dataBytes(root: string, op: FileOp): number {
  if (op.size < SPARSE_FROM_BYTES) return op.size;
  // Only an estimate for the room check: a file that is not there, not a file or not reachable fails a
  // later pass, which names it.
  try {
    const stats = lstatSync(fsPath(join(root, op.rel)), { throwIfNoEntry: false });
    return stats?.isFile() ? Math.min(op.size, stats.blocks * 512) : op.size;
  } catch {
    return op.size;
  }
}

export function backupCorrupt(path: string, message: string): StatesnapError {
  return new StatesnapError('ERR_BACKUP_CORRUPT', `backup ${path} ${message}`, { path });
}

export interface ScanOptions {
  refuseCaseCollisions: boolean;
  /** Where the backup will be restored: it sees every entry, to check it before anything is written. */
  target: Pick<RestoreTarget, 'planDir' | 'planFile'>;
  signal: AbortSignal;
  warnings: WarningLog;
  onProgress: (progress: ProgressReport<RestoreProgress>) => void;
  /** Sees every file of the backup as it is checked. @default none */
  observeFile?: (file: FileOp) => void;
  /** A partial restore's selection: only what it selects is planned and counted (the whole index is checked). */
  include: IncludeRules | null;
}

/** `sink`, with every entry it sees also counted into `listed` (what the manifest's totals must equal). */
function countingSink(sink: EntrySink, listed: { files: number; dirs: number; bytes: number }): EntrySink {
  return {
    dir: (dir) => {
      if (dir.rel !== '') listed.dirs++;
      sink.dir(dir);
    },
    file: (op, stats) => {
      listed.files++;
      listed.bytes += op.size;
      return sink.file(op, stats);
    },
    skip: (rel, kind) => sink.skip(rel, kind),
    problem: (rel, problem, message) => sink.problem(rel, problem, message),
  };
}

export async function scanBackup(reader: BackupReader, options: ScanOptions): Promise<Scan> {
  const scan: Scan = { files: 0, bytes: 0, dirs: [], skipped: { count: 0, byKind: {}, list: [] } };
  const totals = reader.extras?.totals;
  const report = (): void =>
    options.onProgress({
      phase: 'checking',
      filesDone: scan.files,
      bytesDone: scan.bytes,
      filesTotal: totals?.files ?? scan.files,
      bytesTotal: totals?.bytes ?? scan.bytes,
      totalKnown: totals !== undefined,
      estimate: null,
    });
  report();
  // Kept for the copy pass, which then replays these checked entries instead of reading the index again.
  const source = reader.source({
    refuseCaseCollisions: options.refuseCaseCollisions,
    hashes: false,
    keep: true,
  });
  const listed = { files: 0, dirs: 0, bytes: 0 };
  const planning: EntrySink = {
    dir: (dir) => {
      scan.dirs.push(dir);
      options.target.planDir(dir);
    },
    file: (op) => {
      options.target.planFile(op, reader.local ? dataBytes(reader.root, op) : op.size);
      scan.files++;
      scan.bytes += op.size;
      options.observeFile?.(op);
      if (scan.files % CHECKING_PROGRESS_EVERY === 0) report();
      return undefined;
    },
    skip: (rel, kind) => {
      assert(kind !== 'excluded' && kind !== 'reserved', `a backup reader skipped ${rel} as ${kind}`);
      const { skipped } = scan;
      skipped.count++;
      skipped.byKind[kind] = (skipped.byKind[kind] ?? 0) + 1;
      if (skipped.list.length < WARNING_LIST_LIMIT)
        skipped.list.push({ path: backupEntryPath(reader.root, rel), kind });
      // A statesnap backup recorded these when it was made; in an Oxios tree they are a surprise.
      if (!reader.extras)
        options.warnings.add(join(reader.root, rel), kind, `is a ${kind}: not followed, not restored`);
    },
    problem: (rel, _problem, message) => {
      throw backupCorrupt(backupEntryPath(reader.root, rel), `cannot be restored: ${message}`);
    },
  };
  await source.entries(countingSink(selectingSink(planning, options.include), listed), options.signal);
  const mismatch = reader.extras && totalsMismatch(reader.extras, listed);
  if (mismatch) {
    const path = backupEntryPath(reader.root, MANIFEST_FILE);
    throw new StatesnapError('ERR_MANIFEST_INVALID', `manifest ${path} ${mismatch}`, { path });
  }
  return scan;
}
