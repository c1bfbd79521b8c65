// The backup operation: resolves its options, checks the paths, and runs the live source through the pipeline
// into a new backup that is committed only once complete. A failed or interrupted run leaves no backup behind.

import { join } from 'node:path';
import { StatesnapError, throwIfAborted } from '../core/errors.js';
import {
  booleanOption,
  choiceOption,
  integerOption,
  type ResolvedRunOptions,
  type RunOptions,
  requirePath,
  resolveRunOptions,
  stringListOption,
  TOOL_VERSION,
} from '../core/options.js';
import { resolvePaths, SOURCE_AND_DESTINATION } from '../core/paths.js';
import type { ErrorPolicy, SkipCounts, Tally } from '../core/pipeline.js';
import { runPipeline } from '../core/pipeline.js';
import type { BackupProgress } from '../core/progress.js';
import { HASH_ALGORITHM } from '../core/protocol.js';
import type { Warning, WarningSummary } from '../core/warnings.js';
import {
  type IndexRecord,
  type Manifest,
  OXIOS_CATEGORIES,
  type SkippedCounts,
  skippedCountsOf,
  unsafeRelativePathReason,
} from '../format/manifest.js';
import { computeSections } from '../format/sections.js';
import { LocalTreeWriter } from './backup-writer.js';
import { DEFAULT_EXCLUDES, planSource } from './planner.js';

export interface BackupOptions extends RunOptions<BackupProgress> {
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
  /** Replace an existing `dest`, only once the new backup is complete. @default false */
  force?: boolean;
  /** Flush the backup to stable storage before it becomes visible. @default true */
  sync?: boolean;
  /** How many times a file modified while it was read is read again before it is reported. @default 3 */
  changedRetries?: number;
  /** What a source file that cannot be read does: `warn` skips and reports it, `abort` fails the run. @default 'warn' */
  onFileError?: 'warn' | 'abort';
  /** Called (throttle it yourself) as files are planned and copied. @default no-op */
  onProgress?: (progress: BackupProgress) => void;
  /** Called for each per-file problem as it happens. @default no-op */
  onWarning?: (warning: Warning) => void;
}

interface ResolvedBackupOptions extends ResolvedRunOptions<BackupProgress> {
  source: string;
  dest: string;
  exclude: string[];
  categories: string[];
  appVersion: string;
  force: boolean;
  changedRetries: number;
  onFileError: 'warn' | 'abort';
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
  /**
   * Entries not copied, by kind, as in the manifest.
   * @deprecated use `skippedEntries`, whose kinds are named as everywhere else (`char-device`).
   */
  skipped: SkippedCounts;
  /** Entries not copied (links, special files, excluded and reserved paths): the count and each kind's. */
  skippedEntries: SkipCounts;
  warnings: WarningSummary;
  sections: Array<{ name: string; entry_count: number }>;
  hashAlgorithm: typeof HASH_ALGORITHM;
  index: IndexRecord;
  /** The worker threads the run started: at most the `threads` option, and only as many as its batches kept busy. */
  threads: number;
  synced: boolean;
  replacedExisting: boolean;
  /** 0, or 3 when the backup completed with warnings. */
  exitCode: 0 | 3;
}

function resolveBackupOptions(options: BackupOptions): ResolvedBackupOptions {
  const defaultExcludes = booleanOption('defaultExcludes', options.defaultExcludes, true);
  return {
    ...resolveRunOptions(options),
    source: requirePath('source', options.source),
    dest: requirePath('dest', options.dest),
    exclude: [
      ...(defaultExcludes ? DEFAULT_EXCLUDES : []),
      ...stringListOption('exclude', options.exclude, []),
    ],
    categories: categoriesOption(options.categories),
    appVersion:
      options.appVersion === undefined ? TOOL_VERSION : requirePath('appVersion', options.appVersion),
    force: booleanOption('force', options.force, false),
    changedRetries: integerOption('changedRetries', options.changedRetries, 3, 0, 100),
    onFileError: choiceOption('onFileError', options.onFileError, ['warn', 'abort'] as const, 'warn'),
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

/** `--on-file-error`: an entry that could not be read is a warning, or (`abort`) fails the backup. */
function fileErrorPolicy(source: string, onFileError: 'warn' | 'abort'): ErrorPolicy {
  return ({ rel, problem, message, cause }) => {
    const path = join(source, rel);
    if (problem === 'unreadable' && onFileError === 'abort') {
      return new StatesnapError('ERR_FILE_UNREADABLE', `cannot read ${path}: ${message}`, { path, cause });
    }
    return { path, problem, message };
  };
}

function progressOf(phase: BackupProgress['phase'], tally: Tally): BackupProgress {
  const { filesDone, bytesDone, filesPlanned, bytesPlanned, planningDone } = tally;
  return { phase, filesDone, bytesDone, filesPlanned, bytesPlanned, planningDone };
}

/** The manifest of a finished backup: Oxios' version-1 fields, and statesnap's own under `statesnap`. */
function manifestOf(
  opts: ResolvedBackupOptions,
  made: {
    createdAt: string;
    sections: Manifest['sections'];
    index: IndexRecord;
    totals: { files: number; dirs: number; bytes: number };
    skipped: SkippedCounts;
    warnings: WarningSummary;
  },
): Manifest {
  const { warnings } = made;
  return {
    version: 1,
    created_at: made.createdAt,
    oxios_version: opts.appVersion,
    sections: made.sections,
    statesnap: {
      tool: 'statesnap',
      tool_version: TOOL_VERSION,
      hash_algorithm: HASH_ALGORITHM,
      index: made.index,
      totals: made.totals,
      skipped: made.skipped,
      warnings: { count: warnings.count, by_problem: warnings.byProblem, list: warnings.list.slice(0, 100) },
      categories: opts.categories,
    },
  };
}

/** Makes a new backup of `options.source` at `options.dest`. */
export async function backup(options: BackupOptions): Promise<BackupResult> {
  const started = performance.now();
  const opts = resolveBackupOptions(options);
  throwIfAborted(opts.signal, opts.source);
  const { read: source, write: dest } = resolvePaths(opts.source, opts.dest, SOURCE_AND_DESTINATION);
  return runPipeline({ ...opts, path: opts.source }, async (run) => {
    const writer = run.adopt(
      LocalTreeWriter.open(dest, { force: opts.force, sync: opts.sync, given: opts.dest }),
    );
    const createdAt = new Date().toISOString();
    const sections = computeSections(source, opts.categories);
    const tally = await run.pass({
      source: planSource(source, opts),
      destination: writer,
      policy: fileErrorPolicy(source, opts.onFileError),
      onProgress: (counts) => opts.onProgress(progressOf('copying', counts)),
    });
    opts.onProgress(progressOf('finishing', tally));
    const index = writer.sealIndex();
    const warnings = run.warnings.summary();
    const totals = { files: tally.filesDone, dirs: tally.dirs, bytes: tally.bytesDone };
    const skipped = skippedCountsOf(tally.skipped.byKind);
    const manifest = manifestOf(opts, { createdAt, sections, index, totals, skipped, warnings });
    const { replacedExisting } = await writer.commit(manifest);
    return {
      command: 'backup',
      source,
      dest,
      createdAt,
      durationMs: Math.round(performance.now() - started),
      ...totals,
      replanned: tally.replaced,
      skipped,
      skippedEntries: tally.skipped,
      warnings,
      sections,
      hashAlgorithm: HASH_ALGORITHM,
      index,
      threads: run.threadsStarted,
      synced: opts.sync,
      replacedExisting,
      exitCode: warnings.count > 0 ? 3 : 0,
    };
  });
}
