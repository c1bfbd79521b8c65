// The benchmark suite as `statesnap bench` runs it (the only front-end; it loads this module when it runs):
// resolves the options, prepares the store, runs the rounds, writes the JSON, markdown and SVG outputs, and
// compares with an earlier result on request.

import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CASE_IDS, type CaseId } from '../src/cli/bench-cases.js';
import { StatesnapError, throwIfAborted } from '../src/core/errors.js';
import { integerOption, invalidOption, TOOL_VERSION } from '../src/core/options.js';
import { STORE_PROFILES, type StoreProfile, storeBounds } from '../src/demo/generator.js';
import { removeTree } from './baselines.js';
import { isCaseId, markSourceChanged, selectCases } from './cases.js';
import { renderBarChart } from './chart.js';
import { type Comparison, compareResults, readResultFile } from './compare.js';
import { gitInfo, loadAverage, machineInfo } from './environment.js';
import { prepareStore, warmPageCache } from './fixtures.js';
import { formatMarkdown } from './report.js';
import { type BenchResult, RESULT_SCHEMA_VERSION, type ScratchInfo } from './result.js';
import { runRounds, summarize } from './runner.js';
import { mountScratch, type ScratchFilesystem, scratchUnavailableReason } from './scratch-fs.js';
import { evaluateTargets } from './targets.js';

export interface BenchOptions {
  /** Which generated store to copy. @default 'oxios' */
  profile?: StoreProfile;
  /** Multiplies the store's file counts (0.1 for a CI smoke run). @default 1 */
  scale?: number;
  /** Seed of the store generator. @default 1 */
  seed?: number;
  /** Rounds; every case runs once per round. @default 3 */
  iterations?: number;
  /** Case ids to run (see CASE_IDS). @default all of them */
  cases?: string[];
  /**
   * Where the store is generated and reused; its destinations go beside it.
   * @default `<dir>/statesnap-bench/<profile>-<scale>-<seed>/store`
   */
  storeDir?: string;
  /**
   * The directory to measure in (on its filesystem). Without it and `storeDir`, a run as root on Linux makes a
   * fresh journaled ext4 for the run (a loop-mounted sparse image, removed after); any other run uses the
   * temporary directory. @default a fresh ext4 as root, else `os.tmpdir()`
   */
  dir?: string;
  /** Where results are written. @default `bench/results` in a git checkout, else `<tmpdir>/statesnap-bench/results` */
  outDir?: string;
  /** A result file to compare this run with. @default none */
  compare?: string;
  /** A ratio of statesnap that grows by more than this fraction over `compare` is a regression. @default 0.15 */
  threshold?: number;
  signal?: AbortSignal;
  /** Progress lines (one per case and round). @default no-op */
  onLog?: (line: string) => void;
}

interface ResolvedBenchOptions {
  profile: StoreProfile;
  scale: number;
  seed: number;
  iterations: number;
  cases: CaseId[];
  storeDir: string | undefined;
  dir: string | undefined;
  outDir: string;
  compare: string | undefined;
  threshold: number;
  signal: AbortSignal;
  onLog: (line: string) => void;
}

export interface BenchRun {
  result: BenchResult & { comparison?: Comparison };
  files: { json: string; markdown: string; svg: string };
}

const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEFAULT_THRESHOLD = 0.15;

function positiveNumber(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw invalidOption(name, 'a finite number > 0', value);
  }
  return value;
}

function defaultOutDir(): string {
  return existsSync(join(PACKAGE_ROOT, '.git'))
    ? join(PACKAGE_ROOT, 'bench', 'results')
    : join(tmpdir(), 'statesnap-bench', 'results');
}

