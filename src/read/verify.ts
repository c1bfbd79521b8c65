// The verify operation: re-reads every file of a backup through the pipeline and compares size and hash with the
// index, walks the tree for entries the index does not list, and reports every problem found (manifest,
// missing, corrupt, extra, unreadable) instead of stopping at the first; and the same for every snapshot of a
// repository in one run, reading each shared file once.

import { join, resolve } from 'node:path';
import { isStatesnapError, type StatesnapError, throwIfAborted } from '../core/errors.js';
import { booleanOption, type RunOptions, requirePath, resolveRunOptions } from '../core/options.js';
import {
  type ErrorPolicy,
  newTally,
  type Pass,
  type Run,
  runPipeline,
  type SkipCounts,
  type Tally,
} from '../core/pipeline.js';
import { type ProgressReport, progressReporter, type VerifyProgress } from '../core/progress.js';
import { type FileProblem, formatMode, HASH_ALGORITHM, type RunFailure } from '../core/protocol.js';
import { walk } from '../core/walk.js';
import { type Warning, WarningLog, type WarningSummary } from '../core/warnings.js';
import { INDEX_FILE, MANIFEST_FILE, RESERVED_ROOT_NAMES } from '../format/manifest.js';
import { classifyRepositoryEntry, compareSnapshotIds, type SnapshotId } from '../format/snapshot-id.js';
import { isS3Location } from '../s3/location.js';
import type { S3Options } from '../s3/settings.js';
import { type BackupKind, type BackupReader, backupEntryPath, totalsMismatch } from './backup-reader.js';
import type { ManifestNote } from './manifest-notes.js';
import { openReader } from './open-reader.js';
import { type ReadSelection, SelectiveRead } from './read-selection.js';
import {
  type CompleteSnapshot,
  checkMarker,
  type RepositoryListing,
  readRepository,
} from './repository-listing.js';

/**
 * What is wrong with one path of a backup (the `problem` of each entry in `problems.list`). `mode`: its
 * permission bits differ from the index's (a restore gives it the index's, so someone changed one of them).
 */
export type VerifyProblem = 'manifest' | 'missing' | 'corrupt' | 'mode' | 'extra' | 'unreadable';

export interface VerifyOptions extends Pick<RunOptions<VerifyProgress>, 'threads' | 'signal'> {
  /** The backup directory (the one holding manifest.json), or a snapshot in object storage (`s3://…/<id>`). */
  backup: string;
  /** How object storage is reached (endpoint, region, profile, concurrency). @default the AWS environment */
  s3?: S3Options;
  /** Called (throttle it yourself) as files are checked. @default no-op */
  onProgress?: (progress: VerifyProgress) => void;
  /** Called for each problem as it is found. @default no-op */
  onProblem?: (problem: Warning) => void;
  /**
   * Read only the files the backup copied; the files it hard-linked from the previous one are checked from
   * their lstat (type, size, mode), their content having been read when the backup that copied them was
   * verified. Needs a canonically ordered index (every index since format 2); otherwise every file is read.
   * @default false
   */
  newOnly?: boolean;
}

export interface VerifyResult {
  command: 'verify';
  backup: string;
  /** Who made the backup, or null when its manifest could not be read. */
  kind: BackupKind | null;
  /** Content hashes were compared (statesnap backups); Oxios backups have none: files were read, not compared. */
  hashesChecked: boolean;
  hashAlgorithm: typeof HASH_ALGORITHM | null;
  /** Files and bytes read and found matching. */
  files: number;
  bytes: number;
  /**
   * Files checked from their lstat only, not read: linked files (`newOnly`), or, in a repository verify,
   * files whose inode an earlier snapshot of the run read.
   */
  filesNotRead: number;
  dirs: number;
  /** Entries not in the backup by design: recorded as skipped in the index, or links/specials in an Oxios tree. */
  skipped: number;
  /** The same entries: the count and each kind's. */
  skippedEntries: SkipCounts;
  /** True when everything matched. */
  ok: boolean;
  problems: WarningSummary;
  /**
   * What the manifest says that is not a problem (Oxios' restore accepts it): section counts that differ
   * from the tree, a section name that is not a folder, an odd created_at.
   */
  notes: ManifestNote[];
  /** The worker threads the run started: at most the `threads` option, and only as many as its batches kept busy. */
  threads: number;
  durationMs: number;
  /** 0 when everything matched, 1 otherwise. */
  exitCode: 0 | 1;
}

