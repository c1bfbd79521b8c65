// The restore operation: checks a backup completely before the target changes, then runs it through the
// pipeline into a restore target: a staging tree swapped in (replace), or the live target itself (merge).

import { lstatSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import { describeCause, StatesnapError, throwIfAborted } from '../core/errors.js';
import {
  booleanOption,
  choiceOption,
  type ResolvedRunOptions,
  type RunOptions,
  requirePath,
  resolveRunOptions,
} from '../core/options.js';
import { resolvePaths, SOURCE_AND_DESTINATION } from '../core/paths.js';
import { type ErrorPolicy, newTally, type Run, runPipeline } from '../core/pipeline.js';
import type { RestoreProgress } from '../core/progress.js';
import type { FileProblem } from '../core/protocol.js';
import type { Warning, WarningSummary } from '../core/warnings.js';
import { type BackupKind, type BackupReader, openBackup, sectionProblems } from '../read/backup-reader.js';
import type { RecoveryAction } from './journal.js';
import { recoverTarget } from './journal.js';
import { MergeTarget } from './merge-target.js';
import { ReplaceTarget } from './replace-target.js';
import { type RestoreTarget, targetInvalid } from './restore-target.js';
import { backupCorrupt, type Scan, type SkippedEntries, scanBackup } from './scan.js';

export type RestoreMode = 'replace' | 'merge';

export interface RestoreOptions extends RunOptions<RestoreProgress> {
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
  /** Flush the restored files to stable storage before they replace the target. @default true */
  sync?: boolean;
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
  /**
   * Entries not restored: recorded as skipped in the index, or links/specials found in an Oxios tree.
   * @deprecated the same as `skippedEntries`, whose name every result shares.
   */
  skipped: SkippedEntries;
  /** Entries not restored: the count, each kind's, and the first ones. */
  skippedEntries: SkippedEntries;
  /** Where the previous target was kept, or null (there was none, it was removed with `keep: false`, or merge). */
  rollback: string | null;
  createdTarget: boolean;
  /** What was recovered first from an earlier restore of this target that was killed. */
  recovered: RecoveryAction[];
  warnings: WarningSummary;
  /** The worker threads the run started: at most the `threads` option, and only as many as its batches kept busy. */
  threads: number;
  synced: boolean;
  durationMs: number;
  /** 0, or 3 when the restore completed with warnings. */
  exitCode: 0 | 3;
}

function resolveRestoreOptions(options: RestoreOptions): ResolvedRestoreOptions {
  return {
    ...resolveRunOptions(options),
    backup: requirePath('backup', options.backup),
    target: requirePath('target', options.target),
    mode: choiceOption('mode', options.mode, ['replace', 'merge'] as const, 'replace'),
    verify: booleanOption('verify', options.verify, true),
    allowEmpty: booleanOption('allowEmpty', options.allowEmpty, false),
    keep: booleanOption('keep', options.keep, true),
  };
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

/** Refuses a backup that declares nothing (unless allowed) and an Oxios backup missing section entries. */
function refuseIncomplete(reader: BackupReader, allowEmpty: boolean): void {
  const empty = reader.extras ? reader.extras.totals.files === 0 : reader.manifest.sections.length === 0;
  if (empty && !allowEmpty) {
    const what = reader.extras ? 'holds no files' : 'declares no sections';
    throw new StatesnapError(
      'ERR_BACKUP_EMPTY',
      `backup ${reader.root} ${what}; refusing to restore an empty backup over live state (use --allow-empty)`,
      { path: reader.root },
    );
  }
  if (!reader.extras) {
    const missing = sectionProblems(reader);
    if (missing.length > 0) throw backupCorrupt(missing[0]!.path, `is incomplete: ${missing[0]!.message}`);
  }
}

const PROBLEM_WORDS: Record<Exclude<FileProblem, 'dest-failed'>, string> = {
  vanished: 'is missing',
  changed: 'changed while it was read',
  'not-regular': 'is not a regular file',
  escaped: 'lies outside the backup',
  unreadable: 'cannot be read',
  corrupt: 'is corrupt',
};

/** Any backup file that is missing, corrupt or unreadable stops the restore before the target changes. */
function anyProblemAborts(root: string): ErrorPolicy {
  return ({ rel, stage, problem, message, cause }) => {
    const path = join(root, rel);
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
): Promise<void> {
  const report = (done: { filesDone: number; bytesDone: number }, as: RestoreProgress['phase'] = phase) =>
    opts.onProgress({
      phase: as,
      filesDone: done.filesDone,
      bytesDone: done.bytesDone,
      filesTotal: scan.files,
      bytesTotal: scan.bytes,
      totalKnown: true,
    });
  report(newTally());
  const tally = await run.pass({
    source: reader.source({
      refuseCaseCollisions: target?.refuseCaseCollisions ?? true,
      hashes: opts.verify,
    }),
    destination: target,
    readContent: opts.verify,
    policy: anyProblemAborts(reader.root),
    onProgress: report,
  });
  if (target) report(tally, 'finishing');
}

/** Restores `options.backup` into `options.target`. */
export async function restore(options: RestoreOptions): Promise<RestoreResult> {
  const started = performance.now();
  const opts = resolveRestoreOptions(options);
  throwIfAborted(opts.signal, opts.target);
  const reader = openBackup(opts.backup);
  const target = resolvePaths(reader.root, opts.target, SOURCE_AND_DESTINATION).write;
  return runPipeline({ ...opts, path: target }, async (run) => {
    // A restore of this target that was killed is finished (or undone) before anything else looks at it.
    const recovered = recoverTarget(target, opts.sync, run.warnings);
    const targetExisted = inspectTarget(target, opts.mode);
    // Merging into nothing is a replace: there is nothing to keep, and the replace path is atomic.
    const merge = opts.mode === 'merge' && targetExisted;
    refuseIncomplete(reader, opts.allowEmpty);
    // A merge writes into existing directories whose case behaviour cannot be probed without writing into the
    // live target: case collisions are refused there; replace mode probes its fresh staging directory instead.
    const scan = await scanBackup(reader, { ...opts, refuseCaseCollisions: merge, warnings: run.warnings });
    const into = run.adopt(
      merge ? new MergeTarget(target, scan.dirs, opts) : new ReplaceTarget(target, opts, run.warnings),
    );
    if (into.checkFirst) await restorePass(run, reader, scan, opts, 'verifying', null);
    into.prepare();
    await restorePass(run, reader, scan, opts, 'copying', into);
    await into.finish();
    const rollback = into.commit();
    return {
      command: 'restore',
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
      rollback,
      createdTarget: !targetExisted,
      recovered,
      warnings: run.warnings.summary(),
      threads: run.threadsStarted,
      synced: opts.sync,
      durationMs: Math.round(performance.now() - started),
      exitCode: run.warnings.count > 0 ? 3 : 0,
    };
  });
}
