// The backup operation: resolves its options, checks the paths, and runs the live source through the pipeline
// into a new backup that is committed only once complete. A failed or interrupted run leaves no backup behind.

import { join } from 'node:path';
import { type ChangeRuleOptions, DEFAULT_RACY_MARGIN_NS } from '../core/change-rule.js';
import { StatesnapError, throwIfAborted } from '../core/errors.js';
import { ExcludeRules, type UnmatchedPattern } from '../core/excludes.js';
import {
  booleanOption,
  choiceOption,
  integerOption,
  invalidOption,
  type ResolvedRunOptions,
  type RunOptions,
  requirePath,
  resolveRunOptions,
  stringListOption,
  TOOL_VERSION,
} from '../core/options.js';
import { makeParents, type ResolvedPaths, resolvePaths, SOURCE_AND_DESTINATION } from '../core/paths.js';
import type { Destination, ErrorPolicy, Run, SkipCounts, Tally } from '../core/pipeline.js';
import { runPipeline } from '../core/pipeline.js';
import {
  type BackupProgress,
  type ProgressReport,
  progressReporter,
  type TotalsEstimate,
} from '../core/progress.js';
import { HASH_ALGORITHM } from '../core/protocol.js';
import { pauseAt } from '../core/test-hooks.js';
import type { Warning, WarningSummary } from '../core/warnings.js';
import {
  INDEX_FORMAT,
  type IndexRecord,
  type Manifest,
  OXIOS_CATEGORIES,
  type RootRecord,
  type SkippedCounts,
  skippedCountsOf,
  unsafeRelativePathReason,
} from '../format/manifest.js';
import { SectionCounter } from '../format/sections.js';
import { checkDestination, LocalTreeWriter, type WriteCounts } from './backup-writer.js';
import type { JoinCounts, LinkPlan, LinkSource } from './link-source.js';
import { countFiles, DEFAULT_EXCLUDES, planSource } from './planner.js';

export interface BackupOptions extends RunOptions<BackupProgress> {
  /** The store to back up. */
  source: string;
  /** Where the backup appears; must not exist yet (unless `force`), and must not overlap `source`. */
  dest: string;
  /**
   * Paths to leave out: fast-glob patterns placed as in .gitignore (no slash: a name at any depth; a leading
   * or inner slash: anchored at `source`; a trailing slash: directories only). A leading `!` re-includes,
   * like `include`. A pattern that matches nothing is listed in `unmatchedPatterns`. @default []
   */
  exclude?: string[];
  /** Paths copied even when an `exclude` pattern (or a default one) matches them; same syntax. @default [] */
  include?: string[];
  /** Whether `DEFAULT_EXCLUDES` (`**\/*.tmp`) apply. @default true */
  defaultExcludes?: boolean;
  /**
   * Categories whose entries are counted into the manifest's `sections`, as Oxios counts them, less the
   * entries `exclude` leaves out. @default the Oxios categories
   */
  categories?: string[];
  /** Value of the manifest's `oxios_version`. @default the statesnap version */
  appVersion?: string;
  /**
   * Replace the backup statesnap published at `dest`, only once the new backup is complete. Anything else there
   * (a store, a file, a copy of a backup, a backup moved there, one made by Oxios) is refused. @default false
   */
  force?: boolean;
  /** Flush the backup to stable storage before it becomes visible. @default true */
  sync?: boolean;
  /** How many times a file modified while it was read is read again before it is reported. @default 3 */
  changedRetries?: number;
  /** What a source file that cannot be read does: `warn` skips and reports it, `abort` fails the run. @default 'warn' */
  onFileError?: 'warn' | 'abort';
  /**
   * Expected totals (e.g. a previous backup's) that progress reports until the walk has found everything.
   * Without it, and with an `onProgress`, the source's names are counted alongside the copy. @default none
   */
  estimate?: { files: number; bytes: number };
  /**
   * A previous backup to hard-link unchanged files from (rsync's `--link-dest`): a file whose type, size,
   * mode, mtime, inode and ctime equal what the previous backup's index recorded is linked, not copied; the
   * new backup is complete on its own. Must be a complete backup on the same filesystem as `dest`.
   * @default none (every file is copied)
   */
  linkDest?: string;
  /** Leave inode numbers out of the change rule (the store was restored or moved). @default false */
  ignoreInode?: boolean;
  /** Leave ctimes out of the change rule (the store was restored or moved). @default false */
  ignoreCtime?: boolean;
  /** Read and hash every same-size same-mode file, and link it only on an equal hash. @default false */
  checksum?: boolean;
  /** Only plan: report what would be copied, skipped and replaced; write nothing. @default false */
  dryRun?: boolean;
  /** Create the missing parent directories of `dest`; otherwise a missing parent is an error. @default false */
  mkpath?: boolean;
  /** Called (throttle it yourself) as files are planned and copied. @default no-op */
  onProgress?: (progress: BackupProgress) => void;
  /** Called for each per-file problem as it happens. @default no-op */
  onWarning?: (warning: Warning) => void;
}