const PROBLEM_OF: Record<Exclude<FileProblem, RunFailure>, VerifyProblem> = {
  vanished: 'missing',
  corrupt: 'corrupt',
  changed: 'corrupt',
  'not-regular': 'corrupt',
  escaped: 'corrupt',
  unreadable: 'unreadable',
  mode: 'mode',
};

/** Every problem is recorded and the check goes on: verify lists them all. */
function recordEveryProblem(root: string): ErrorPolicy {
  return ({ rel, stage, problem, message }) => ({
    path: backupEntryPath(root, rel),
    problem: stage === 'walk' ? 'unreadable' : PROBLEM_OF[problem],
    // The worker's words are a backup's ("vanished before it was read"); in a backup being checked the
    // file is simply missing.
    message: stage !== 'walk' && problem === 'vanished' ? 'missing from the backup' : message,
  });
}

function isValidationError(error: unknown): boolean {
  return (
    isStatesnapError(error, 'ERR_MANIFEST_MISSING') ||
    isStatesnapError(error, 'ERR_MANIFEST_INVALID') ||
    isStatesnapError(error, 'ERR_MANIFEST_VERSION') ||
    isStatesnapError(error, 'ERR_INDEX_INVALID')
  );
}

/** Reads every file of the backup in full through the pool, comparing size and (where known) hash. */
function readEveryFile(
  run: Run,
  reader: BackupReader,
  tally: Tally,
  onProgress: (progress: ProgressReport<VerifyProgress>) => void,
  observe: Pass['observe'],
  selection: ReadSelection | null = null,
): Promise<Tally> {
  const totals = reader.extras?.totals;
  const source = reader.source({ refuseCaseCollisions: false, hashes: true });
  const everyProblem = recordEveryProblem(reader.root);
  return run.pass({
    source: selection ? selection.source(reader, source, run.warnings, (op) => observe?.file?.(op)) : source,
    destination: null,
    compareModes: true,
    policy: (problem) => {
      // A wrong mode is the name's, not the content's: other snapshots sharing the inode are judged apart.
      if (problem.stage === 'read' && problem.problem !== 'mode') selection?.failed(reader, problem.rel);
      return everyProblem(problem);
    },
    observe,
    tally,
    onProgress: (counts) =>
      onProgress({
        phase: 'verifying',
        filesDone: counts.filesDone,
        bytesDone: counts.bytesDone,
        filesTotal: totals?.files ?? counts.filesPlanned,
        bytesTotal: totals?.bytes ?? counts.bytesPlanned,
        totalKnown: totals !== undefined,
        estimate: null,
      }),
  });
}

// While the tree is listed, progress is reported once per this many files.
const CHECKING_PROGRESS_EVERY = 4096;

/**
 * Every entry of the tree except the backup's own files, by relative path ('' is the root): a directory's
 * permission bits, null for anything else.
 */
async function walkTree(
  reader: BackupReader,
  problems: WarningLog,
  signal: AbortSignal,
  onProgress: (progress: ProgressReport<VerifyProgress>) => void,
): Promise<Map<string, number | null>> {
  const entries = new Map<string, number | null>();
  const totals = reader.extras!.totals;
  let listed = 0;
  let listedBytes = 0;
  const report = () =>
    onProgress({
      phase: 'checking',
      filesDone: listed,
      bytesDone: listedBytes,
      filesTotal: totals.files,
      bytesTotal: totals.bytes,
      totalKnown: true,
      estimate: null,
    });
  report();
  await walk(
    reader.root,
    { tree: 'backup', isExcluded: () => false, reservedRootNames: RESERVED_ROOT_NAMES, signal },
    {
      dir: (dir) => {
        entries.set(dir.rel, dir.mode);
      },
      file: (file) => {
        entries.set(file.rel, null);
        listedBytes += file.size;
        if (++listed % CHECKING_PROGRESS_EVERY === 0) report();
        return undefined;
      },
      skip: (rel, kind) => {
        if (kind !== 'excluded' && kind !== 'reserved') entries.set(rel, null);
      },
      problem: (rel, problem, message) => {
        const path = join(reader.root, rel);
        if (problem === 'unsupported-name') problems.add(path, 'extra', `is not in the index: ${message}`);
        else problems.add(path, 'unreadable', message);
      },
    },
  );
  return entries;
}

