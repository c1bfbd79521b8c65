// The worker pool is bounded by what the work can use: `--threads` is an upper bound, a run starts a thread
// only when a batch finds every thread busy, so a large --threads on a small store costs no memory; the
// result says how many threads the run started; the library still validates the option.

import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { backup, restore, verify } from '../dist/src/index.js';
import { type CliRun, cleanup, createTree, file, runCli, type Tree, tempDir } from './helpers/tree.js';

afterEach(cleanup);

function store(files: number): Tree {
  const facts: Tree = {};
  for (let i = 0; i < files; i++) facts[`f${i}.json`] = file(`{"fact":${i}}`);
  return { memory: { facts } };
}

// Loaded into the CLI with --import: at exit, the main thread writes the process's peak resident set size
// (getrusage counts every thread of the process) to $STATESNAP_TEST_RSS_FILE, in KiB.
const RSS_PRELOAD = `
import { writeFileSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';
if (isMainThread) {
  process.on('exit', () => writeFileSync(process.env.STATESNAP_TEST_RSS_FILE, String(process.resourceUsage().maxRSS)));
}
`;

/** Runs the built CLI and measures its peak RSS (KiB). */
async function runMeasured(args: readonly string[]): Promise<{ run: CliRun; maxRssKiB: number }> {
  const dir = tempDir();
  const preload = join(dir, 'rss.mjs');
  const rssFile = join(dir, 'rss');
  writeFileSync(preload, RSS_PRELOAD);
  const run = await runCli(args, {
    nodeArgs: ['--import', preload],
    env: { STATESNAP_TEST_RSS_FILE: rssFile },
  });
  return { run, maxRssKiB: Number(readFileSync(rssFile, 'utf8')) };
}

describe('--threads is an upper bound', () => {
  it('--threads 256 on a 10-file store: one thread started, peak memory as with --threads 2', async () => {
    const root = tempDir();
    const source = join(root, 'src');
    await createTree(source, store(10));
    const measured: Record<string, { threads: number; maxRssKiB: number }> = {};
    for (const threads of ['2', '256']) {
      const { run, maxRssKiB } = await runMeasured([
        'backup',
        '--json',
        '--no-sync',
        '--threads',
        threads,
        source,
        join(root, `out-${threads}`),
      ]);
      expect(run.exitCode, run.stderr).toBe(0);
      measured[threads] = { threads: (JSON.parse(run.stdout) as { threads: number }).threads, maxRssKiB };
    }
    // Generous: each idle thread costs ~5 MB, so 256 of them cost over a gigabyte.
    expect(measured['256']!.maxRssKiB).toBeLessThan(measured['2']!.maxRssKiB + 100 * 1024);
    expect(measured['2']!.threads).toBe(1);
    expect(measured['256']!.threads).toBe(1);
  });

  it('the library starts no more threads than batches in flight, nor more than 4 per core', async () => {
    const root = tempDir();
    const source = join(root, 'src');
    // 1,000 small files: 4 batches of at most 256 files.
    await createTree(source, store(1000));
    const made = await backup({ source, dest: join(root, 'backup'), threads: 256, sync: false });
    expect(made.threads).toBeGreaterThanOrEqual(1);
    expect(made.threads).toBeLessThanOrEqual(Math.min(4, availableParallelism() * 4));
    const checked = await verify({ backup: join(root, 'backup'), threads: 256 });
    expect(checked.threads).toBeLessThanOrEqual(Math.min(4, availableParallelism() * 4));
    const restored = await restore({ backup: join(root, 'backup'), target: join(root, 't'), threads: 256 });
    expect(restored.threads).toBeLessThanOrEqual(Math.min(4, availableParallelism() * 4));
  });

  it('the library still refuses a thread count out of range', async () => {
    const root = tempDir();
    const source = join(root, 'src');
    await createTree(source, store(1));
    for (const threads of [0, 257]) {
      await expect(backup({ source, dest: join(root, 'out'), threads })).rejects.toMatchObject({
        code: 'ERR_INVALID_OPTION',
      });
    }
  });
});

describe('Node options of the statesnap process', () => {
  it('ones a worker refuses (V8 and process-wide: --max-old-space-size, --stack-trace-limit) do not stop a run', async () => {
    const root = tempDir();
    const source = join(root, 'src');
    await createTree(source, store(20));
    const run = await runCli(['backup', '--no-sync', '--threads', '2', source, join(root, 'out')], {
      nodeArgs: ['--max-old-space-size=512', '--stack-trace-limit=20'],
    });
    expect({ exitCode: run.exitCode, stderr: run.stderr }).toEqual({ exitCode: 0, stderr: '' });
  });

  it('ones a worker takes reach the workers: --cpu-prof writes a profile per thread', async () => {
    const root = tempDir();
    const source = join(root, 'src');
    await createTree(source, store(600));
    const profiles = join(root, 'profiles');
    const run = await runCli(['backup', '--no-sync', '--threads', '2', '--json', source, join(root, 'out')], {
      nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profiles}`],
    });
    expect(run.exitCode, run.stderr).toBe(0);
    const { threads } = JSON.parse(run.stdout);
    // The main thread's profile, and one per worker thread the run started.
    expect(readdirSync(profiles).filter((name) => name.endsWith('.cpuprofile'))).toHaveLength(1 + threads);
  });
});