function resolveBenchOptions(options: BenchOptions): ResolvedBenchOptions {
  const profile = options.profile ?? 'oxios';
  if (!STORE_PROFILES.includes(profile))
    throw invalidOption('profile', `one of ${STORE_PROFILES.join(', ')}`, profile);
  const cases = options.cases ?? [...CASE_IDS];
  const unknown = cases.filter((id) => !isCaseId(id));
  if (cases.length === 0 || unknown.length > 0) {
    throw invalidOption('cases', `a non-empty list of ${CASE_IDS.join(', ')}`, cases.join(','));
  }
  return {
    profile,
    scale: positiveNumber('scale', options.scale, 1),
    seed: integerOption('seed', options.seed, 1, 0, 2 ** 32 - 1),
    iterations: integerOption('iterations', options.iterations, 3, 1, 1000),
    cases: cases.filter(isCaseId),
    storeDir: options.storeDir,
    dir: options.dir === undefined ? undefined : resolve(options.dir),
    outDir: resolve(options.outDir ?? defaultOutDir()),
    compare: options.compare,
    threshold: positiveNumber('threshold', options.threshold, DEFAULT_THRESHOLD),
    signal: options.signal ?? new AbortController().signal,
    onLog: options.onLog ?? (() => {}),
  };
}

/** The command line that repeats a run (seed and cases only when they are not the defaults). */
function reproduceCommand(opts: ResolvedBenchOptions): string {
  const args = ['npx statesnap bench', `--profile ${opts.profile}`, `--scale ${opts.scale}`];
  args.push(`--iterations ${opts.iterations}`);
  if (opts.seed !== 1) args.push(`--seed ${opts.seed}`);
  if (opts.cases.length !== CASE_IDS.length) args.push(`--cases ${opts.cases.join(',')}`);
  return args.join(' ');
}

function timestampForFile(date: Date): string {
  return date
    .toISOString()
    .replace(/:/g, '-')
    .replace(/\.\d+Z$/, 'Z');
}

/** Runs the whole benchmark and writes its outputs; throws on the first failing case. */
export async function runBench(options: BenchOptions): Promise<BenchRun> {
  const opts = resolveBenchOptions(options);
  // A bad --compare file should fail now, not after minutes of benchmarking.
  const previous = opts.compare === undefined ? undefined : readResultFile(opts.compare);
  const started = performance.now();
  const createdAt = new Date();
  const { cases, skipped } = await selectCases(opts.cases);
  if (cases.length === 0) {
    throw new StatesnapError(
      'ERR_INVALID_OPTION',
      `none of the selected cases can run here: ${skipped.map((s) => `${s.id} (${s.reason})`).join(', ')}`,
    );
  }
  const scratch = await measuringFilesystem(opts);
  let workDir: string | undefined;
  try {
    const fixture = await prepareStore(
      { ...opts, baseDir: scratch?.dir ?? opts.dir ?? tmpdir() },
      opts.onLog,
    );
    workDir = fixture.workDir;
    const { store } = fixture;
    markSourceChanged();
    // Generating a store runs without a pause in which a Ctrl-C could be noticed.
    throwIfAborted(opts.signal, store.root);
    opts.onLog(`warming the page cache: reading ${store.files} files (${(store.bytes / 1e6).toFixed(1)} MB)`);
    warmPageCache(store.root);
    const machine = machineInfo(fixture.workDir, scratch && scratchInfo(scratch));
    const samples = await runRounds({
      source: store.root,
      workDir: fixture.workDir,
      rounds: opts.iterations,
      cases,
      signal: opts.signal,
      onLog: opts.onLog,
    });
    machine.loadAverageEnd = loadAverage();
    const caseResults = summarize(cases, samples, store);
    const git = gitInfo(PACKAGE_ROOT);
    const result: BenchRun['result'] = {
      schemaVersion: RESULT_SCHEMA_VERSION,
      createdAt: createdAt.toISOString(),
      durationMs: Math.round(performance.now() - started),
      packageVersion: TOOL_VERSION,
      gitCommit: git.commit,
      gitDirty: git.dirty,
      command: reproduceCommand(opts),
      machine,
      profile: opts.profile,
      scale: opts.scale,
      seed: opts.seed,
      iterations: opts.iterations,
      store: {
        path: store.root,
        files: store.files,
        bytes: store.bytes,
        dirs: store.dirs,
        symlinks: store.symlinks,
        tempFiles: store.tempFiles,
        generated: fixture.generated,
      },
      pageCacheWarm: true,
      cases: caseResults,
      skipped,
      targets: evaluateTargets(caseResults, opts),
    };
    if (previous !== undefined) {
      result.comparison = compareResults(previous, opts.compare!, result, opts.threshold);
    }
    return { result, files: writeOutputs(result, opts.outDir) };
  } finally {
    if (workDir !== undefined) await removeTree(workDir);
    await scratch?.release();
  }
}

