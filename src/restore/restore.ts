// The restore operation: checks a backup completely before the target changes, then runs it through the
// pipeline into a restore target: a staging tree swapped in (replace), or the live target itself (merge).

import { lstatSync, readdirSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import { describeCause, StatesnapError, throwIfAborted } from '../core/errors.js';
import { IncludeRules } from '../core/excludes.js';
import {
  booleanOption,
  choiceOption,
  invalidOption,
  type ResolvedRunOptions,
  type RunOptions,
  requirePath,
  resolveRunOptions,
  stringListOption,
} from '../core/options.js';
import {
  BACKUP_AND_TARGET,
  makeParents,
  type ResolvedPaths,
  resolvePaths,
  resolveWriteTree,
} from '../core/paths.js';
import { type ErrorPolicy, newTally, type Run, runPipeline } from '../core/pipeline.js';
import { type ProgressReport, progressReporter, type RestoreProgress } from '../core/progress.js';
import { type FileProblem, fsPath, type RunFailure, SETID_BITS } from '../core/protocol.js';
import { pauseAt } from '../core/test-hooks.js';
import type { Warning, WarningSummary } from '../core/warnings.js';
import { type BackupKind, type BackupReader, backupEntryPath } from '../read/backup-reader.js';
import type { ManifestNote } from '../read/manifest-notes.js';
import { openReader } from '../read/open-reader.js';
import type { S3Options } from '../s3/settings.js';
import type { RecoveryAction } from './journal.js';
import { interruptedRestoreOf, recoverTarget } from './journal.js';
import { MergeTarget } from './merge-target.js';
import { selectEntries } from './partial.js';
import { ReplaceTarget } from './replace-target.js';
import { type AttributeRules, type RestoreTarget, targetInvalid } from './restore-target.js';
import { backupCorrupt, type Scan, type SkippedEntries, scanBackup } from './scan.js';

export type RestoreMode = 'replace' | 'merge';

export interface RestoreOptions extends RunOptions<RestoreProgress> {
  /**
   * The backup directory (the one holding manifest.json): made by statesnap or by Oxios; or a snapshot in
   * object storage, `s3://bucket/prefix/<snapshot id>` or `s3://bucket/prefix/latest`.
   */
  backup: string;
  /** How object storage is reached (endpoint, region, profile, concurrency). @default the AWS environment */
  s3?: S3Options;
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
  /**
   * Give files and directories the setuid and setgid bits the backup records; without it they are dropped, so
   * a backup (or an edited index) cannot plant a setuid program. @default false
   */
  keepSetid?: boolean;
  /** Flush the restored files to stable storage before they replace the target. @default true */
  sync?: boolean;
  /** Only check: report what would be written and replaced; change nothing. @default false */
  dryRun?: boolean;
  /** Create the missing parent directories of `target`; otherwise a missing parent is an error. @default false */
  mkpath?: boolean;
  /**
   * Restore only the entries these patterns select (the syntax of backup's `exclude`): an entry a pattern
   * matches, and everything below a directory one matches. Each pattern must match something in the backup.
   * Merge mode writes only the selected files and leaves the rest of the target alone; replace mode takes it
   * only for a target that is missing or empty (swapping out a whole live target for a part of the backup
   * would drop everything not selected). @default the whole backup
   */
  include?: string[];
  /** Called (throttle it yourself) as files are verified and copied. @default no-op */
  onProgress?: (progress: RestoreProgress) => void;
  /** Called for each problem that does not stop the restore (a symlink skipped in an Oxios backup). @default no-op */
  onWarning?: (warning: Warning) => void;
}

interface ResolvedRestoreOptions extends ResolvedRunOptions<RestoreProgress> {
  backup: string;
  target: string;
  mode: RestoreMode;
  verify: boolean;
  allowEmpty: boolean;
  keep: boolean;
  dryRun: boolean;
  mkpath: boolean;
  keepSetid: boolean;
  /** The patterns as given, and compiled (null: the whole backup). */
  includePatterns: string[] | null;
  include: IncludeRules | null;
}

/** What a restore and its dry run both report. */
interface RestoreSummary {
  command: 'restore';
  backup: string;
  target: string;
  mode: RestoreMode;
  /** Who made the backup: statesnap (hashed index) or Oxios (plain tree, no hashes). */
  kind: BackupKind;
  files: number;
  dirs: number;
  bytes: number;
  /** Entries not restored: the count, each kind's, and the first ones. */
  skippedEntries: SkippedEntries;
  /** The `include` patterns of a partial restore (files, dirs and bytes count what they selected), or null. */
  include: string[] | null;
  /** Directories made for `target` (`mkpath`), outermost first; in a dry run, the ones that would be. */
  createdParents: string[];
  warnings: WarningSummary;
  /** What the backup's manifest says that did not stop the restore (e.g. a section count that differs). */
  notes: ManifestNote[];
  durationMs: number;
  /** 0, or 3 when there were warnings. */
  exitCode: 0 | 3;
}

/**
 * What `restore({ dryRun: true })` found: the backup's manifest and index checked (not its file contents:
 * `verify` reads those), the target inspected, what would be written and replaced counted. Nothing changed.
 */
export interface RestorePlan extends RestoreSummary {
  dryRun: true;
  /** The target does not exist yet and would be created. */
  createsTarget: boolean;
  /** Replace mode, target exists: it would be swapped out, kept as a rollback copy or (`keep: false`) removed. */
  replacesTarget: boolean;
  /** Backup files already present in the target: merge overwrites them (replace swaps the whole target). */
  filesReplaced: number;
  /** A killed restore of this target left a journal: the restore would first finish it (see `recover`). */
  recoversFirst: boolean;
}

export interface RestoreResult extends RestoreSummary {
  /** False: see `RestorePlan` for a dry run. */
  dryRun: false;
  /** Every file's size and content hash were checked against the index before the target changed. */
  verified: boolean;
  /**
   * Entries not restored: recorded as skipped in the index, or links/specials found in an Oxios tree.
   * @deprecated the same as `skippedEntries`, whose name every result shares.
   */
  skipped: SkippedEntries;
  /** Where the previous target was kept, or null (there was none, it was removed with `keep: false`, or merge). */
  rollback: string | null;
  createdTarget: boolean;
  /**
   * Files and directories got the owners the backup records (a restore run as root of a backup that records
   * them); otherwise everything restored belongs to the user who ran the restore.
   */
  ownersRestored: boolean;
  /** What was recovered first from an earlier restore of this target that was killed. */
  recovered: RecoveryAction[];
  /** The worker threads the run started: at most the `threads` option, and only as many as its batches kept busy. */
  threads: number;
  synced: boolean;
}

function includePatterns(value: unknown): string[] | null {
  if (value === undefined) return null;
  const patterns = stringListOption('include', value, []);
  // An empty list selecting everything would turn "restore nothing" into a whole restore.
  if (patterns.length === 0) throw invalidOption('include', 'at least one pattern (or left out)', '[]');
  return patterns;
}

function resolveRestoreOptions(options: RestoreOptions): ResolvedRestoreOptions {
  const patterns = includePatterns(options.include);
  return {
    ...resolveRunOptions(options),
    backup: requirePath('backup', options.backup),
    target: requirePath('target', options.target),
    mode: choiceOption('mode', options.mode, ['replace', 'merge'] as const, 'replace'),
    verify: booleanOption('verify', options.verify, true),
    allowEmpty: booleanOption('allowEmpty', options.allowEmpty, false),
    keep: booleanOption('keep', options.keep, true),
    dryRun: booleanOption('dryRun', options.dryRun, false),
    mkpath: booleanOption('mkpath', options.mkpath, false),
    keepSetid: booleanOption('keepSetid', options.keepSetid, false),
    includePatterns: patterns,
    include: patterns && new IncludeRules(patterns),
  };
}

/**
 * Refuses a partial restore in replace mode over a target that holds anything: the swap would drop every
 * entry the patterns do not select. A missing or empty target loses nothing, so it takes the selection.
 */
function refusePartialReplace(target: string, opts: ResolvedRestoreOptions): void {
  if (opts.include === null || opts.mode !== 'replace') return;
  let names: string[];
  try {
    names = readdirSync(target);
  } catch {
    return; // Missing (created by the restore) or not a directory (refused by the target checks).
  }
  if (names.length === 0) return;
  throw new StatesnapError(
    'ERR_INVALID_OPTION',
    `--include restores part of the backup, but replace mode would swap out all of ${target}, dropping what ` +
      'the patterns do not select; use --mode merge to write only the selected paths, or restore into a new directory',
    { path: target },
  );
}

/** Refuses a partial restore whose patterns missed: a mistyped one must not restore less than was asked. */
function refuseUnmatched(reader: BackupReader, include: IncludeRules | null): void {
  const unmatched = include?.unmatched() ?? [];
  if (unmatched.length === 0) return;
  const list = unmatched.map((pattern) => `\`${pattern}\``).join(', ');
  throw new StatesnapError(
    'ERR_INVALID_OPTION',
    `include pattern${unmatched.length > 1 ? 's' : ''} ${list} match${unmatched.length > 1 ? '' : 'es'} ` +
      `nothing in backup ${reader.root}; nothing was restored`,
    { path: reader.root },
  );
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

/**
 * Refuses a backup that declares nothing (unless allowed). What else an Oxios manifest says (section counts,
 * names, created_at) is a note, never a refusal: Oxios' own restore refuses only a version other than 1, an
 * unreadable manifest and empty sections.
 */
function refuseEmpty(reader: BackupReader, allowEmpty: boolean): void {
  const empty = reader.extras ? reader.extras.totals.files === 0 : reader.manifest.sections.length === 0;
  if (empty && !allowEmpty) {
    const what = reader.extras ? 'holds no files' : 'declares no sections';
    throw new StatesnapError(
      'ERR_BACKUP_EMPTY',
      `backup ${reader.root} ${what}; refusing to restore an empty backup over live state (use --allow-empty)`,
      { path: reader.root },
    );
  }
}

const PROBLEM_WORDS: Record<Exclude<FileProblem, RunFailure>, string> = {
  vanished: 'is missing',
  changed: 'changed while it was read',
  'not-regular': 'is not a regular file',
  escaped: 'lies outside the backup',
  unreadable: 'cannot be read',
  corrupt: 'is corrupt',
  mode: 'has another mode than the index records',
};

/** Any backup file that is missing, corrupt or unreadable stops the restore before the target changes. */
function anyProblemAborts(root: string): ErrorPolicy {
  return ({ rel, stage, problem, message, cause }) => {
    const path = backupEntryPath(root, rel);
    if (stage === 'walk') return backupCorrupt(path, `cannot be restored: ${message}`);
    const code = problem === 'unreadable' ? 'ERR_FILE_UNREADABLE' : 'ERR_BACKUP_CORRUPT';
    return new StatesnapError(code, `backup file ${path} ${PROBLEM_WORDS[problem]}: ${message}`, {
      path,
      cause,
    });
  };
}

/** One pass of every backup file into `target`, or (null) only checked where it is; reported as `phase`. */
async function restorePass(
  run: Run,
  reader: BackupReader,
  scan: Scan,
  opts: ResolvedRestoreOptions,
  phase: 'verifying' | 'copying',
  target: RestoreTarget | null,
  onProgress: (progress: ProgressReport<RestoreProgress>) => void,
): Promise<void> {
  const report = (done: { filesDone: number; bytesDone: number }, as: RestoreProgress['phase'] = phase) =>
    onProgress({
      phase: as,
      filesDone: done.filesDone,
      bytesDone: done.bytesDone,
      filesTotal: scan.files,
      bytesTotal: scan.bytes,
      totalKnown: true,
      estimate: null,
    });
  report(newTally());
  const tally = await run.pass({
    source: selectEntries(
      reader.source({ refuseCaseCollisions: target?.refuseCaseCollisions ?? true, hashes: opts.verify }),
      opts.include,
    ),
    destination: target,
    readContent: opts.verify,
    policy: anyProblemAborts(reader.root),
    onProgress: (done) => {
      report(done);
      if (target) pauseAt?.('copying', done.filesDone);
    },
  });
  if (target) report(tally, 'finishing');
}

/** Whether a file is at `path` now (a dry run counts what a restore would replace). */
function isFileAt(path: string): boolean {
  try {
    return lstatSync(fsPath(path), { throwIfNoEntry: false })?.isFile() ?? false;
  } catch {
    return false;
  }
}

/** What restored entries get besides content. */
function attributeRules(reader: BackupReader, opts: ResolvedRestoreOptions): AttributeRules {
  // As tar and rsync do as root: the recorded numeric owners. Anyone else cannot give files away.
  const owners = process.geteuid?.() === 0 && reader.format !== null && reader.format >= 2;
  return { owners, modeMask: opts.keepSetid ? 0o7777 : 0o7777 & ~SETID_BITS };
}

/** A dry run: every check a restore makes before it writes, and what it would write and replace. */
async function planRestore(
  run: Run,
  reader: BackupReader,
  paths: ResolvedPaths,
  opts: ResolvedRestoreOptions,
  report: (progress: ProgressReport<RestoreProgress>) => void,
  started: number,
): Promise<RestorePlan> {
  const target = paths.write;
  const recoversFirst = interruptedRestoreOf(target);
  const targetExists = paths.missingParents.length === 0 && inspectTarget(target, opts.mode);
  const merge = opts.mode === 'merge' && targetExists;
  refuseEmpty(reader, opts.allowEmpty);
  let filesReplaced = 0;
  // The checks of the run itself, without its lock; a target whose parent is still to be made has no
  // filesystem to check yet.
  const rules = { ...opts, ...attributeRules(reader, opts), checkOnly: true };
  const check =
    paths.missingParents.length > 0
      ? null
      : merge
        ? new MergeTarget(target, rules)
        : new ReplaceTarget(target, rules, run.warnings);
  const scan = await scanBackup(reader, {
    ...opts,
    onProgress: report,
    refuseCaseCollisions: merge,
    warnings: run.warnings,
    target: check ?? { planDir() {}, planFile() {} },
    observeFile: targetExists
      ? (file) => {
          if (isFileAt(join(target, file.rel))) filesReplaced++;
        }
      : undefined,
  });
  refuseUnmatched(reader, opts.include);
  check?.checkPlan();
  return {
    command: 'restore',
    dryRun: true,
    backup: reader.root,
    target,
    mode: opts.mode,
    kind: reader.kind,
    files: scan.files,
    dirs: scan.dirs.length - 1,
    bytes: scan.bytes,
    skippedEntries: scan.skipped,
    include: opts.includePatterns,
    createdParents: paths.missingParents,
    createsTarget: !targetExists,
    replacesTarget: targetExists && !merge,
    filesReplaced,
    recoversFirst,
    warnings: run.warnings.summary(),
    notes: reader.notes(),
    durationMs: Math.round(performance.now() - started),
    exitCode: run.warnings.count > 0 ? 3 : 0,
  };
}

/** Restores `options.backup` into `options.target`; with `dryRun`, only says what it would write and replace. */
export function restore(options: RestoreOptions & { dryRun: true }): Promise<RestorePlan>;
export function restore(options: RestoreOptions & { dryRun?: false }): Promise<RestoreResult>;
export function restore(options: RestoreOptions): Promise<RestoreResult | RestorePlan>;
export async function restore(options: RestoreOptions): Promise<RestoreResult | RestorePlan> {
  const started = performance.now();
  const opts = resolveRestoreOptions(options);
  throwIfAborted(opts.signal, opts.target);
  const reader = await openReader(opts.backup, { s3: options.s3, signal: opts.signal });
  try {
    return await restoreFrom(reader, opts, started);
  } finally {
    reader.close();
  }
}

async function restoreFrom(
  reader: BackupReader,
  opts: ResolvedRestoreOptions,
  started: number,
): Promise<RestoreResult | RestorePlan> {
  const { mkpath } = opts;
  const paths = reader.local
    ? resolvePaths(reader.root, opts.target, BACKUP_AND_TARGET, { mkpath })
    : { read: reader.root, ...resolveWriteTree(opts.target, BACKUP_AND_TARGET, { mkpath }) };
  const target = paths.write;
  refusePartialReplace(target, opts);
  const report = progressReporter('restore', started, opts.onProgress);
  return runPipeline({ ...opts, path: target }, async (run) => {
    if (opts.dryRun) return planRestore(run, reader, paths, opts, report, started);
    makeParents(paths.missingParents, BACKUP_AND_TARGET);
    // A restore of this target that was killed is finished (or undone) before anything else looks at it.
    const recovered = recoverTarget(target, { sync: opts.sync, warnings: run.warnings, breakLock: false });
    const targetExisted = inspectTarget(target, opts.mode);
    // Merging into nothing is a replace: there is nothing to keep, and the replace path is atomic.
    const merge = opts.mode === 'merge' && targetExisted;
    refuseEmpty(reader, opts.allowEmpty);
    const rules = { ...opts, ...attributeRules(reader, opts) };
    // Holds the target's lock from here on: no other restore checks or writes the target meanwhile.
    const into = run.adopt(
      merge ? new MergeTarget(target, rules) : new ReplaceTarget(target, rules, run.warnings),
    );
    // A merge writes into existing directories whose case behaviour cannot be probed without writing into the
    // live target: case collisions are refused there; replace mode probes its fresh staging directory instead.
    const scan = await scanBackup(reader, {
      ...opts,
      onProgress: report,
      refuseCaseCollisions: merge,
      warnings: run.warnings,
      target: into,
    });
    refuseUnmatched(reader, opts.include);
    into.checkPlan();
    if (into.checkFirst) await restorePass(run, reader, scan, opts, 'verifying', null, report);
    into.prepare();
    await restorePass(run, reader, scan, opts, 'copying', into, report);
    const finishing = into.finish();
    // Counting the backup's sections walks its folders: done while the restored tree is flushed.
    let notes: ManifestNote[];
    try {
      notes = reader.notes();
    } finally {
      await finishing;
    }
    const rollback = into.commit();
    return {
      command: 'restore',
      dryRun: false,
      backup: reader.root,
      target,
      mode: opts.mode,
      kind: reader.kind,
      verified: opts.verify && reader.kind === 'statesnap',
      files: scan.files,
      dirs: scan.dirs.length - 1,
      bytes: scan.bytes,
      skipped: scan.skipped,
      skippedEntries: scan.skipped,
      include: opts.includePatterns,
      rollback,
      createdTarget: !targetExisted,
      createdParents: paths.missingParents,
      ownersRestored: rules.owners,
      recovered,
      warnings: run.warnings.summary(),
      notes,
      threads: run.threadsStarted,
      synced: opts.sync,
      durationMs: Math.round(performance.now() - started),
      exitCode: run.warnings.count > 0 ? 3 : 0,
    };
  });
}
