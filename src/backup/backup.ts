// The backup operation: resolves options, plans the source, runs the copy pool while the walk goes on, and
// hands the finished tree to the finalizer. A failed or interrupted run leaves no destination behind.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  abortError,
  describeCause,
  isStatesnapError,
  StatesnapError,
  systemErrorCode,
} from '../core/errors.js';
import { Flusher } from '../core/flush.js';
import { applyDirectoryAttributes, discard, entryExists } from '../core/fs-tree.js';
import {
  booleanOption,
  callbackOption,
  choiceOption,
  integerOption,
  requirePath,
  signalOption,
  stringListOption,
  TOOL_VERSION,
} from '../core/options.js';
import { CAN_LOCATE_FDS, resolveBackupPaths } from '../core/paths.js';
import { BatchDispatcher, defaultThreads, WorkerPool } from '../core/pool.js';
import { type FileOutcome, HASH_ALGORITHM, type SkippedKind, type TaskResult } from '../core/protocol.js';
import { siblingPath } from '../core/siblings.js';
import { type PlannedDir, walk } from '../core/walk.js';
import { type Warning, WarningLog, type WarningSummary } from '../core/warnings.js';
import { IndexWriter } from '../format/index-file.js';
import {
  INDEX_FILE,
  MANIFEST_FILE,
  type Manifest,
  META_DIR,
  OXIOS_CATEGORIES,
  type SkippedCounts,
  unsafeRelativePathReason,
} from '../format/manifest.js';
import { computeSections } from '../format/sections.js';
import { cleanStaleBackupSiblings, publish, writeManifest } from './backup-writer.js';
import { compileExcludes } from './planner.js';

/** The in-flight temp files of an Oxios store (`<name>.<pid>.<uuid>.tmp`) are never worth backing up. */
export const DEFAULT_EXCLUDES: readonly string[] = ['**/*.tmp'];

export interface Progress {
  /** `copying` while files are planned and copied; `finishing` while the manifest is written and data flushed. */
  phase: 'copying' | 'finishing';
  filesDone: number;
  bytesDone: number;
  /** Files and bytes found so far; final once `planningDone` is true. */
  filesPlanned: number;
  bytesPlanned: number;
  planningDone: boolean;
}

export interface BackupOptions {
  /** The store to back up. */
  source: string;
  /** Where the backup appears; must not exist yet (unless `force`), and must not overlap `source`. */
  dest: string;
  /** Extra glob patterns (fast-glob syntax, relative to `source`) to leave out. @default [] */
  exclude?: string[];
  /** Whether `DEFAULT_EXCLUDES` (`**\/*.tmp`) apply. @default true */
  defaultExcludes?: boolean;
  /** Categories whose entries are counted into the manifest's `sections`. @default the Oxios categories */
  categories?: string[];
  /** Value of the manifest's `oxios_version`. @default the statesnap version */
  appVersion?: string;
  /** Worker threads. @default os.availableParallelism() (at most 16) */
  threads?: number;
  /** Replace an existing `dest`, only once the new backup is complete. @default false */
  force?: boolean;
  /** Flush the backup to stable storage before it becomes visible. @default true */
  sync?: boolean;
  /** How many times a file modified while it was read is read again before it is reported. @default 3 */
  changedRetries?: number;
  /** What a source file that cannot be read does: `warn` skips and reports it, `abort` fails the run. @default 'warn' */
  onFileError?: 'warn' | 'abort';
  signal?: AbortSignal;
  /** Called (throttle it yourself) as files are planned and copied. @default no-op */
  onProgress?: (progress: Progress) => void;
  /** Called for each per-file problem as it happens. @default no-op */
  onWarning?: (warning: Warning) => void;
}

interface ResolvedBackupOptions {
  source: string;
  dest: string;
  exclude: string[];
  categories: string[];
  appVersion: string;
  threads: number;
  force: boolean;
  sync: boolean;
  changedRetries: number;
  onFileError: 'warn' | 'abort';
  signal: AbortSignal;
  onProgress: (progress: Progress) => void;
  onWarning: (warning: Warning) => void;
}

export interface BackupResult {
  command: 'backup';
  source: string;
  dest: string;
  createdAt: string;
  durationMs: number;
  files: number;
  dirs: number;
  bytes: number;
  /** Files whose path held a different file than planned (renamed over mid-run); the new one was copied. */
  replanned: number;
  skipped: SkippedCounts;
  warnings: WarningSummary;
  sections: Array<{ name: string; entry_count: number }>;
  hashAlgorithm: typeof HASH_ALGORITHM;
  index: { path: string; entries: number; sha256: string };
  threads: number;
  synced: boolean;
  replacedExisting: boolean;
  /** 0, or 3 when the backup completed with warnings. */
  exitCode: 0 | 3;
}