export interface ResolvedBackupOptions extends ResolvedRunOptions<BackupProgress> {
  source: string;
  dest: string;
  excludes: ExcludeRules;
  /** Null: counted alongside the copy when progress is wanted, else not estimated. */
  estimate: { files: number; bytes: number } | null;
  countForEstimate: boolean;
  dryRun: boolean;
  mkpath: boolean;
  categories: string[];
  appVersion: string;
  force: boolean;
  changedRetries: number;
  onFileError: 'warn' | 'abort';
  linkDest: string | null;
  ignoreInode: boolean;
  ignoreCtime: boolean;
  checksum: boolean;
}

/** What a backup and its dry run both report. */
export interface BackupSummary {
  command: 'backup';
  source: string;
  dest: string;
  files: number;
  dirs: number;
  bytes: number;
  /**
   * Entries not copied, by kind, as in the manifest.
   * @deprecated use `skippedEntries`, whose kinds are named as everywhere else (`char-device`).
   */
  skipped: SkippedCounts;
  /** Entries not copied (links, special files, excluded and reserved paths): the count and each kind's. */
  skippedEntries: SkipCounts;
  /** The user's exclude and include patterns that matched no path (nothing inside an excluded folder is looked at). */
  unmatchedPatterns: UnmatchedPattern[];
  warnings: WarningSummary;
  sections: Array<{ name: string; entry_count: number }>;
  /** Directories made for `dest` (`mkpath`), outermost first; in a dry run, the ones that would be. */
  createdParents: string[];
  durationMs: number;
  /** 0, or 3 when there were warnings. */
  exitCode: 0 | 3;
}

/** What `backup({ dryRun: true })` found: what a backup would copy and skip. Nothing was written. */
export interface BackupPlan extends BackupSummary {
  dryRun: true;
  /** An existing backup at `dest` would be replaced (`force`). */
  replacesExisting: boolean;
  /**
   * With `linkDest`: how many files the change rule would link, read and link if unchanged, or copy (the
   * racy and identity-less ones are only known after reading), and how many of the previous backup's files
   * the source no longer has. Null without `linkDest`.
   */
  linkPlan: (LinkPlan & JoinCounts) | null;
}

export interface BackupResult extends BackupSummary {
  /** False: see `BackupPlan` for a dry run. */
  dryRun: false;
  createdAt: string;
  /** Files whose path held a different file than planned (renamed over mid-run); the new one was copied. */
  replanned: number;
  hashAlgorithm: typeof HASH_ALGORITHM;
  index: IndexRecord;
  /** The worker threads the run started: at most the `threads` option, and only as many as its batches kept busy. */
  threads: number;
  synced: boolean;
  replacedExisting: boolean;
  /** The backup unchanged files were linked from (`linkDest`), or null. */
  linkSource: { path: string; createdAt: string } | null;
  /** How the files got here (all copied without `linkDest`). */
  counts: Omit<WriteCounts, 'bytesNew'> & JoinCounts;
  /** Bytes of the copied files: what this backup added to the disk besides directories and the index. */
  bytesNew: number;
}

