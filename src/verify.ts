// The verify operation: re-reads every file of a backup through the worker pool and compares size and hash
// with the index, walks the tree for entries the index does not list, and reports every problem found
// (manifest, missing, corrupt, extra, unreadable) instead of stopping at the first.

import { join, resolve } from 'node:path';
import { type BackupPass, runBackupPass } from './backup-pass.js';
import {
  type BackupKind,
  type BackupSource,
  openBackup,
  sectionProblems,
  totalsMismatch,
} from './backup-reader.js';
import { abortError, isStatesnapError } from './errors.js';
import { INDEX_FILE, MANIFEST_FILE, META_DIR } from './manifest.js';
import { callbackOption, integerOption, requirePath, signalOption } from './options.js';
import { walk } from './planner.js';
import { defaultThreads, WorkerPool } from './pool.js';
import { type FileOutcome, type FileProblem, HASH_ALGORITHM } from './types.js';
import { type Warning, WarningLog, type WarningSummary } from './warnings.js';

/** What is wrong with one path of a backup (the `problem` of each entry in `problems.list`). */
export type VerifyProblem = 'manifest' | 'missing' | 'corrupt' | 'extra' | 'unreadable';

export interface VerifyProgress {
  filesDone: number;
  bytesDone: number;
  filesTotal: number;
  bytesTotal: number;
  /** False while the total is still growing (an Oxios tree is being walked). */
  totalKnown: boolean;
}

export interface VerifyOptions {
  /** The backup directory (the one holding manifest.json). */
  backup: string;
  /** Worker threads. @default os.availableParallelism() (at most 16) */
  threads?: number;
  signal?: AbortSignal;
  /** Called (throttle it yourself) as files are checked. @default no-op */
  onProgress?: (progress: VerifyProgress) => void;
  /** Called for each problem as it is found. @default no-op */
  onProblem?: (problem: Warning) => void;
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
  dirs: number;
  /** Entries not in the backup by design: recorded as skipped in the index, or links/specials in an Oxios tree. */
  skipped: number;
  /** True when everything matched. */
  ok: boolean;
  problems: WarningSummary;
  threads: number;
  durationMs: number;
  /** 0 when everything matched, 1 otherwise. */
  exitCode: 0 | 1;
}

const PROBLEM_OF: Record<FileProblem, VerifyProblem> = {
  vanished: 'missing',
  corrupt: 'corrupt',
  changed: 'corrupt',
  'not-regular': 'corrupt',
  escaped: 'corrupt',
  unreadable: 'unreadable',
  'dest-failed': 'unreadable',
};

function isValidationError(error: unknown): boolean {
  return (
    isStatesnapError(error, 'ERR_MANIFEST_MISSING') ||
    isStatesnapError(error, 'ERR_MANIFEST_INVALID') ||
    isStatesnapError(error, 'ERR_MANIFEST_VERSION') ||
    isStatesnapError(error, 'ERR_INDEX_INVALID')
  );
}

interface Check {
  source: BackupSource;
  pool: WorkerPool;
  threads: number;
  signal: AbortSignal;
  problems: WarningLog;
  progress: VerifyProgress;
  onProgress: (progress: VerifyProgress) => void;
  /** Directories and skipped entries seen (files are counted by their outcomes). */
  dirs: number;
  skipped: number;
}

function recordOutcome(check: Check, outcome: FileOutcome): void {
  if (outcome.ok) {
    check.progress.filesDone++;
    check.progress.bytesDone += outcome.size;
  } else {
    // The worker's words are a backup's ("vanished before it was read"); in a backup being checked the
    // file is simply missing.
    const message = outcome.problem === 'vanished' ? 'missing from the backup' : outcome.message;
    check.problems.add(join(check.source.root, outcome.rel), PROBLEM_OF[outcome.problem], message);
  }
}

/** Reads every file of the stream in full through the pool, comparing size and (where known) hash. */
function hashEveryFile(
  check: Check,
  hooks: Pick<BackupPass, 'dir' | 'file' | 'skipped' | 'problem'>,
): Promise<void> {
  const { source } = check;
  return runBackupPass({
    source,
    pool: check.pool,
    threads: check.threads,
    signal: check.signal,
    refuseCaseCollisions: false,
    makeTask: (files) => ({
      kind: 'hash',
      root: source.root,
      files,
      confineTo: source.confineTo,
      readContent: true,
    }),
    onOutcome: (outcome) => recordOutcome(check, outcome),
    onBatch: () => check.onProgress({ ...check.progress }),
    ...hooks,
  });
}

