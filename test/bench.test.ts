// Benchmark plumbing, never its timings: a tiny run end to end (JSON shape, markdown, SVG, store reuse, the
// CLI command), `--compare` exit codes on hand-made result files, and the chart's XML.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { renderBarChart } from '../dist/bench/chart.js';
import type { BenchResult } from '../dist/bench/result.js';
import { CLI, type CliRun, cleanup, cleanupFixtures, fixtureDir, runCli, tempDir } from './helpers/tree.js';

afterEach(cleanup);

/** `statesnap bench`, what the npm scripts run (synchronous: these runs take seconds). */
function runBench(args: readonly string[], env: NodeJS.ProcessEnv = {}): CliRun {
  const run = spawnSync(process.execPath, [CLI, 'bench', ...args], {
    encoding: 'utf8',
    env: { ...process.env, GITHUB_STEP_SUMMARY: '', ...env },
  });
  return { exitCode: run.status, signal: run.signal, stdout: run.stdout, stderr: run.stderr };
}

/**
 * A small well-formedness check (xmllint is not installed everywhere): tags nest and close, attribute values
 * are quoted, and text holds no raw `<` and only valid entity references. Returns how often each element occurs.
 */
function checkWellFormedXml(xml: string): Map<string, number> {
  const counts = new Map<string, number>();
  const stack: string[] = [];
  const checkText = (text: string) => {
    expect(text, 'raw < or > in text').not.toMatch(/[<>]/);
    for (const ampersand of text.matchAll(/&/g)) {
      expect(text.slice(ampersand.index), 'entity reference').toMatch(/^&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);/);
    }
  };
  const tag =
    /<(\/?)([A-Za-z_][\w.:-]*)((?:\s+[A-Za-z_][\w.:-]*\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(\/?)>|<\?xml[^?]*\?>|<!--[\s\S]*?-->/g;
  let last = 0;
  for (const match of xml.matchAll(tag)) {
    checkText(xml.slice(last, match.index));
    last = match.index + match[0].length;
    const [, closing, name, attributes, selfClosing] = match;
    if (name === undefined) continue; // declaration or comment
    checkText((attributes ?? '').replace(/\s+[\w.:-]+\s*=\s*("|')/g, ' ').replace(/["']/g, ''));
    if (closing) {
      expect(stack.pop(), `closing </${name}>`).toBe(name);
    } else {
      if (stack.length === 0) expect(counts.size, 'a single root element').toBe(0);
      counts.set(name, (counts.get(name) ?? 0) + 1);
      if (!selfClosing) stack.push(name);
    }
  }
  checkText(xml.slice(last).trim());
  expect(stack, 'unclosed elements').toEqual([]);
  return counts;
}

const hasXmllint = spawnSync('xmllint', ['--version']).status === 0;

function barCount(svg: string): number {
  return [...svg.matchAll(/<rect class="bar"/g)].length;
}

describe('bench suite end to end (timings not asserted)', () => {
  /** The demo store at a small scale, one round: seconds, not minutes. */
  const tinyRun = (cases: string, storeDir: string, outDir: string) => [
    '--profile',
    'demo',
    '--scale',
    '0.2',
    '--iterations',
    '1',
    '--cases',
    cases,
    '--store-dir',
    storeDir,
    '--out',
    outDir,
  ];
  // One tiny run, made once: the store it generated is reused by a later run, and what it wrote is read by
  // the first test. No test changes either.
  const first = { storeDir: '', outDir: '', summary: '', run: null as CliRun | null };
  beforeAll(() => {
    const root = fixtureDir('statesnap-bench-test-');
    first.storeDir = join(root, 'store');
    first.outDir = join(root, 'results');
    first.summary = join(root, 'step-summary.md');
    first.run = runBench(
      [...tinyRun('statesnap-no-sync,cp-a,fs-cp', first.storeDir, first.outDir), '--json'],
      {
        GITHUB_STEP_SUMMARY: first.summary,
      },
    );
  }, 120_000);
  afterAll(cleanupFixtures);

  /** The result the first run printed and wrote. */
  const firstResult = (): BenchResult => {
    const { exitCode, ...printed } = JSON.parse(first.run!.stdout) as BenchResult & { exitCode: number };
    expect(exitCode).toBe(0);
    return printed;
  };

  it('runs a tiny profile and writes JSON, markdown, SVG and the step summary', () => {
    const run = first.run!;
    expect(run.stderr).not.toContain('error');
    expect(run.exitCode).toBe(0);
    const result = firstResult();

    const written = readdirSync(first.outDir).sort();
    expect(written.map((name) => name.replace(/^demo-[\dT:-]+Z/, 'X'))).toEqual(['X.json', 'X.md', 'X.svg']);
    const base = join(first.outDir, written[0]!.replace(/\.json$/, ''));
    expect(JSON.parse(readFileSync(`${base}.json`, 'utf8'))).toEqual(result);
    expect(result).toMatchObject({
      schemaVersion: 1,
      profile: 'demo',
      scale: 0.2,
      iterations: 1,
      pageCacheWarm: true,
      store: { generated: true },
      machine: { node: process.version },
    });
    expect(result.store.files).toBeGreaterThan(100);
    expect(result.store.bytes).toBeGreaterThan(0);
    expect(result.cases.map((c) => c.id)).toEqual(['cp-a', 'statesnap-no-sync', 'fs-cp']);
    for (const c of result.cases) {
      for (const figure of [c.wallMs, c.filesPerSec, c.mbPerSec]) {
        expect(Object.keys(figure).sort()).toEqual(['max', 'median', 'min']);
        expect(figure.median).toBeGreaterThan(0);
        expect(figure.min).toBeLessThanOrEqual(figure.max);
      }
      expect(c.rounds).toHaveLength(1);
      expect(Object.keys(c.ratios).sort()).toEqual(['cp-a', 'fs-cp']);
    }
    const statesnap = result.cases.find((c) => c.id === 'statesnap-no-sync')!;
    expect(statesnap.subject).toBe(true);
    expect(statesnap.peakRssMb?.max).toBeGreaterThan(10);
    expect(statesnap.operationMs?.median).toBeLessThan(statesnap.wallMs.median);
    expect(statesnap.ratios['cp-a']!.perRound).toHaveLength(1);
    expect(result.cases.find((c) => c.id === 'cp-a')!.ratios['cp-a']!.median).toBe(1);

    // A run of the demo store measures no target: each is set for another store.
    for (const target of result.targets) {
      expect(target, target.id).toMatchObject({ measured: null, status: 'not measured' });
      expect(target.reason).toMatch(/; this run is of the demo profile$/);
    }

    const markdown = readFileSync(`${base}.md`, 'utf8');
    expect(markdown).toContain('| case | median s | min–max s | files/s | MB/s | × cp -a | × fs.cp |');
    expect(markdown).toContain('| statesnap --no-sync |');
    expect(markdown).toContain('### Targets');
    expect(markdown).toContain(
      '| README statesnap --no-sync ≤ 0.5× cp -a | no-sync-vs-cp | – | 0.50× | not measured (set for the oxios ' +
        'profile at scale 1; this run is of the demo profile) |',
    );
    expect(markdown).toContain(`](${written[2]})`);
    expect(readFileSync(first.summary, 'utf8')).toContain('### Targets');

    const svg = readFileSync(`${base}.svg`, 'utf8');
    expect(checkWellFormedXml(svg).get('svg')).toBe(1);
    expect(barCount(svg)).toBe(result.cases.length);
  });

  it('statesnap bench reuses the generated store and prints the table', async () => {
    const outDir = join(tempDir(), 'results');
    const run = await runCli([
      'bench',
      ...tinyRun('cp-a,statesnap-one-file,planner-walk,du-sb', first.storeDir, outDir),
    ]);
    expect(run.exitCode).toBe(0);
    expect(run.stderr).not.toContain('generating');
    expect(run.stdout).toMatch(/^demo store at scale 0\.2/);
    // The table: a header naming each figure and each baseline, then a row per case.
    expect(run.stdout).toMatch(/^case +median s +min–max s +files\/s +MB\/s +× cp -a +× du -sb$/m);
    for (const label of ['cp -a', 'du -sb', 'planner walk']) {
      expect(run.stdout).toMatch(new RegExp(`^${label} +\\d+\\.\\d\\d +`, 'm'));
    }
    expect(run.stdout).toContain('planner walk ≤ 2× du -sb');
    const [written] = readdirSync(outDir).filter((name) => name.endsWith('.json'));
    const latest = JSON.parse(readFileSync(join(outDir, written!), 'utf8')) as BenchResult;
    expect(latest.store).toMatchObject({ generated: false, files: firstResult().store.files });
    expect(Object.keys(latest.cases.find((c) => c.id === 'planner-walk')!.ratios)).toEqual(['du-sb']);
    // Start-up: a durable backup of a one-file store, with no ratio to the copies of the whole store.
    const oneFile = latest.cases.find((c) => c.id === 'statesnap-one-file')!;
    expect(oneFile).toMatchObject({ kind: 'start-up', ratios: {} });
    expect(oneFile.rounds.map((r) => r.filesCopied)).toEqual([1]);
    expect(oneFile.userMs?.median).toBeGreaterThan(0);
  });

  it('measures what the snapshot cases say: nothing copied or read again when nothing changed', () => {
    const root = tempDir();
    const withRestic = spawnSync('restic', ['version']).status === 0;
    const cases = [
      'statesnap-link-dest',
      'statesnap-link-dest-1pct',
      'snapshot-no-change',
      ...(withRestic ? ['restic-no-change'] : []),
    ];
    // The no-change snapshot runs first, right after the store is generated, and the local no-change
    // snapshot right after the 1% replacement: both must wait out the racy margin, or they read files again.
    const run = runBench([
      ...['--profile', 'demo', '--scale', '0.05', '--iterations', '2', '--cases', cases.join(',')],
      ...['--store-dir', join(root, 'store'), '--out', join(root, 'results'), '--json'],
    ]);
    expect(run.exitCode, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as BenchResult;
    expect(result.cases.map((c) => c.id)).toEqual(cases);
    const copied = (id: string) => result.cases.find((c) => c.id === id)!.rounds.map((r) => r.filesCopied);
    expect(copied('statesnap-link-dest')).toEqual([0, 0]);
    expect(copied('snapshot-no-change')).toEqual([0, 0]);
    // Every hundredth file replaced: copied again, the rest linked.
    for (const changed of copied('statesnap-link-dest-1pct')) {
      expect(changed).toBeGreaterThanOrEqual(Math.floor(result.store.files / 100));
      expect(changed).toBeLessThan(result.store.files / 50);
    }
    if (withRestic) expect(result.cases.find((c) => c.id === 'restic-no-change')!.rounds).toHaveLength(2);
  }, 120_000);

  it('refuses an unknown case before doing anything, with exit 2 and stdout empty', () => {
    const outDir = join(tempDir(), 'results');
    const run = runBench(['--cases', 'cp-a,nope', '--out', outDir]);
    expect(run).toMatchObject({ exitCode: 2, stdout: '' });
    expect(run.stderr).toContain('`cases` must be');
    expect(run.stderr).toContain('ERR_INVALID_OPTION');
    expect(existsSync(outDir)).toBe(false);
  });
});

/** Why this machine cannot make the suite's fresh ext4 (it needs root, Linux and the tools), or null. */
function scratchUnavailable(): string | null {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return 'needs root on Linux';
  const missing = ['mkfs.ext4', 'losetup'].filter((tool) => spawnSync('which', [tool]).status !== 0);
  if (missing.length > 0) return `${missing.join(', ')} not installed`;
  return existsSync('/dev/loop-control') ? null : 'no loop devices';
}

const noScratch = scratchUnavailable();

/** The mount point and image a run announced on stderr. */
function announcedScratch(stderr: string): { dir: string; image: string } {
  const match = /measuring on a fresh ext4 at (\S+) \(sparse image (\S+) of/.exec(stderr);
  expect(match, stderr).not.toBeNull();
  return { dir: match![1]!, image: match![2]! };
}

function isMounted(dir: string): boolean {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[1] === dir);
}

describe.skipIf(noScratch !== null)(`a fresh ext4 by default as root (${noScratch ?? 'available'})`, () => {
  const demoRun = (outDir: string) => [
    '--profile',
    'demo',
    '--scale',
    '0.05',
    '--iterations',
    '1',
    '--cases',
    'cp-a,statesnap-no-sync',
    '--out',
    outDir,
  ];

  it('measures on a journaled ext4 made for the run, records it, and removes it after', () => {
    const outDir = join(tempDir(), 'results');
    const run = runBench([...demoRun(outDir), '--json']);
    expect(run.exitCode, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as BenchResult;
    expect(result.machine.filesystem).toMatchObject({ type: 'ext4', journal: true });
    expect(result.machine.scratch?.inodes).toBeGreaterThan(result.store.files + result.store.dirs);
    const scratch = announcedScratch(run.stderr);
    expect(result.store.path.startsWith(`${scratch.dir}/`)).toBe(true);
    const [markdown] = readdirSync(outDir).filter((name) => name.endsWith('.md'));
    expect(readFileSync(join(outDir, markdown!), 'utf8')).toContain(
      'ext4 (rw,relatime) with a journal, made fresh for this run on a loop-mounted sparse image',
    );
    expect(isMounted(scratch.dir)).toBe(false);
    expect(existsSync(scratch.image)).toBe(false);
  });

  it('removes it when a case fails', () => {
    // A `cp` that fails, found first on PATH.
    const bin = tempDir();
    writeFileSync(join(bin, 'cp'), '#!/bin/sh\necho "cp: broken on purpose" >&2\nexit 1\n', { mode: 0o755 });
    const run = runBench(demoRun(join(tempDir(), 'results')), { PATH: `${bin}:${process.env.PATH}` });
    expect(run.exitCode).not.toBe(0);
    expect(run.stderr).toContain('broken on purpose');
    const scratch = announcedScratch(run.stderr);
    expect(isMounted(scratch.dir)).toBe(false);
    expect(existsSync(scratch.image)).toBe(false);
  });

  it('removes it on Ctrl-C in the middle of a case: exit 130, no stack trace', async () => {
    const pauseFile = join(tempDir(), 'paused');
    const child = spawn(process.execPath, [CLI, 'bench', ...demoRun(join(tempDir(), 'results'))], {
      detached: true,
      env: { ...process.env, STATESNAP_TEST_PAUSE_AT: 'copying', STATESNAP_TEST_PAUSE_FILE: pauseFile },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const exited = new Promise<number | null>((resolveExit) => child.on('close', resolveExit));
    // The statesnap case stops itself mid-copy, its destination on the fresh ext4.
    while (!existsSync(pauseFile) || readFileSync(pauseFile, 'utf8') === '') {
      await new Promise((resolveLater) => setTimeout(resolveLater, 50));
    }
    const pausedPid = Number(readFileSync(pauseFile, 'utf8').trim().split(' ')[2]);
    // What a terminal's Ctrl-C does: SIGINT to the whole process group, the stopped case included.
    process.kill(-child.pid!, 'SIGINT');
    process.kill(pausedPid, 'SIGCONT');
    expect(await exited).toBe(130);
    expect(stderr).toContain('[ERR_ABORTED]');
    expect(stderr).not.toMatch(/\n\s+at /);
    const scratch = announcedScratch(stderr);
    expect(isMounted(scratch.dir)).toBe(false);
    expect(existsSync(scratch.image)).toBe(false);
  }, 60_000);
});

describe('--compare', () => {
  // Result files written by hand; each test writes its own current file beside the shared previous one.
  let root = '';
  let previous = '';
  beforeAll(() => {
    root = fixtureDir('statesnap-bench-compare-');
    previous = resultFile('previous.json', 0.6, 1.0);
  });
  afterAll(cleanupFixtures);

  function resultFile(name: string, noSyncRatio: number, tarRatio: number): string {
    const figures = (median: number) => ({ median, min: median * 0.9, max: median * 1.1 });
    const file = join(root, name);
    writeFileSync(
      file,
      JSON.stringify({
        schemaVersion: 1,
        createdAt: '2026-11-23T12:00:00.000Z',
        profile: 'oxios',
        scale: 0.1,
        gitCommit: null,
        cases: [
          {
            id: 'statesnap-no-sync',
            label: 'statesnap --no-sync',
            subject: true,
            ratios: { 'cp-a': figures(noSyncRatio), 'fs-cp': figures(noSyncRatio / 3) },
          },
          { id: 'tar-pipe', label: 'tar | tar', subject: false, ratios: { 'cp-a': figures(tarRatio) } },
        ],
      }),
    );
    return file;
  }

  it('exits 0 when statesnap ratios stay within the threshold, even if a baseline moved', () => {
    const current = resultFile('steady.json', 0.66, 1.6);
    const run = runBench(['--compare', previous, '--current', current]);
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toContain('+10.0 %');
    expect(run.stdout).toContain('(baseline, informational)');
    expect(run.stdout).toContain('no ratio regressed beyond the threshold');
  });

  it('exits 1 with ERR_BENCH_REGRESSION when a statesnap ratio regressed beyond the threshold', () => {
    const current = resultFile('regressed.json', 0.75, 1.0);
    const run = runBench(['--compare', previous, '--current', current]);
    expect(run.exitCode).toBe(1);
    expect(run.stdout).toContain('REGRESSED');
    expect(run.stderr).toContain('[ERR_BENCH_REGRESSION]');
    expect(run.stderr).toContain('statesnap --no-sync vs cp-a 0.600 → 0.750');

    const lenient = runBench(['--compare', previous, '--current', current, '--threshold', '0.3']);
    expect(lenient.exitCode).toBe(0);

    const json = runBench(['--compare', previous, '--current', current, '--json']);
    expect(json.exitCode).toBe(1);
    expect(JSON.parse(json.stdout).regressions).toHaveLength(2);
  });

  it('refuses a file that is not a benchmark result with exit 2', () => {
    const bogus = join(root, 'bogus.json');
    writeFileSync(bogus, JSON.stringify({ schemaVersion: 1, cases: 'no' }));
    const run = runBench(['--compare', bogus, '--current', previous]);
    expect(run).toMatchObject({ exitCode: 2, stdout: '' });
    expect(run.stderr).toContain('is not a statesnap benchmark result');
  });
});

describe('throughput chart', () => {
  const bars = [
    { label: 'statesnap <fast> & "safe"', value: 12_345, min: 11_000, max: 13_000, highlight: true },
    { label: "cp -a 'baseline'", value: 8_000 },
    { label: 'fs.promises.cp', value: 0 },
  ];
  const svg = renderBarChart({ title: 'files/s <demo> & co', subtitle: 'x < y', unit: 'files/s', bars });

  it('is well-formed XML with one bar per case and escaped labels', () => {
    const elements = checkWellFormedXml(svg);
    expect(elements.get('svg')).toBe(1);
    expect(barCount(svg)).toBe(bars.length);
    expect(svg).toContain('statesnap &lt;fast&gt; &amp; &quot;safe&quot;');
    expect(svg).toContain('cp -a &apos;baseline&apos;');
    expect(svg).toContain('12,345 files/s');
    expect(elements.get('line')).toBeGreaterThan(1); // grid lines and the one range whisker
  });

  it.skipIf(!hasXmllint)('passes xmllint (skipped: xmllint is not installed)', () => {
    const file = join(tempDir('statesnap-chart-'), 'chart.svg');
    writeFileSync(file, svg);
    expect(spawnSync('xmllint', ['--noout', file], { encoding: 'utf8' })).toMatchObject({
      status: 0,
      stderr: '',
    });
  });
});