function resolveBackupOptions(options: BackupOptions): ResolvedBackupOptions {
  const defaultExcludes = booleanOption('defaultExcludes', options.defaultExcludes, true);
  return {
    source: requirePath('source', options.source),
    dest: requirePath('dest', options.dest),
    exclude: [
      ...(defaultExcludes ? DEFAULT_EXCLUDES : []),
      ...stringListOption('exclude', options.exclude, []),
    ],
    categories: categoriesOption(options.categories),
    appVersion:
      options.appVersion === undefined ? TOOL_VERSION : requirePath('appVersion', options.appVersion),
    threads: integerOption('threads', options.threads, defaultThreads(), 1, 256),
    force: booleanOption('force', options.force, false),
    sync: booleanOption('sync', options.sync, true),
    changedRetries: integerOption('changedRetries', options.changedRetries, 3, 0, 100),
    onFileError: choiceOption('onFileError', options.onFileError, ['warn', 'abort'] as const, 'warn'),
    signal: signalOption(options.signal),
    onProgress: callbackOption('onProgress', options.onProgress, () => {}),
    onWarning: callbackOption('onWarning', options.onWarning, () => {}),
  };
}

/** A category is a folder inside the source: one that climbs out would count entries of another tree. */
function categoriesOption(value: unknown): string[] {
  const categories = stringListOption('categories', value, OXIOS_CATEGORIES);
  for (const category of categories) {
    const reason = unsafeRelativePathReason(category);
    if (reason !== null) {
      throw new StatesnapError(
        'ERR_INVALID_OPTION',
        `\`categories\` must be relative folders inside the source, got \`${category}\` (it ${reason})`,
      );
    }
  }
  return categories;
}

const SKIPPED_KEY: Record<SkippedKind | 'excluded' | 'reserved', keyof SkippedCounts> = {
  symlink: 'symlink',
  fifo: 'fifo',
  socket: 'socket',
  'char-device': 'char_device',
  'block-device': 'block_device',
  excluded: 'excluded',
  reserved: 'reserved',
};

function emptySkippedCounts(): SkippedCounts {
  return { symlink: 0, fifo: 0, socket: 0, char_device: 0, block_device: 0, excluded: 0, reserved: 0 };
}

function destWriteError(path: string, error: unknown): StatesnapError {
  if (isStatesnapError(error)) return error;
  return new StatesnapError('ERR_DEST_WRITE', `cannot write backup ${path}: ${describeCause(error)}`, {
    path,
    cause: error,
  });
}