/** A statesnap backup: every index entry against the tree, hashes compared, then what the index does not list. */
async function checkIndexed(
  run: Run,
  reader: BackupReader,
  tally: Tally,
  onProgress: (progress: ProgressReport<VerifyProgress>) => void,
  selection: ReadSelection | null,
): Promise<void> {
  const { root } = reader;
  const problems = run.warnings;
  const onDisk = await walkTree(reader, problems, run.signal, onProgress);
  try {
    await readEveryFile(
      run,
      reader,
      tally,
      onProgress,
      {
        dir: (dir) => {
          const mode = onDisk.get(dir.rel);
          onDisk.delete(dir.rel);
          const path = join(root, dir.rel);
          if (mode === undefined) problems.add(path, 'missing', 'directory is missing');
          else if (mode === null)
            problems.add(path, 'corrupt', 'is not a directory; the index says it is one');
          else if (mode !== dir.mode) {
            problems.add(path, 'mode', `mode is ${formatMode(mode)}, the index says ${formatMode(dir.mode)}`);
          }
        },
        file: (op) => {
          onDisk.delete(op.rel);
        },
      },
      selection,
    );
  } catch (error) {
    if (!isValidationError(error)) throw error;
    // The index cannot be trusted past this point: what it lists is unknown, so no file is called extra.
    problems.add(join(root, INDEX_FILE), 'manifest', (error as Error).message);
    return;
  }
  const notRead = selection?.notRead ?? { files: 0, bytes: 0 };
  const listed = {
    files: tally.filesPlanned + notRead.files,
    dirs: tally.dirs,
    bytes: tally.bytesPlanned + notRead.bytes,
  };
  const mismatch = totalsMismatch(reader.extras!, listed);
  if (mismatch !== null) problems.add(join(root, MANIFEST_FILE), 'manifest', mismatch);
  for (const rel of onDisk.keys()) problems.add(join(root, rel), 'extra', 'is not in the index');
}

/**
 * A snapshot in object storage: every file downloaded and its hash compared. An index that does not validate,
 * or an object that is missing or short, ends the check with that one problem (what follows is unknown).
 */
async function checkRemote(
  run: Run,
  reader: BackupReader,
  tally: Tally,
  onProgress: (progress: ProgressReport<VerifyProgress>) => void,
): Promise<void> {
  const problems = run.warnings;
  try {
    await readEveryFile(run, reader, tally, onProgress, undefined);
  } catch (error) {
    const damaged = isStatesnapError(error, 'ERR_BACKUP_CORRUPT');
    if (!damaged && !isValidationError(error)) throw error;
    const { path, message } = error as StatesnapError;
    problems.add(path ?? reader.root, damaged ? 'corrupt' : 'manifest', message);
    return;
  }
  const listed = { files: tally.filesPlanned, dirs: tally.dirs, bytes: tally.bytesPlanned };
  const mismatch = totalsMismatch(reader.extras!, listed);
  if (mismatch !== null) problems.add(backupEntryPath(reader.root, MANIFEST_FILE), 'manifest', mismatch);
}

/** Checks every file of `options.backup` against its manifest and index. */
export function verify(options: VerifyOptions): Promise<VerifyResult> {
  const newOnly = booleanOption('newOnly', options.newOnly, false);
  return verifyBackup(options, newOnly ? new SelectiveRead({ shareInodes: false, newOnly }) : null);
}

async function verifyBackup(options: VerifyOptions, selection: ReadSelection | null): Promise<VerifyResult> {
  const started = performance.now();
  const given = requirePath('backup', options.backup);
  const backupPath = isS3Location(given) ? given : resolve(given);
  const opts = resolveRunOptions({ ...options, onWarning: options.onProblem }, 'onProblem');
  throwIfAborted(opts.signal, backupPath);
  const report = progressReporter('verify', started, opts.onProgress);
  return runPipeline({ ...opts, path: backupPath }, async (run) => {
    const problems = run.warnings;
    let reader: BackupReader | null = null;
    try {
      reader = await openReader(backupPath, { s3: options.s3, signal: opts.signal });
    } catch (error) {
      if (!isValidationError(error)) throw error;
      const path = isS3Location(backupPath)
        ? ((error as StatesnapError).path ?? backupPath)
        : join(backupPath, MANIFEST_FILE);
      problems.add(path, 'manifest', (error as Error).message);
    }
    const tally = newTally();
    try {
      if (reader && !reader.local) await checkRemote(run, reader, tally, report);
      else if (reader?.extras) await checkIndexed(run, reader, tally, report, selection);
      else if (reader) await readEveryFile(run, reader, tally, report, undefined); // Oxios: no index
    } finally {
      reader?.close();
    }
    const ok = problems.count === 0;
    return {
      command: 'verify',
      backup: reader?.root ?? backupPath,
      kind: reader?.kind ?? null,
      hashesChecked: reader?.kind === 'statesnap',
      hashAlgorithm: reader?.kind === 'statesnap' ? HASH_ALGORITHM : null,
      files: tally.filesDone,
      bytes: tally.bytesDone,
      filesNotRead: selection?.notRead.files ?? 0,
      dirs: tally.dirs,
      skipped: tally.skipped.count,
      skippedEntries: tally.skipped,
      ok,
      problems: problems.summary(),
      notes: reader ? reader.notes() : [],
      threads: run.threadsStarted,
      durationMs: Math.round(performance.now() - started),
      exitCode: ok ? 0 : 1,
    };
  });
}

