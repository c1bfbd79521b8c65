// The restore operation: checks a backup completely before the target changes, then builds the restored tree
// in a staging directory beside the target and swaps it in (replace), or writes the backup's files over the
// target through temp files, never through a symlink found there and never outside it (merge).

import { lstatSync, mkdirSync, type Stats, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { type BackupPass, runBackupPass } from './backup-pass.js';
import {
  type BackupKind,
  type BackupSource,
  openBackup,
  sectionProblems,
  streamEntries,
  totalsMismatch,
} from './backup-reader.js';
import { abortError, describeCause, StatesnapError } from './errors.js';
import { applyDirectoryAttributes, discard, entryExists } from './finalizer.js';
import { Flusher } from './flush.js';
import { MANIFEST_FILE } from './manifest.js';
import {
  booleanOption,
  callbackOption,
  choiceOption,
  integerOption,
  requirePath,
  signalOption,
} from './options.js';
import { type PlannedDir, resolveBackupPaths } from './planner.js';
import { defaultThreads, WorkerPool } from './pool.js';
import { type RecoveryAction, recoverTarget, rollbackPathFor, swapIn } from './restore-swap.js';
import { siblingPath } from './siblings.js';
import type { CopyTask, FileOp, FileOutcome, FileProblem, SkippedKind } from './types.js';
import { WARNING_LIST_LIMIT, type Warning, WarningLog, type WarningSummary } from './warnings.js';

export type RestoreMode = 'replace' | 'merge';

export interface RestoreProgress {
  /**
   * `checking`: the index is validated (or an Oxios tree walked), nothing read yet; `verifying`: merge mode's
   * check of every backup file before the target changes; `copying`; `finishing`: directory attributes,
   * flush, swap.
   */
  phase: 'checking' | 'verifying' | 'copying' | 'finishing';
  /** Files and bytes done in this phase (`checking`: entries validated so far). */
  filesDone: number;
  bytesDone: number;
  filesTotal: number;
  bytesTotal: number;
  /** False while `checking` an Oxios tree, whose totals are known only once it is walked. */
  totalKnown: boolean;
}

// During `checking`, progress is reported once per this many files: the whole check of a 1M-file index
// takes seconds, and a call per entry would cost more than the check.
const CHECKING_PROGRESS_EVERY = 4096;

export interface RestoreOptions {
  /** The backup directory (the one holding manifest.json): made by statesnap or by Oxios. */
  backup: string;
  /** The state directory to restore; created if missing. Must not be a symlink or overlap the backup. */
  target: string;
  /**
   * `replace`: the target becomes exactly the backup, swapped in atomically, the old one kept as a rollback
   * copy. `merge`: the backup's files are written over the target; files only in the target stay.
   * @default 'replace'
   */
  mode?: RestoreMode;
  /** Check every file's content hash before the target changes (statesnap backups). @default true */
  verify?: boolean;
  /** Restore a backup that declares no entries (it would empty the target in replace mode). @default false */
  allowEmpty?: boolean;
  /** Keep the previous target as `<target>.pre-restore-<timestamp>` (replace mode). @default true */
  keep?: boolean;
  /** Worker threads. @default os.availableParallelism() (at most 16) */
  threads?: number;
  /** Flush the restored files to stable storage before they replace the target. @default true */
  sync?: boolean;
  signal?: AbortSignal;
  /** Called (throttle it yourself) as files are verified and copied. @default no-op */
  onProgress?: (progress: RestoreProgress) => void;
  /** Called for each problem that does not stop the restore (a symlink skipped in an Oxios backup). @default no-op */
  onWarning?: (warning: Warning) => void;
}

interface ResolvedRestoreOptions {
  backup: string;
  target: string;
  mode: RestoreMode;
  verify: boolean;
  allowEmpty: boolean;
  keep: boolean;
  threads: number;
  sync: boolean;
  signal: AbortSignal;
  onProgress: (progress: RestoreProgress) => void;
  onWarning: (warning: Warning) => void;
}

export interface SkippedEntries {
  count: number;
  byKind: Partial<Record<SkippedKind, number>>;
  /** The first entries only (see `count`), each by its absolute path in the backup. */
  list: Array<{ path: string; kind: SkippedKind }>;
}

export interface RestoreResult {
  command: 'restore';
  backup: string;
  target: string;
  mode: RestoreMode;
  /** Who made the backup: statesnap (hashed index) or Oxios (plain tree, no hashes). */
  kind: BackupKind;
  /** Every file's size and content hash were checked against the index before the target changed. */
  verified: boolean;
  files: number;
  dirs: number;
  bytes: number;
  /** Entries not restored: recorded as skipped in the index, or links/specials found in an Oxios tree. */
  skipped: SkippedEntries;
  /** Where the previous target was kept, or null (there was none, it was removed with `keep: false`, or merge). */
  rollback: string | null;
  createdTarget: boolean;
  /** What was recovered first from an earlier restore of this target that was killed. */
  recovered: RecoveryAction[];
  warnings: WarningSummary;
  threads: number;
  synced: boolean;
  durationMs: number;
  /** 0, or 3 when the restore completed with warnings. */
  exitCode: 0 | 3;
}

function resolveRestoreOptions(options: RestoreOptions): ResolvedRestoreOptions {
  return {
    backup: requirePath('backup', options.backup),
    target: requirePath('target', options.target),
    mode: choiceOption('mode', options.mode, ['replace', 'merge'] as const, 'replace'),
    verify: booleanOption('verify', options.verify, true),
    allowEmpty: booleanOption('allowEmpty', options.allowEmpty, false),
    keep: booleanOption('keep', options.keep, true),
    threads: integerOption('threads', options.threads, defaultThreads(), 1, 256),
    sync: booleanOption('sync', options.sync, true),
    signal: signalOption(options.signal),
    onProgress: callbackOption('onProgress', options.onProgress, () => {}),
    onWarning: callbackOption('onWarning', options.onWarning, () => {}),
  };
}

/** What the first, validating read of the backup found. */
interface Scan {
  files: number;
  bytes: number;
  /** Directories in stream order (parents first), the root ('') included. */
  dirs: PlannedDir[];
  skipped: SkippedEntries;
}

interface Run {
  opts: ResolvedRestoreOptions;
  source: BackupSource;
  target: string;
  scan: Scan;
  pool: WorkerPool;
  warnings: WarningLog;
}

function targetInvalid(target: string, message: string): StatesnapError {
  return new StatesnapError('ERR_TARGET_INVALID', `cannot restore into ${target}: ${message}`, {
    path: target,
  });
}

function targetWriteError(path: string, error: unknown): StatesnapError {
  if (error instanceof StatesnapError) return error;
  return new StatesnapError('ERR_TARGET_WRITE', `cannot write ${path}: ${describeCause(error)}`, {
    path,
    cause: error,
  });
}

/** Whether the target exists; refuses one that is a symlink, not a directory, or (replace) a mount point. */
function inspectTarget(target: string, mode: RestoreMode): boolean {
  let stats: Stats | undefined;
  try {
    stats = lstatSync(target, { throwIfNoEntry: false });
  } catch (error) {
    throw targetInvalid(target, describeCause(error));
  }
  if (stats === undefined) return false;
  if (stats.isSymbolicLink()) {
    throw targetInvalid(target, 'it is a symlink; restore into the directory it points to instead');
  }
  if (!stats.isDirectory()) throw targetInvalid(target, 'it is not a directory');
  if (mode === 'replace' && lstatSync(dirname(target)).dev !== stats.dev) {
    throw targetInvalid(target, 'it is a mount point, which replace mode cannot rename; use --mode merge');
  }
  return true;
}

function refuseEmpty(source: BackupSource, allowEmpty: boolean): void {
  if (allowEmpty) return;
  const empty = source.extras ? source.extras.totals.files === 0 : source.manifest.sections.length === 0;
  if (!empty) return;
  const what = source.extras ? 'holds no files' : 'declares no sections';
  throw new StatesnapError(
    'ERR_BACKUP_EMPTY',
    `backup ${source.root} ${what}; refusing to restore an empty backup over live state (use --allow-empty)`,
    { path: source.root },
  );
}

function backupCorrupt(path: string, message: string): StatesnapError {
  return new StatesnapError('ERR_BACKUP_CORRUPT', `backup ${path} ${message}`, { path });
}

/**
 * The first read of the backup, before anything is created: the whole index is validated (or the Oxios tree
 * walked), totals are checked against the manifest, and what will not be restored is listed.
 */
async function scanBackup(
  source: BackupSource,
  opts: ResolvedRestoreOptions,
  refuseCaseCollisions: boolean,
  warnings: WarningLog,
): Promise<Scan> {
  const scan: Scan = { files: 0, bytes: 0, dirs: [], skipped: { count: 0, byKind: {}, list: [] } };
  const totals = source.extras?.totals;
  const report = (): void =>
    opts.onProgress({
      phase: 'checking',
      filesDone: scan.files,
      bytesDone: scan.bytes,
      filesTotal: totals?.files ?? scan.files,
      bytesTotal: totals?.bytes ?? scan.bytes,
      totalKnown: totals !== undefined,
    });
  report();
  await streamEntries(
    source,
    {
      dir: (dir) => {
        scan.dirs.push(dir);
      },
      file: (op) => {
        scan.files++;
        scan.bytes += op.size;
        if (scan.files % CHECKING_PROGRESS_EVERY === 0) report();
        return undefined;
      },
      skipped: (rel, kind) => {
        const { skipped } = scan;
        skipped.count++;
        skipped.byKind[kind] = (skipped.byKind[kind] ?? 0) + 1;
        if (skipped.list.length < WARNING_LIST_LIMIT)
          skipped.list.push({ path: join(source.root, rel), kind });
        // A statesnap backup recorded these when it was made; in an Oxios tree they are a surprise.
        if (!source.extras)
          warnings.add(join(source.root, rel), kind, `is a ${kind}: not followed, not restored`);
      },
      problem: (rel, _problem, message) => {
        throw backupCorrupt(join(source.root, rel), `cannot be restored: ${message}`);
      },
    },
    { refuseCaseCollisions, signal: opts.signal },
  );
  const mismatch = source.extras && totalsMismatch(source.extras, { ...scan, dirs: scan.dirs.length - 1 });
  if (mismatch) {
    const path = join(source.root, MANIFEST_FILE);
    throw new StatesnapError('ERR_MANIFEST_INVALID', `manifest ${path} ${mismatch}`, { path });
  }
  return scan;
}

const PROBLEM_WORDS: Record<FileProblem, string> = {
  vanished: 'is missing',
  changed: 'changed while it was read',
  'not-regular': 'is not a regular file',
  escaped: 'lies outside the backup',
  unreadable: 'cannot be read',
  corrupt: 'is corrupt',
  'dest-failed': 'cannot be written',
};

/** The error that stops a restore for a file the workers could not verify or copy. */
function outcomeError(run: Run, outcome: Extract<FileOutcome, { ok: false }>): StatesnapError {
  if (outcome.problem === 'dest-failed') {
    const path = join(run.target, outcome.rel);
    return new StatesnapError('ERR_TARGET_WRITE', `cannot restore ${path}: ${outcome.message}`, { path });
  }
  const path = join(run.source.root, outcome.rel);
  const code = outcome.problem === 'unreadable' ? 'ERR_FILE_UNREADABLE' : 'ERR_BACKUP_CORRUPT';
  return new StatesnapError(
    code,
    `backup file ${path} ${PROBLEM_WORDS[outcome.problem]}: ${outcome.message}`,
    {
      path,
    },
  );
}

/** What every pass of one restore over the backup shares. */
function passOf(run: Run): Pick<BackupPass, 'source' | 'pool' | 'threads' | 'signal' | 'problem'> {
  return {
    source: run.source,
    pool: run.pool,
    threads: run.opts.threads,
    signal: run.opts.signal,
    problem: (rel, _problem, message) => {
      throw backupCorrupt(join(run.source.root, rel), `cannot be restored: ${message}`);
    },
  };
}

/** Where a restore announces its phases and counts. */
function progressReporter(run: Run, phase: RestoreProgress['phase']) {
  const progress: RestoreProgress = {
    phase,
    filesDone: 0,
    bytesDone: 0,
    filesTotal: run.scan.files,
    bytesTotal: run.scan.bytes,
    totalKnown: true,
  };
  run.opts.onProgress({ ...progress });
  return {
    outcome(outcome: FileOutcome): void {
      if (!outcome.ok) throw outcomeError(run, outcome);
      progress.filesDone++;
      progress.bytesDone += outcome.size;
    },
    batch(): void {
      run.opts.onProgress({ ...progress });
    },
    finishing(): void {
      run.opts.onProgress({ ...progress, phase: 'finishing' });
    },
  };
}

/**
 * Copies every file of the backup into `destRoot` (checking size, and the hash unless `verify` is off, on the
 * way) and returns the directories seen, for their attributes.
 */
async function copyPass(
  run: Run,
  dest: {
    root: string;
    writeMode: CopyTask['writeMode'];
    confineTo: string | null;
    makeDirs: boolean;
    refuseCaseCollisions: boolean;
    flusher: Flusher;
  },
): Promise<PlannedDir[]> {
  const { opts, source } = run;
  const dirs: PlannedDir[] = [];
  const progress = progressReporter(run, 'copying');
  await runBackupPass({
    ...passOf(run),
    refuseCaseCollisions: dest.refuseCaseCollisions,
    makeTask: (files) => ({
      kind: 'copy',
      sourceRoot: source.root,
      destRoot: dest.root,
      files,
      confineSourceTo: source.confineTo,
      confineDestTo: dest.confineTo,
      writeMode: dest.writeMode,
      attributesFrom: source.extras ? 'op' : 'source',
      // A backup does not change under a restore: one more read tells a flaky read from a file being edited.
      changedRetries: 1,
      expectSize: true,
    }),
    onOutcome: progress.outcome,
    onBatch: (result) => {
      dest.flusher.noteWritten(result.bytes);
      progress.batch();
    },
    dir: (dir) => {
      if (dest.makeDirs && dir.rel !== '') {
        const path = join(dest.root, dir.rel);
        try {
          mkdirSync(path, { mode: 0o700 });
        } catch (error) {
          throw targetWriteError(join(run.target, dir.rel), error);
        }
      }
      dirs.push(dir);
    },
    file: (op: FileOp) => {
      if (!opts.verify) op.hash = undefined;
    },
  });
  progress.finishing();
  return dirs;
}

/**
 * Whether names that differ only by case are the same file in `dir` (macOS, Windows shares, ext4 casefold).
 * Such a filesystem cannot hold `A.json` and `a.json` side by side, so a backup holding both is refused.
 */
function isCaseInsensitive(dir: string): boolean {
  const probe = join(dir, '.statesnap-case-probe');
  writeFileSync(probe, '', { flag: 'wx' });
  try {
    return entryExists(join(dir, '.STATESNAP-CASE-PROBE'));
  } finally {
    unlinkSync(probe);
  }
}

/** Builds the restored tree beside the target, flushes it and swaps it in. Returns the rollback copy. */
async function restoreReplace(run: Run): Promise<string | null> {
  const { opts, target } = run;
  const staging = siblingPath(target, 'staging');
  try {
    mkdirSync(staging, { mode: 0o700 });
  } catch (error) {
    throw targetWriteError(staging, error);
  }
  const flusher = new Flusher(staging, opts.sync);
  try {
    const dirs = await copyPass(run, {
      root: staging,
      writeMode: 'create',
      // The staging tree is ours (mode 0700, fresh name): nothing can be swapped inside it.
      confineTo: null,
      makeDirs: true,
      refuseCaseCollisions: isCaseInsensitive(staging),
      flusher,
    });
    applyDirectoryAttributes(staging, dirs);
    await flusher.finish();
    // The last moment a Ctrl-C can still stop the restore: the swap itself is not interrupted.
    if (opts.signal.aborted) throw abortError(opts.signal, target);
  } catch (error) {
    await flusher.settle();
    discard(staging);
    throw targetWriteError(staging, error);
  }
  const rollback = rollbackPathFor(target);
  return swapIn(
    { target, staging, rollback, keep: opts.keep },
    opts.sync,
    (dir) => flusher.syncDirectory(dir),
    run.warnings,
  );
}

/**
 * lstats every directory of the backup inside the target, parents first, without changing anything: a symlink
 * (or a file) where the backup has a directory is refused. Returns the directories to create.
 */
function checkSkeleton(target: string, dirs: readonly PlannedDir[]): string[] {
  const missing = new Set<string>();
  for (const dir of dirs) {
    if (dir.rel === '') continue;
    const parent = dir.rel.slice(0, Math.max(0, dir.rel.lastIndexOf('/')));
    if (missing.has(parent)) {
      missing.add(dir.rel);
      continue;
    }
    const path = join(target, dir.rel);
    let stats: Stats | undefined;
    try {
      stats = lstatSync(path, { throwIfNoEntry: false });
    } catch (error) {
      throw targetInvalid(target, `cannot inspect ${path}: ${describeCause(error)}`);
    }
    if (stats === undefined) missing.add(dir.rel);
    else if (stats.isSymbolicLink()) {
      throw targetInvalid(
        target,
        `${path} is a symlink where the backup has a directory; it is never written through`,
      );
    } else if (!stats.isDirectory()) {
      throw targetInvalid(target, `${path} is not a directory, but the backup has a directory there`);
    }
  }
  return [...missing];
}

/**
 * Writes the backup's files over an existing target. Before anything is written: the directory skeleton is
 * checked inside the target, and every backup file is checked (opened without following links, confined,
 * type and size, and its hash unless `verify` is off); a merge cannot be undone, so this pass is never skipped.
 */
async function restoreMerge(run: Run): Promise<void> {
  const { opts, source, target } = run;
  const toCreate = checkSkeleton(target, run.scan.dirs);
  const progress = progressReporter(run, 'verifying');
  await runBackupPass({
    ...passOf(run),
    refuseCaseCollisions: true,
    makeTask: (files) => ({
      kind: 'hash',
      root: source.root,
      files,
      confineTo: source.confineTo,
      readContent: opts.verify,
    }),
    onOutcome: progress.outcome,
    onBatch: progress.batch,
  });
  for (const rel of toCreate) {
    try {
      mkdirSync(join(target, rel), { mode: 0o700 });
    } catch (error) {
      throw targetWriteError(join(target, rel), error);
    }
  }
  // `target` is already real (its parent resolved, itself not a symlink): every write must stay under it.
  const confineTo = source.confineTo === null ? null : target;
  const flusher = new Flusher(target, opts.sync);
  try {
    const dirs = await copyPass(run, {
      root: target,
      writeMode: 'replace',
      confineTo,
      makeDirs: false,
      refuseCaseCollisions: true,
      flusher,
    });
    applyDirectoryAttributes(target, dirs, confineTo);
    await flusher.finish();
  } catch (error) {
    await flusher.settle();
    throw targetWriteError(target, error);
  }
}

/** Restores `options.backup` into `options.target`. */
export async function restore(options: RestoreOptions): Promise<RestoreResult> {
  const started = performance.now();
  const opts = resolveRestoreOptions(options);
  if (opts.signal.aborted) throw abortError(opts.signal, opts.target);
  const source = openBackup(opts.backup);
  const target = resolveBackupPaths(source.root, opts.target).dest;
  const warnings = new WarningLog(opts.onWarning);
  // A restore of this target that was killed is finished (or undone) before anything else looks at it.
  const recovered = recoverTarget(target, opts.sync, warnings);
  const targetExisted = inspectTarget(target, opts.mode);
  // Merging into nothing is a replace: there is nothing to keep, and the replace path is atomic.
  const merge = opts.mode === 'merge' && targetExisted;
  refuseEmpty(source, opts.allowEmpty);
  if (!source.extras) {
    const missing = sectionProblems(source);
    if (missing.length > 0) throw backupCorrupt(missing[0]!.path, `is incomplete: ${missing[0]!.message}`);
  }
  // A merge writes into existing directories whose case behaviour cannot be probed without writing into the
  // live target: case collisions are refused there; replace mode probes its fresh staging directory instead.
  const scan = await scanBackup(source, opts, merge, warnings);
  const pool = new WorkerPool(opts.threads);
  const run: Run = {
    opts,
    source,
    target,
    scan,
    pool,
    warnings,
  };
  let rollback: string | null = null;
  try {
    if (merge) await restoreMerge(run);
    else rollback = await restoreReplace(run);
  } catch (error) {
    if (opts.signal.aborted) throw abortError(opts.signal, target);
    throw error;
  } finally {
    await pool.close();
  }
  return {
    command: 'restore',
    backup: source.root,
    target,
    mode: opts.mode,
    kind: source.kind,
    verified: opts.verify && source.kind === 'statesnap',
    files: scan.files,
    dirs: scan.dirs.length - 1,
    bytes: scan.bytes,
    skipped: scan.skipped,
    rollback,
    createdTarget: !targetExisted,
    recovered,
    warnings: warnings.summary(),
    threads: opts.threads,
    synced: opts.sync,
    durationMs: Math.round(performance.now() - started),
    exitCode: warnings.count > 0 ? 3 : 0,
  };
}