/** Every entry of the tree except the backup's own files, by relative path, with whether it is a directory. */
async function walkTree(check: Check): Promise<Map<string, boolean>> {
  const entries = new Map<string, boolean>();
  await walk(
    check.source.root,
    { isExcluded: () => false, reservedRootNames: new Set([MANIFEST_FILE, META_DIR]), signal: check.signal },
    {
      dir: (dir) => {
        if (dir.rel !== '') entries.set(dir.rel, true);
      },
      file: (file) => {
        entries.set(file.rel, false);
        return undefined;
      },
      skip: (rel, kind) => {
        if (kind !== 'excluded' && kind !== 'reserved') entries.set(rel, false);
      },
      problem: (rel, problem, message) => {
        const path = join(check.source.root, rel);
        if (problem === 'unsupported-name')
          check.problems.add(path, 'extra', `is not in the index: ${message}`);
        else check.problems.add(path, 'unreadable', message);
      },
    },
  );
  return entries;
}

/** A statesnap backup: every index entry against the tree, hashes compared, then what the index does not list. */
async function checkIndexed(check: Check): Promise<void> {
  const { source, problems } = check;
  const extras = source.extras!;
  const onDisk = await walkTree(check);
  const declared = { files: 0, dirs: 0, bytes: 0 };
  try {
    await hashEveryFile(check, {
      dir: (dir) => {
        if (dir.rel === '') return;
        declared.dirs++;
        check.dirs++;
        const isDir = onDisk.get(dir.rel);
        onDisk.delete(dir.rel);
        if (isDir === undefined) problems.add(join(source.root, dir.rel), 'missing', 'directory is missing');
        else if (!isDir)
          problems.add(join(source.root, dir.rel), 'corrupt', 'is not a directory; the index says it is one');
      },
      file: (op) => {
        declared.files++;
        declared.bytes += op.size;
        onDisk.delete(op.rel);
      },
      skipped: () => {
        check.skipped++;
      },
      problem: () => {},
    });
  } catch (error) {
    if (!isValidationError(error)) throw error;
    // The index cannot be trusted past this point: what it lists is unknown, so no file is called extra.
    problems.add(join(source.root, INDEX_FILE), 'manifest', (error as Error).message);
    return;
  }
  const mismatch = totalsMismatch(extras, declared);
  if (mismatch !== null) problems.add(join(source.root, MANIFEST_FILE), 'manifest', mismatch);
  for (const rel of onDisk.keys()) problems.add(join(source.root, rel), 'extra', 'is not in the index');
}

/** An Oxios backup has no index: section entry counts against the tree, and every file read in full. */
async function checkOxios(check: Check): Promise<void> {
  const { source, problems } = check;
  for (const missing of sectionProblems(source)) problems.add(missing.path, 'missing', missing.message);
  await hashEveryFile(check, {
    dir: (dir) => {
      if (dir.rel !== '') check.dirs++;
    },
    file: (op) => {
      check.progress.filesTotal++;
      check.progress.bytesTotal += op.size;
    },
    skipped: () => {
      check.skipped++;
    },
    problem: (rel, _problem, message) => problems.add(join(source.root, rel), 'unreadable', message),
  });
}

/** Checks every file of `options.backup` against its manifest and index. */
export async function verify(options: VerifyOptions): Promise<VerifyResult> {
  const started = performance.now();
  const backupPath = resolve(requirePath('backup', options.backup));
  const threads = integerOption('threads', options.threads, defaultThreads(), 1, 256);
  const signal = signalOption(options.signal);
  const onProgress = callbackOption('onProgress', options.onProgress, () => {});
  const problems = new WarningLog(callbackOption('onProblem', options.onProblem, () => {}));
  if (signal.aborted) throw abortError(signal, backupPath);
  let source: BackupSource | null = null;
  try {
    source = openBackup(backupPath);
  } catch (error) {
    if (!isValidationError(error)) throw error;
    problems.add(join(backupPath, MANIFEST_FILE), 'manifest', (error as Error).message);
  }
  let check: Check | null = null;
  if (source) {
    const totals = source.extras?.totals;
    check = {
      source,
      pool: new WorkerPool(threads),
      threads,
      signal,
      problems,
      progress: {
        filesDone: 0,
        bytesDone: 0,
        filesTotal: totals?.files ?? 0,
        bytesTotal: totals?.bytes ?? 0,
        totalKnown: totals !== undefined,
      },
      onProgress,
      dirs: 0,
      skipped: 0,
    };
    try {
      if (source.extras) await checkIndexed(check);
      else await checkOxios(check);
    } finally {
      await check.pool.close();
    }
  }
  const ok = problems.count === 0;
  return {
    command: 'verify',
    backup: source?.root ?? backupPath,
    kind: source?.kind ?? null,
    hashesChecked: source?.kind === 'statesnap',
    hashAlgorithm: source?.kind === 'statesnap' ? HASH_ALGORITHM : null,
    files: check?.progress.filesDone ?? 0,
    bytes: check?.progress.bytesDone ?? 0,
    dirs: check?.dirs ?? 0,
    skipped: check?.skipped ?? 0,
    ok,
    problems: problems.summary(),
    threads,
    durationMs: Math.round(performance.now() - started),
    exitCode: ok ? 0 : 1,
  };
}
