// The benchmark as one library call, shared by `statesnap bench` and `node dist/bench/run.js`: resolves the
// options, prepares the store, runs the rounds, writes the JSON, markdown and SVG outputs, and compares
// with an earlier result on request.

import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExitCode, StatesnapError } from '../src/errors.js';
import { TOOL_VERSION } from '../src/options.js';
import { removeTree } from './baselines.js';
import { CASE_IDS, type CaseId, isCaseId, selectCases } from './cases.js';
import { renderBarChart } from './chart.js';
import { type Comparison, compareResults, formatComparison, readResultFile } from './compare.js';
import { gitInfo, loadAverage, machineInfo } from './environment.js';
import { prepareStore, warmPageCache } from './fixtures.js';
import { STORE_PROFILES, type StoreProfile } from './generator.js';
import { formatConsoleTable, formatMarkdown } from './report.js';
import { type BenchResult, RESULT_SCHEMA_VERSION } from './result.js';
import { runRounds, summarize } from './runner.js';
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
  /** Where the store is generated and reused. @default `<tmpdir>/statesnap-bench/<profile>-<scale>-<seed>/store` */
  storeDir?: string;
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

function invalid(name: string, expectation: string, received: unknown): StatesnapError {
  return new StatesnapError(
    'ERR_INVALID_OPTION',
    `\`${name}\` must be ${expectation}, got \`${String(received)}\``,
  );
}

function positiveNumber(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw invalid(name, 'a finite number > 0', value);
  }
  return value;
}

function integer(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(name, `an integer from ${min} to ${max}`, value);
  }
  return value;
}

function defaultOutDir(): string {
  return existsSync(join(PACKAGE_ROOT, '.git'))
    ? join(PACKAGE_ROOT, 'bench', 'results')
    : join(tmpdir(), 'statesnap-bench', 'results');
}

export function resolveBenchOptions(options: BenchOptions): ResolvedBenchOptions {
  const profile = options.profile ?? 'oxios';
  if (!STORE_PROFILES.includes(profile))
    throw invalid('profile', `one of ${STORE_PROFILES.join(', ')}`, profile);
  const cases = options.cases ?? [...CASE_IDS];
  const unknown = cases.filter((id) => !isCaseId(id));
  if (cases.length === 0 || unknown.length > 0) {
    throw invalid('cases', `a non-empty list of ${CASE_IDS.join(', ')}`, cases.join(','));
  }
  return {
    profile,
    scale: positiveNumber('scale', options.scale, 1),
    seed: integer('seed', options.seed, 1, 0, 2 ** 32 - 1),
    iterations: integer('iterations', options.iterations, 3, 1, 1000),
    cases: cases.filter(isCaseId),
    storeDir: options.storeDir,
    outDir: resolve(options.outDir ?? defaultOutDir()),
    compare: options.compare,
    threshold: positiveNumber('threshold', options.threshold, 0.15),
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
  const fixture = await prepareStore(opts, opts.onLog);
  const { store } = fixture;
  try {
    opts.onLog(
      `warming the page cache: reading ${store.files.toLocaleString('en-US')} files (${(store.bytes / 1e6).toFixed(1)} MB)`,
    );
    warmPageCache(store.root);
    const machine = machineInfo(fixture.workDir);
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
      targets: evaluateTargets(caseResults),
    };
    if (previous !== undefined) {
      result.comparison = compareResults(previous, opts.compare!, result, opts.threshold);
    }
    return { result, files: writeOutputs(result, opts.outDir) };
  } finally {
    await removeTree(fixture.workDir);
  }
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

export interface BenchCliOptions extends BenchOptions {
  /** Compare this saved result with `compare` instead of running the benchmark. */
  current?: string;
  /**
   * Prints the one result of the command: `document` (the run's result or the comparison, with `exitCode`)
   * as JSON, or `summary()` as text, as the command line asked.
   */
  print: (document: { exitCode: number }, summary: () => string) => void;
}

/**
 * What both command lines do: run (or, with `current`, load) a result, print it, and fail with
 * ERR_BENCH_REGRESSION when a ratio regressed beyond the threshold.
 */
export async function benchCommand(options: BenchCliOptions): Promise<number> {
  let comparison: Comparison | undefined;
  let document: object;
  let summary: () => string;
  if (options.current !== undefined) {
    if (options.compare === undefined)
      throw invalid('current', 'used together with `compare`', options.current);
    const threshold = resolveBenchOptions(options).threshold;
    const current = readResultFile(options.current);
    const loaded = compareResults(readResultFile(options.compare), options.compare, current, threshold);
    comparison = loaded;
    document = loaded;
    summary = () => formatComparison(loaded);
  } else {
    const { result, files } = await runBench(options);
    comparison = result.comparison;
    document = result;
    summary = () =>
      [formatConsoleTable(result), ...(result.comparison ? [formatComparison(result.comparison)] : [])].join(
        '\n\n',
      );
    options.onLog?.(`wrote ${files.json}, ${files.markdown} and ${files.svg}`);
  }
  const regressed = comparison !== undefined && comparison.regressions.length > 0;
  options.print({ ...document, exitCode: regressed ? ExitCode.failed : ExitCode.ok }, summary);
  if (comparison !== undefined && comparison.regressions.length > 0) {
    const worst = comparison.regressions.map(
      (r) => `${r.label} vs ${r.reference} ${r.previous.toFixed(3)} → ${r.current.toFixed(3)}`,
    );
    throw new StatesnapError(
      'ERR_BENCH_REGRESSION',
      `ratios regressed by more than ${Math.round(comparison.threshold * 100)} % against ${comparison.previous.file}: ${worst.join('; ')}`,
      { path: comparison.previous.file },
    );
  }
  return 0;
}