/** The fresh ext4 this run measures on, or null when it runs in a directory (named, or the temporary one). */
async function measuringFilesystem(opts: ResolvedBenchOptions): Promise<ScratchFilesystem | null> {
  if (opts.storeDir !== undefined || opts.dir !== undefined) return null;
  const unavailable = scratchUnavailableReason();
  if (unavailable !== null) {
    opts.onLog(`measuring in ${tmpdir()}, not on a fresh ext4 (${unavailable}); --dir names another place`);
    return null;
  }
  const scratch = await mountScratch(storeBounds(opts));
  opts.onLog(
    `measuring on a fresh ext4 at ${scratch.dir} (sparse image ${scratch.image} of ` +
      `${(scratch.sizeBytes / 1024 ** 3).toFixed(0)} GiB, ${scratch.inodes} inodes, ${scratch.device}` +
      `${scratch.directIo ? ' with direct I/O' : ''}); removed after the run`,
  );
  return scratch;
}

function scratchInfo(scratch: ScratchFilesystem): ScratchInfo {
  return { sizeBytes: scratch.sizeBytes, inodes: scratch.inodes, directIo: scratch.directIo };
}

function chartOf(result: BenchResult): string {
  const copies = result.cases.filter((c) => c.kind === 'copy');
  return renderBarChart({
    title: `statesnap bench: files/s, ${result.profile} store ×${result.scale}`,
    subtitle:
      `${result.store.files.toLocaleString('en-US')} files, ${(result.store.bytes / 1e6).toFixed(1)} MB; ` +
      `median of ${result.iterations} rounds, whiskers min–max; ${result.machine.cpus} CPUs, ` +
      `${result.machine.filesystem?.type ?? 'unknown fs'}, Node ${result.machine.node}; ${result.createdAt.slice(0, 10)}`,
    unit: 'files/s',
    bars: copies.map((c) => ({
      label: c.label,
      value: c.filesPerSec.median,
      min: c.filesPerSec.min,
      max: c.filesPerSec.max,
      highlight: c.subject,
    })),
  });
}

function writeOutputs(result: BenchResult, outDir: string): BenchRun['files'] {
  mkdirSync(outDir, { recursive: true });
  const base = join(outDir, `${result.profile}-${timestampForFile(new Date(result.createdAt))}`);
  const files = { json: `${base}.json`, markdown: `${base}.md`, svg: `${base}.svg` };
  const markdown = formatMarkdown(result, { chartFile: files.svg.slice(outDir.length + 1) });
  writeFileSync(files.json, `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(files.markdown, markdown);
  writeFileSync(files.svg, chartOf(result));
  const stepSummary = process.env.GITHUB_STEP_SUMMARY;
  if (stepSummary) appendFileSync(stepSummary, formatMarkdown(result));
  return files;
}

/**
 * `--compare <previous> --current <file>`: compares two saved results without running anything. The threshold
 * is checked as for a run.
 */
export function compareSavedResults(
  previousFile: string | undefined,
  currentFile: string,
  threshold?: number,
): Comparison {
  if (previousFile === undefined) throw invalidOption('current', 'used together with `compare`', currentFile);
  const resolved = positiveNumber('threshold', threshold, DEFAULT_THRESHOLD);
  return compareResults(readResultFile(previousFile), previousFile, readResultFile(currentFile), resolved);
}

/** ERR_BENCH_REGRESSION naming every ratio that regressed beyond the threshold, or null when none did. */
export function regressionError(comparison: Comparison | undefined): StatesnapError | null {
  if (comparison === undefined || comparison.regressions.length === 0) return null;
  const worst = comparison.regressions.map(
    (r) => `${r.label} vs ${r.reference} ${r.previous.toFixed(3)} → ${r.current.toFixed(3)}`,
  );
  return new StatesnapError(
    'ERR_BENCH_REGRESSION',
    `ratios regressed by more than ${Math.round(comparison.threshold * 100)} % against ${comparison.previous.file}: ${worst.join('; ')}`,
    { path: comparison.previous.file },
  );
}

export { formatComparison } from './compare.js';
export { formatConsoleTable } from './report.js';