export interface VerifyRepositoryOptions extends Omit<VerifyOptions, 'backup'> {
  /** A snapshot repository: every complete snapshot in it is verified, oldest first. */
  repository: string;
}

/** One snapshot's verdict in a repository verify. */
export interface SnapshotVerdict {
  id: string;
  path: string;
  ok: boolean;
  /** Files read (and matching); files checked without reading (their inode read for an older snapshot, or linked). */
  files: number;
  filesNotRead: number;
  problems: WarningSummary;
}

export interface VerifyRepositoryResult {
  command: 'verify';
  repository: string;
  newOnly: boolean;
  /** True when every snapshot verified clean. */
  ok: boolean;
  /** Oldest first. */
  snapshots: SnapshotVerdict[];
  /** Files read and hashed in all: each distinct inode once. */
  filesRead: number;
  bytesRead: number;
  /** Files judged by the read of an older snapshot's file that is the same inode. */
  filesShared: number;
  /** Linked files checked from their lstat only (`newOnly`). */
  filesLinkedNotRead: number;
  durationMs: number;
  /** 0 when every snapshot matched, 1 otherwise. */
  exitCode: 0 | 1;
}

/** An entry named like a snapshot that the listing could not take as one (its manifest is unusable). */
interface DamagedSnapshot extends SnapshotId {
  path: string;
  reason: string;
}

/**
 * The complete snapshots and, in their place by id, every entry named like a snapshot that is not one: a
 * listing leaves those out, but a verify that did so would call a repository whose newest manifest rotted OK.
 */
function withDamagedSnapshots(listing: RepositoryListing): (CompleteSnapshot | DamagedSnapshot)[] {
  const damaged: DamagedSnapshot[] = [];
  for (const { name, reason } of listing.foreign) {
    const entry = classifyRepositoryEntry(name);
    if (entry.kind === 'snapshot') damaged.push({ ...entry.id, path: join(listing.path, name), reason });
  }
  return [...listing.snapshots, ...damaged].sort(compareSnapshotIds);
}

function damagedVerdict(snapshot: DamagedSnapshot): SnapshotVerdict {
  const problems = new WarningLog();
  problems.add(
    snapshot.path,
    'manifest',
    `is named like a snapshot but is not a complete one: ${snapshot.reason}`,
  );
  return {
    id: snapshot.id,
    path: snapshot.path,
    ok: false,
    files: 0,
    filesNotRead: 0,
    problems: problems.summary(),
  };
}

/**
 * Verifies every complete snapshot of a repository in one run, oldest first. A snapshot shares the files it
 * linked with the one before it, so a file's inode is read once, for the first snapshot that has it; each
 * later snapshot is judged by that read (a tampered shared file is reported in every snapshot that has it)
 * after an lstat of its own name (type, size, mode). Memory: one entry per distinct file read.
 */
export async function verifyRepository(options: VerifyRepositoryOptions): Promise<VerifyRepositoryResult> {
  const started = performance.now();
  const repository = resolve(requirePath('repository', options.repository));
  const newOnly = booleanOption('newOnly', options.newOnly, false);
  checkMarker(repository);
  const listing = readRepository(repository);
  const selection = new SelectiveRead({ shareInodes: true, newOnly });
  const snapshots: SnapshotVerdict[] = [];
  for (const snapshot of withDamagedSnapshots(listing)) {
    if ('reason' in snapshot) {
      snapshots.push(damagedVerdict(snapshot));
      continue;
    }
    selection.next();
    const result = await verifyBackup({ ...options, backup: snapshot.path }, selection);
    snapshots.push({
      id: snapshot.id,
      path: snapshot.path,
      ok: result.ok,
      files: result.files,
      filesNotRead: result.filesNotRead,
      problems: result.problems,
    });
  }
  const ok = snapshots.every((snapshot) => snapshot.ok);
  return {
    command: 'verify',
    repository,
    newOnly,
    ok,
    snapshots,
    filesRead: selection.readInAll.files,
    bytesRead: selection.readInAll.bytes,
    filesShared: selection.shared,
    filesLinkedNotRead: selection.linked,
    durationMs: Math.round(performance.now() - started),
    exitCode: ok ? 0 : 1,
  };
}