/** Makes a new backup of `options.source` at `options.dest`. */
export async function backup(options: BackupOptions): Promise<BackupResult> {
  const started = performance.now();
  const opts = resolveBackupOptions(options);
  if (opts.signal.aborted) throw abortError(opts.signal, opts.source);
  const paths = resolveBackupPaths(opts.source, opts.dest);
  cleanStaleBackupSiblings(paths.dest);
  if (entryExists(paths.dest) && !opts.force) {
    throw new StatesnapError(
      'ERR_DEST_EXISTS',
      `destination ${opts.dest} already exists (use --force to replace it)`,
      {
        path: opts.dest,
      },
    );
  }
  const createdAt = new Date().toISOString();
  const sections = computeSections(paths.source, opts.categories);
  const partial = siblingPath(paths.dest, 'partial');
  try {
    mkdirSync(partial, { mode: 0o700 });
    mkdirSync(join(partial, META_DIR));
  } catch (error) {
    discard(partial);
    throw destWriteError(partial, error);
  }

  // Fatal problems found on the main thread (ENOSPC, an aborting file error) stop the pool through this.
  const failure = new AbortController();
  const signal = AbortSignal.any([opts.signal, failure.signal]);
  const fail = (error: unknown): never => {
    failure.abort(error);
    throw error;
  };
  const pool = new WorkerPool(opts.threads);
  const index = new IndexWriter(partial);
  const flusher = new Flusher(partial, opts.sync);
  const warnings = new WarningLog(opts.onWarning);
  const skipped = emptySkippedCounts();
  const dirs: PlannedDir[] = [];
  const progress: Progress = {
    phase: 'copying',
    filesDone: 0,
    bytesDone: 0,
    filesPlanned: 0,
    bytesPlanned: 0,
    planningDone: false,
  };
  let replanned = 0;

  // One policy for every source entry that could not be read, a file or a whole directory (--on-file-error).
  const reportProblem = (path: string, problem: string, message: string): void => {
    if (problem === 'unreadable' && opts.onFileError === 'abort') {
      fail(new StatesnapError('ERR_FILE_UNREADABLE', `cannot read ${path}: ${message}`, { path }));
    }
    warnings.add(path, problem, message);
  };
  const recordOutcome = (outcome: FileOutcome): void => {
    if (outcome.ok) {
      index.add({
        path: outcome.rel,
        type: 'file',
        size: outcome.size,
        mode: outcome.mode,
        mtime_ns: outcome.mtimeNs,
        sha256: outcome.hash,
      });
      progress.filesDone++;
      progress.bytesDone += outcome.size;
      if (outcome.replaced) replanned++;
      return;
    }
    const path = join(paths.source, outcome.rel);
    if (outcome.problem === 'dest-failed') {
      fail(
        new StatesnapError(
          'ERR_DEST_WRITE',
          `cannot write ${join(paths.dest, outcome.rel)}: ${outcome.message}`,
          {
            path: join(paths.dest, outcome.rel),
          },
        ),
      );
    }
    reportProblem(path, outcome.problem, outcome.message);
  };
  const dispatcher = new BatchDispatcher({
    pool,
    threads: opts.threads,
    signal,
    makeTask: (files) => ({
      kind: 'copy',
      sourceRoot: paths.source,
      destRoot: partial,
      files,
      confineSourceTo: CAN_LOCATE_FDS ? paths.source : null,
      confineDestTo: null,
      writeMode: 'create',
      attributesFrom: 'source',
      changedRetries: opts.changedRetries,
    }),
    onResult: (result: TaskResult) => {
      for (const outcome of result.outcomes) recordOutcome(outcome);
      flusher.noteWritten(result.bytes);
      opts.onProgress({ ...progress });
    },
  });

  try {
    await walk(
      paths.source,
      {
        isExcluded: compileExcludes(opts.exclude),
        reservedRootNames: new Set([MANIFEST_FILE, META_DIR]),
        signal,
      },
      {
        dir: (dir) => {
          if (dir.rel !== '') {
            try {
              mkdirSync(join(partial, dir.rel), { mode: 0o700 });
            } catch (error) {
              fail(destWriteError(join(paths.dest, dir.rel), error));
            }
            index.add({ path: dir.rel, type: 'dir', mode: dir.mode, mtime_ns: dir.mtimeNs.toString() });
          }
          dirs.push(dir);
        },
        file: (file) => {
          progress.filesPlanned++;
          progress.bytesPlanned += file.size;
          return dispatcher.add(file);
        },
        skip: (rel, kind) => {
          skipped[SKIPPED_KEY[kind]]++;
          if (kind !== 'excluded' && kind !== 'reserved') index.add({ path: rel, type: kind, skipped: true });
        },
        problem: (rel, problem, message) => reportProblem(join(paths.source, rel), problem, message),
      },
    );
    progress.planningDone = true;
    await dispatcher.finish();
    if (opts.signal.aborted) throw abortError(opts.signal, opts.source);
    progress.phase = 'finishing';
    opts.onProgress({ ...progress });

    const indexInfo = index.close();
    const summary = warnings.summary();
    const totals = { files: progress.filesDone, dirs: dirs.length - 1, bytes: progress.bytesDone };
    const manifest: Manifest = {
      version: 1,
      created_at: createdAt,
      oxios_version: opts.appVersion,
      sections,
      statesnap: {
        tool: 'statesnap',
        tool_version: TOOL_VERSION,
        hash_algorithm: HASH_ALGORITHM,
        index: { path: INDEX_FILE, ...indexInfo },
        totals,
        skipped,
        warnings: { count: summary.count, by_problem: summary.byProblem, list: summary.list.slice(0, 100) },
        categories: opts.categories,
      },
    };
    try {
      writeManifest(partial, manifest);
      applyDirectoryAttributes(partial, dirs);
    } catch (error) {
      throw destWriteError(partial, error);
    }
    const replacedExisting = await publish(partial, paths.dest, flusher, opts.force);
    return {
      command: 'backup',
      source: paths.source,
      dest: paths.dest,
      createdAt,
      durationMs: Math.round(performance.now() - started),
      ...totals,
      replanned,
      skipped,
      warnings: summary,
      sections,
      hashAlgorithm: HASH_ALGORITHM,
      index: { path: INDEX_FILE, ...indexInfo },
      threads: opts.threads,
      synced: opts.sync,
      replacedExisting,
      exitCode: summary.count > 0 ? 3 : 0,
    };
  } catch (caught) {
    // A failure found on the main thread aborts the shared signal, so the walk or the dispatcher may surface
    // ERR_ABORTED first: the real cause is the reason recorded when the failure controller was aborted.
    const error: unknown = failure.signal.aborted ? failure.signal.reason : caught;
    failure.abort(error);
    await dispatcher.settle();
    await flusher.settle();
    index.abandon();
    discard(partial);
    if (opts.signal.aborted) throw abortError(opts.signal, opts.source);
    // Anything not already explained is an I/O failure on our side of the copy (index, manifest, rename).
    throw systemErrorCode(error) ? destWriteError(paths.dest, error) : error;
  } finally {
    await pool.close();
  }
}
