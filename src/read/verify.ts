// The verify operation: re-reads every file of a backup through the pipeline and compares size and hash with the
// index, walks the tree for entries the index does not list, and reports every problem found (manifest,
// missing, corrupt, extra, unreadable) instead of stopping at the first.

import { join, resolve } from 'node:path';
import { isStatesnapError, throwIfAborted } from '../core/errors.js';
import { type RunOptions, requirePath, resolveRunOptions } from '../core/options.js';
import {
  type ErrorPolicy,
  newTally,
  type Pass,
  type Run,
  runPipeline,
  type SkipCounts,
  type Tally,
} from '../core/pipeline.js';
import type { VerifyProgress } from '../core/progress.js';
import { type FileProblem, HASH_ALGORITHM } from '../core/protocol.js';
import { walk } from '../core/walk.js';
import type { Warning, WarningLog, WarningSummary } from '../core/warnings.js';
import { INDEX_FILE, MANIFEST_FILE, RESERVED_ROOT_NAMES } from '../format/manifest.js';
import {
  type BackupKind,
  type BackupReader,
  openBackup,
  sectionProblems,
  totalsMismatch,
} from './backup-reader.js';

/** What is wrong with one path of a backup (the `problem` of each entry in `problems.list`). */
export type VerifyProblem = 'manifest' | 'missing' | 'corrupt' | 'extra' | 'unreadable';

export interface VerifyOptions extends Pick<RunOptions<VerifyProgress>, 'threads' | 'signal'> {
  /** The backup directory (the one holding manifest.json). */
  backup: string;
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
  /** The same entries: the count and each kind's. */
  skippedEntries: SkipCounts;
  /** True when everything matched. */
  ok: boolean;
  problems: WarningSummary;
  /** The worker threads the run started: at most the `threads` option, and only as many as its batches kept busy. */
  threads: number;
  durationMs: number;
  /** 0 when everything matched, 1 otherwise. */
  exitCode: 0 | 1;
}

const PROBLEM_OF: Record<Exclude<FileProblem, 'dest-failed'>, VerifyProblem> = {
  vanished: 'missing',
  corrupt: 'corrupt',
  changed: 'corrupt',
  'not-regular': 'corrupt',
  escaped: 'corrupt',
  unreadable: 'unreadable',
};

/** Every problem is recorded and the check goes on: verify lists them all. */
function recordEveryProblem(root: string): ErrorPolicy {
  return ({ rel, stage, problem, message }) => ({
    path: join(root, rel),
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
  onProgress: (progress: VerifyProgress) => void,
  observe: Pass['observe'],
): Promise<Tally> {
  const totals = reader.extras?.totals;
  return run.pass({
    source: reader.source({ refuseCaseCollisions: false, hashes: true }),
    destination: null,
    policy: recordEveryProblem(reader.root),
    observe,
    tally,
    onProgress: (counts) =>
      onProgress({
        filesDone: counts.filesDone,
        bytesDone: counts.bytesDone,
        filesTotal: totals?.files ?? counts.filesPlanned,
        bytesTotal: totals?.bytes ?? counts.bytesPlanned,
        totalKnown: totals !== undefined,
      }),
  });
}

/** Every entry of the tree except the backup's own files, by relative path, with whether it is a directory. */
async function walkTree(
  reader: BackupReader,
  problems: WarningLog,
  signal: AbortSignal,
): Promise<Map<string, boolean>> {
  const entries = new Map<string, boolean>();
  await walk(
    reader.root,
    { isExcluded: () => false, reservedRootNames: RESERVED_ROOT_NAMES, signal },
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
  onProgress: (progress: VerifyProgress) => void,
): Promise<void> {
  const { root } = reader;
  const problems = run.warnings;
  const onDisk = await walkTree(reader, problems, run.signal);
  try {
    await readEveryFile(run, reader, tally, onProgress, {
      dir: (dir) => {
        if (dir.rel === '') return;
        const isDir = onDisk.get(dir.rel);
        onDisk.delete(dir.rel);
        if (isDir === undefined) problems.add(join(root, dir.rel), 'missing', 'directory is missing');
        else if (!isDir)
          problems.add(join(root, dir.rel), 'corrupt', 'is not a directory; the index says it is one');
      },
      file: (op) => {
        onDisk.delete(op.rel);
      },
    });
  } catch (error) {
    if (!isValidationError(error)) throw error;
    // The index cannot be trusted past this point: what it lists is unknown, so no file is called extra.
    problems.add(join(root, INDEX_FILE), 'manifest', (error as Error).message);
    return;
  }
  const listed = { files: tally.filesPlanned, dirs: tally.dirs, bytes: tally.bytesPlanned };
  const mismatch = totalsMismatch(reader.extras!, listed);
  if (mismatch !== null) problems.add(join(root, MANIFEST_FILE), 'manifest', mismatch);
  for (const rel of onDisk.keys()) problems.add(join(root, rel), 'extra', 'is not in the index');
}

/** Checks every file of `options.backup` against its manifest and index. */
export async function verify(options: VerifyOptions): Promise<VerifyResult> {
  const started = performance.now();
  const backupPath = resolve(requirePath('backup', options.backup));
  const opts = resolveRunOptions({ ...options, onWarning: options.onProblem }, 'onProblem');
  throwIfAborted(opts.signal, backupPath);
  return runPipeline({ ...opts, path: backupPath }, async (run) => {
    const problems = run.warnings;
    let reader: BackupReader | null = null;
    try {
      reader = openBackup(backupPath);
    } catch (error) {
      if (!isValidationError(error)) throw error;
      problems.add(join(backupPath, MANIFEST_FILE), 'manifest', (error as Error).message);
    }
    const tally = newTally();
    if (reader?.extras) await checkIndexed(run, reader, tally, opts.onProgress);
    else if (reader) {
      // An Oxios backup has no index: section entry counts against the tree, and every file read in full.
      for (const missing of sectionProblems(reader)) problems.add(missing.path, 'missing', missing.message);
      await readEveryFile(run, reader, tally, opts.onProgress, undefined);
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
      dirs: tally.dirs,
      skipped: tally.skipped.count,
      skippedEntries: tally.skipped,
      ok,
      problems: problems.summary(),
      threads: run.threadsStarted,
      durationMs: Math.round(performance.now() - started),
      exitCode: ok ? 0 : 1,
    };
  });
}