function estimateOption(value: unknown): { files: number; bytes: number } | null {
  if (value === undefined) return null;
  const { files, bytes } = (value ?? {}) as { files?: unknown; bytes?: unknown };
  const isCount = (count: unknown) => typeof count === 'number' && Number.isSafeInteger(count) && count >= 0;
  if (!isCount(files) || !isCount(bytes)) {
    throw invalidOption('estimate', '{ files, bytes } with integers >= 0', JSON.stringify(value));
  }
  return { files: files as number, bytes: bytes as number };
}

export function resolveBackupOptions(options: BackupOptions): ResolvedBackupOptions {
  const defaultExcludes = booleanOption('defaultExcludes', options.defaultExcludes, true);
  const estimate = estimateOption(options.estimate);
  return {
    ...resolveRunOptions(options),
    source: requirePath('source', options.source),
    dest: requirePath('dest', options.dest),
    excludes: new ExcludeRules({
      exclude: stringListOption('exclude', options.exclude, []),
      include: stringListOption('include', options.include, []),
      defaults: defaultExcludes ? DEFAULT_EXCLUDES : [],
    }),
    estimate,
    // With a link source, its totals are the estimate when the caller gives none.
    countForEstimate: estimate === null && options.onProgress !== undefined,
    dryRun: booleanOption('dryRun', options.dryRun, false),
    mkpath: booleanOption('mkpath', options.mkpath, false),
    categories: categoriesOption(options.categories),
    appVersion:
      options.appVersion === undefined ? TOOL_VERSION : requirePath('appVersion', options.appVersion),
    force: booleanOption('force', options.force, false),
    changedRetries: integerOption('changedRetries', options.changedRetries, 3, 0, 100),
    onFileError: choiceOption('onFileError', options.onFileError, ['warn', 'abort'] as const, 'warn'),
    linkDest: options.linkDest === undefined ? null : requirePath('linkDest', options.linkDest),
    ignoreInode: booleanOption('ignoreInode', options.ignoreInode, false),
    ignoreCtime: booleanOption('ignoreCtime', options.ignoreCtime, false),
    checksum: booleanOption('checksum', options.checksum, false),
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

/** Expected totals while the walk is still finding files: the caller's, or the count of the source's names. */
interface Expected {
  from: TotalsEstimate;
  files: number;
  /** Null when counted: names carry no sizes. */
  bytes: number | null;
}

export function progressOf(
  phase: BackupProgress['phase'],
  tally: Tally,
  expected: Expected | null,
): ProgressReport<BackupProgress> {
  const { filesDone, bytesDone, filesPlanned, bytesPlanned, filesSized, planningDone } = tally;
  const found = { filesDone, bytesDone, filesPlanned, bytesPlanned, planningDone, phase };
  // Sizes not known yet (counted names, files the walk planned by name and no worker has read) are taken to
  // be the average of those known so far; every size is known by the end.
  const averageSize = filesSized > 0 ? bytesPlanned / filesSized : 0;
  if (planningDone || expected === null) {
    const bytesTotal = bytesPlanned + Math.round(averageSize * (filesPlanned - filesSized));
    const totals = { filesTotal: filesPlanned, bytesTotal };
    return { ...found, ...totals, totalKnown: planningDone, estimate: null };
  }
  const filesTotal = Math.max(expected.files, filesPlanned);
  const bytesTotal = expected.bytes ?? Math.round(averageSize * filesTotal);
  return {
    ...found,
    filesTotal,
    bytesTotal: Math.max(bytesTotal, bytesPlanned),
    totalKnown: false,
    estimate: expected.from,
  };
}

/**
 * Where a snapshot repository has a backup built (a name it reserved under its lock) and the snapshot id its
 * manifest records; null for a plain backup.
 */
export interface SnapshotPlacement {
  partial: string;
  id: string;
}

/** The manifest of a finished backup: Oxios' version-1 fields, and statesnap's own under `statesnap`. */
export function manifestOf(
  opts: ResolvedBackupOptions,
  made: {
    snapshot: Pick<SnapshotPlacement, 'id'> | null;
    createdAt: string;
    startedAtNs: bigint;
    sections: Manifest['sections'];
    index: IndexRecord;
    root: RootRecord;
    totals: { files: number; dirs: number; bytes: number };
    skipped: SkippedCounts;
    warnings: WarningSummary;
    link: LinkSource | null;
    counts: BackupResult['counts'];
    bytesNew: number;
  },
): Manifest {
  const { counts } = made;
  const { warnings } = made;
  return {
    version: 1,
    created_at: made.createdAt,
    oxios_version: opts.appVersion,
    sections: made.sections,
    statesnap: {
      format: INDEX_FORMAT,
      tool: 'statesnap',
      tool_version: TOOL_VERSION,
      hash_algorithm: HASH_ALGORITHM,
      index: made.index,
      totals: made.totals,
      skipped: made.skipped,
      warnings: { count: warnings.count, by_problem: warnings.byProblem, list: warnings.list.slice(0, 100) },
      categories: opts.categories,
      root: made.root,
      started_at_ns: made.startedAtNs.toString(),
      ...(made.snapshot && { snapshot: { id: made.snapshot.id } }),
      index_order: 'canonical',
      link_source: made.link && { path: made.link.root, manifest_created_at: made.link.createdAt },
      counts: {
        linked: counts.linked,
        copied: counts.copied,
        hashed: counts.hashed,
        hash_matched: counts.hashMatched,
        link_fallbacks: counts.linkFallbacks,
        check_mismatches: counts.checkMismatches,
        removed_since_link_source: counts.removedSinceLinkSource,
      },
      bytes_new: made.bytesNew,
    },
  };
}

/** The manifest's sections for the store at `root`: Oxios' counts less what the excludes leave out. */
export function sectionsOf(root: string, opts: ResolvedBackupOptions): Manifest['sections'] {
  return sectionCounterOf(root, opts).sections();
}

/** The same counts, taken from the walk's own listings of the category folders as it passes them. */
function sectionCounterOf(root: string, opts: ResolvedBackupOptions): SectionCounter {
  return new SectionCounter(root, opts.categories, (rel, isDirectory) =>
    opts.excludes.isExcluded(rel, isDirectory),
  );
}

/** What a backup and its dry run report alike, from what the pass counted. */
export function summaryOf(
  run: Run,
  opts: ResolvedBackupOptions,
  paths: ResolvedPaths,
  made: { tally: Tally; sections: BackupSummary['sections']; started: number },
): BackupSummary {
  const { tally } = made;
  const warnings = run.warnings.summary();
  return {
    command: 'backup',
    source: paths.read,
    dest: paths.write,
    files: opts.dryRun ? tally.filesPlanned : tally.filesDone,
    dirs: tally.dirs,
    bytes: opts.dryRun ? tally.bytesPlanned : tally.bytesDone,
    skipped: skippedCountsOf(tally.skipped.byKind),
    skippedEntries: tally.skipped,
    unmatchedPatterns: opts.excludes.unmatched(),
    warnings,
    sections: made.sections,
    createdParents: paths.missingParents,
    durationMs: Math.round(performance.now() - made.started),
    exitCode: warnings.count > 0 ? 3 : 0,
  };
}

/**
 * The pass that copies the source into `writer`, reporting progress against the best totals known: the
 * caller's estimate, or (when progress is wanted) a count of the source's names made alongside the copy,
 * until the walk has found everything.
 */
export async function copySource(
  run: Run,
  opts: ResolvedBackupOptions,
  source: string,
  into: {
    writer: Destination;
    link: LinkSource | null;
    joined: JoinCounts;
    /** The writer plans by the walk's sizes (object storage packs files by them before reading one). */
    plansBySize: boolean;
    /** Counts the manifest's sections from the walk's listings. */
    sections?: SectionCounter;
  },
  report: (progress: ProgressReport<BackupProgress>) => void,
): Promise<Tally> {
  const { writer, link } = into;
  const given = opts.estimate ?? link?.totals ?? null;
  let expected: Expected | null = given && { from: 'given', ...given };
  const stopCounting = new AbortController();
  const counting =
    opts.countForEstimate && expected === null
      ? countFiles(source, opts.excludes, AbortSignal.any([run.signal, stopCounting.signal])).then(
          (files) => {
            if (files !== null) expected = { from: 'counted', files, bytes: null };
          },
        )
      : undefined;
  try {
    // A local backup's workers stat the files they copy or link (and apply the change rule there); object
    // storage packs files by the sizes the walk's lstat gives, and plans their links from it.
    const planned = planSource(source, {
      ...opts,
      statFiles: into.plansBySize,
      listed: into.sections && ((dir, entries, names) => into.sections!.listed(dir, entries, names)),
    });
    // The previous backup's index is read with the schema: loaded only by a backup that links.
    const linking = link && (await import('./link-source.js'));
    const entries = !linking
      ? planned
      : into.plansBySize
        ? linking.linkingSource(planned, link, changeRuleOf(opts, link), into.joined)
        : linking.previousJoiningSource(planned, link, into.joined);
    return await run.pass({
      source: entries,
      destination: writer,
      policy: fileErrorPolicy(source, opts.onFileError),
      onProgress: (tally) => {
        report(progressOf('copying', tally, expected));
        pauseAt?.('copying', tally.filesDone);
      },
    });
  } finally {
    stopCounting.abort();
    await counting;
  }
}

function changeRuleOf(opts: ResolvedBackupOptions, link: LinkSource): ChangeRuleOptions {
  return {
    previousStartNs: link.startedAtNs,
    racyMarginNs: DEFAULT_RACY_MARGIN_NS,
    ignoreInode: opts.ignoreInode,
    ignoreCtime: opts.ignoreCtime,
    checksum: opts.checksum,
  };
}

/** A dry run: the source walked and the destination checked as a backup would, nothing read or written. */
async function planBackup(
  run: Run,
  opts: ResolvedBackupOptions,
  paths: ResolvedPaths,
  started: number,
): Promise<BackupPlan> {
  const replacesExisting = checkDestination(paths.write, { force: opts.force, given: opts.dest });
  // A dry run counts bytes, so it stats every file, as the real run learns sizes only as it reads.
  const counter = sectionCounterOf(paths.read, opts);
  let source = planSource(paths.read, {
    ...opts,
    statFiles: true,
    listed: (dir, entries, names) => counter.listed(dir, entries, names),
  });
  let linkPlan: BackupPlan['linkPlan'] = null;
  if (opts.linkDest !== null) {
    // The link source the real run would use (or refuse), joined with the walk by the same change rule.
    const linking = await import('./link-source.js');
    const link = linking.openLinkSource(opts.linkDest, { source: paths.read, dest: paths.write });
    linkPlan = { link: 0, hashThenLink: 0, copy: 0, removedSinceLinkSource: 0 };
    source = linking.countingLinkPlan(
      linking.linkingSource(source, link, changeRuleOf(opts, link), linkPlan),
      linkPlan,
    );
  }
  const tally = await run.survey({ source, policy: fileErrorPolicy(paths.read, opts.onFileError) });
  const sections = counter.sections();
  return {
    ...summaryOf(run, opts, paths, { tally, sections, started }),
    dryRun: true,
    replacesExisting,
    linkPlan,
  };
}

/**
 * Makes a new backup of `options.source` at `options.dest`; with `dryRun`, only says what it would copy, skip
 * and replace.
 */
export function backup(options: BackupOptions & { dryRun: true }): Promise<BackupPlan>;
export function backup(options: BackupOptions & { dryRun?: false }): Promise<BackupResult>;
export function backup(options: BackupOptions): Promise<BackupResult | BackupPlan>;
export function backup(options: BackupOptions): Promise<BackupResult | BackupPlan> {
  return makeBackup(options, null);
}

/** A backup into a snapshot repository: built at the placement's reserved name, its id in the manifest. */
export function backupSnapshot(
  options: BackupOptions & { dryRun?: false },
  placement: SnapshotPlacement,
): Promise<BackupResult> {
  return makeBackup(options, placement) as Promise<BackupResult>;
}

async function makeBackup(
  options: BackupOptions,
  placement: SnapshotPlacement | null,
): Promise<BackupResult | BackupPlan> {
  const started = performance.now();
  const opts = resolveBackupOptions(options);
  throwIfAborted(opts.signal, opts.source);
  const paths = resolvePaths(opts.source, opts.dest, SOURCE_AND_DESTINATION, { mkpath: opts.mkpath });
  const { read: source, write: dest } = paths;
  const report = progressReporter('backup', started, opts.onProgress);
  return runPipeline({ ...opts, path: opts.source }, async (run) => {
    if (opts.dryRun) return planBackup(run, opts, paths, started);
    makeParents(paths.missingParents, SOURCE_AND_DESTINATION);
    const link =
      opts.linkDest === null
        ? null
        : (await import('./link-source.js')).openLinkSource(opts.linkDest, { source, dest });
    const writer = run.adopt(
      LocalTreeWriter.open(dest, {
        force: opts.force,
        sync: opts.sync,
        given: opts.dest,
        linkFrom: link && { root: link.root, rule: changeRuleOf(opts, link) },
        warnings: run.warnings,
        ...(placement && { partial: placement.partial }),
      }),
    );
    run.startWorkers();
    const joined: JoinCounts = { removedSinceLinkSource: 0 };
    // One instant for both: the start a later snapshot's racy check compares source timestamps with.
    const startedAt = Date.now();
    const createdAt = new Date(startedAt).toISOString();
    const counter = sectionCounterOf(source, opts);
    const tally = await copySource(
      run,
      opts,
      source,
      { writer, link, joined, plansBySize: false, sections: counter },
      report,
    );
    report(progressOf('finishing', tally, null));
    const index = writer.sealIndex();
    const root = writer.rootRecord();
    pauseAt?.('index-sealed');
    // Categories the walk did not list are listed while the copied files are flushed.
    const sections = counter.sections();
    const summary = summaryOf(run, opts, paths, { tally, sections, started });
    const { files, dirs, bytes, skipped, warnings } = summary;
    const { bytesNew, ...written } = writer.counts;
    const counts = { ...written, ...joined };
    const manifest = manifestOf(opts, {
      snapshot: placement,
      link,
      counts,
      bytesNew,
      createdAt,
      startedAtNs: BigInt(startedAt) * 1_000_000n,
      sections,
      index,
      totals: { files, dirs, bytes },
      skipped,
      warnings,
      root,
    });
    const { replacedExisting } = await writer.commit(manifest);
    return {
      ...summary,
      dryRun: false,
      createdAt,
      replanned: tally.replaced,
      hashAlgorithm: HASH_ALGORITHM,
      index,
      threads: run.threadsStarted,
      synced: opts.sync,
      replacedExisting,
      linkSource: link && { path: link.root, createdAt: link.createdAt },
      counts,
      bytesNew,
      // Measured after the commit: the flush and rename are part of the run.
      durationMs: Math.round(performance.now() - started),
    };
  });
}
