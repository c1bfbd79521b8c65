// Stopping a run in the middle of a large file: the workers notice the stop between chunks, so an abort
// (library), SIGINT or SIGTERM (CLI) ends a multi-gigabyte copy or hash within about a second of the signal,
// with everything the run made removed and exit 130 (SIGINT) or 143 (SIGTERM). The bound is generous (3 s)
// for a loaded machine: without the stop check, the copy of the rest of the file takes far longer.

import { spawnSync } from 'node:child_process';
import {
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, type TestContext } from 'vitest';
import { backup, restore, verify } from '../dist/src/index.js';
import { expectOneLineError, waitFor } from './helpers/backup.js';
import { fingerprint, restoreSiblings, writeHandBackup } from './helpers/restore.js';
import { type CliRun, cleanup, type RunningCli, startCli, tempDir } from './helpers/tree.js';

afterEach(cleanup);

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const STOP_BOUND_MS = 3_000;

/** A source holding one fully allocated 3 GiB file: fallocate makes it at once, and a copy writes it all. */
function allocatedSource(ctx: TestContext, root: string): string {
  const source = join(root, 'src');
  mkdirSync(join(source, 'memory'), { recursive: true });
  writeFileSync(join(source, 'memory', 'a.json'), '{"a":1}');
  const made = spawnSync('fallocate', ['-l', String(3 * GiB), join(source, 'memory', 'big.bin')]);
  if (made.status !== 0) ctx.skip(`cannot fallocate a 3 GiB file here: ${made.stderr}`);
  return source;
}

// sha256 of 16 GiB of zero bytes (`head -c 16G /dev/zero | sha256sum`).
const SHA256_OF_16_GIB_OF_ZEROS = '07d217ebccc55480b7afa191674ec5da87f2d14efbc04dbc7e40efe345f16776';

/**
 * A statesnap backup holding a 16 GiB file of zeros, all one hole: it costs no disk, and reading and hashing
 * it takes many seconds.
 */
function sparseBackup(root: string): string {
  const backupDir = join(root, 'backup');
  writeHandBackup(backupDir, [
    { type: 'dir', path: 'memory' },
    { type: 'file', path: 'memory/a.json', content: '{"a":1}' },
    {
      type: 'file',
      path: 'memory/big.bin',
      content: '',
      onDisk: false,
      size: 16 * GiB,
      sha256: SHA256_OF_16_GIB_OF_ZEROS,
    },
  ]);
  writeFileSync(join(backupDir, 'memory', 'big.bin'), '');
  truncateSync(join(backupDir, 'memory', 'big.bin'), 16 * GiB);
  return backupDir;
}

/** Files below `dir` (not below `except`) whose name contains `big.bin`, with their sizes. */
function copiesOfBig(dir: string, except: string): number[] {
  const sizes: number[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return sizes;
    throw error;
  }
  for (const name of names) {
    const path = join(dir, name);
    if (path === except) continue;
    // The run creates and removes files meanwhile (its journal, staging): one gone since the readdir is skipped.
    const stats = lstatSync(path, { throwIfNoEntry: false });
    if (stats === undefined) continue;
    if (stats.isDirectory()) sizes.push(...copiesOfBig(path, except));
    else if (name.includes('big.bin')) sizes.push(stats.size);
  }
  return sizes;
}

/** Resolves once the run is copying the big file: a copy of it below `root` holds at least `bytes`. */
function copyUnderWay(root: string, except: string, bytes: number): Promise<void> {
  return waitFor(
    () => copiesOfBig(root, except).some((size) => size >= bytes),
    60_000,
    'the copy of the big file',
  );
}

/** Sends `signal` to the running CLI and waits for it to exit, which must come within the bound. */
async function stopCli(running: RunningCli, signal: NodeJS.Signals): Promise<CliRun> {
  const signalled = Date.now();
  running.child.kill(signal);
  const run = await running.done;
  expect(Date.now() - signalled).toBeLessThan(STOP_BOUND_MS);
  return run;
}

/** Whether this process (the library's worker threads included) has `path` open. */
function openHere(path: string): boolean {
  return readdirSync('/proc/self/fd').some((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false; // closed since it was listed
    }
  });
}

describe('a stopped backup of a 3 GiB file', () => {
  it('an aborted signal (library) stops it within a second: ERR_ABORTED, no dest, no partial', async (ctx) => {
    const root = tempDir();
    const source = allocatedSource(ctx, root);
    const controller = new AbortController();
    const run = backup({ source, dest: join(root, 'out'), signal: controller.signal, sync: false });
    // A failure before the copy is under way must fail the test, not hang it.
    run.catch(() => {});
    await copyUnderWay(root, source, 32 * MiB);
    const aborted = Date.now();
    controller.abort();
    await expect(run).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    expect(Date.now() - aborted).toBeLessThan(STOP_BOUND_MS);
    expect(readdirSync(root)).toEqual(['src']);
  });

  it.for([
    ['SIGINT', 130, 'ERR_ABORTED'],
    ['SIGTERM', 143, 'ERR_TERMINATED'],
  ] as const)(
    '%s (CLI) stops it within a second: exit %i, one line, no dest, no partial',
    async ([signal, exitCode, code], ctx) => {
      const root = tempDir();
      const source = allocatedSource(ctx, root);
      const running = startCli(['backup', source, join(root, 'out')]);
      await copyUnderWay(root, source, 32 * MiB);
      const run = await stopCli(running, signal);
      expect(run.exitCode).toBe(exitCode);
      expectOneLineError(run, code);
      expect(readdirSync(root)).toEqual(['src']);
    },
  );
});

describe('a stopped restore or verify of a 16 GiB file', () => {
  /** Starts a restore of a 16 GiB file into a target holding `live.json`; resolves once the copy is under way. */
  async function restoreUnderWay(mode: 'replace' | 'merge') {
    const root = tempDir();
    const backupDir = sparseBackup(root);
    const target = join(root, 'target');
    mkdirSync(join(target, 'memory'), { recursive: true });
    writeFileSync(join(target, 'memory', 'live.json'), 'live');
    const before = fingerprint(target);
    // --no-verify: straight to the copy, without a first pass reading the 16 GiB.
    const running = startCli(['restore', '--mode', mode, '--no-verify', backupDir, target]);
    // The copy is under way once the file it writes exists (a copy of holes only has no size yet). A merge
    // writes it under a short temp name that does not name it: the one there once a.json (listed first) is done.
    const memory = join(target, 'memory');
    await (mode === 'replace'
      ? copyUnderWay(root, backupDir, 0)
      : waitFor(
          () =>
            readdirSync(memory).includes('a.json') &&
            readdirSync(memory).some((name) => name.startsWith('.statesnap-')),
          60_000,
          'the copy of the big file',
        ));
    return { target, before, running };
  }

  it('replace restore, SIGTERM (CLI): stops within a second, exit 143, target unchanged, staging removed', async () => {
    const { target, before, running } = await restoreUnderWay('replace');
    const run = await stopCli(running, 'SIGTERM');
    expect(run.exitCode).toBe(143);
    expectOneLineError(run, 'ERR_TERMINATED');
    expect(fingerprint(target)).toEqual(before);
    expect(restoreSiblings(target)).toEqual([]);
  });

  it('merge restore, SIGINT (CLI): stops within a second, exit 130, no temp file or torn file in the target', async () => {
    const { target, running } = await restoreUnderWay('merge');
    const run = await stopCli(running, 'SIGINT');
    expect(run.exitCode).toBe(130);
    expectOneLineError(run, 'ERR_ABORTED');
    // A merge keeps the files it finished (a.json may be there); the one it was writing never appears.
    expect(readdirSync(join(target, 'memory')).filter((name) => name !== 'a.json')).toEqual(['live.json']);
    expect(readFileSync(join(target, 'memory', 'live.json'), 'utf8')).toBe('live');
    expect(restoreSiblings(target)).toEqual([]);
  });

  it('an aborted signal (library) stops a verify within a second: ERR_ABORTED', async () => {
    const root = tempDir();
    const backupDir = sparseBackup(root);
    const controller = new AbortController();
    const run = verify({ backup: backupDir, signal: controller.signal });
    run.catch(() => {});
    // Nothing on disk shows a hash going on: a worker of this process has the file open.
    await waitFor(() => openHere(join(backupDir, 'memory', 'big.bin')), 60_000, 'the hash of the big file');
    const aborted = Date.now();
    controller.abort();
    await expect(run).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    expect(Date.now() - aborted).toBeLessThan(STOP_BOUND_MS);
  });

  it('an aborted signal (library) stops a replace restore within a second: ERR_ABORTED, staging removed', async () => {
    const root = tempDir();
    const backupDir = sparseBackup(root);
    const target = join(root, 'target');
    const controller = new AbortController();
    const run = restore({ backup: backupDir, target, verify: false, signal: controller.signal });
    run.catch(() => {});
    await copyUnderWay(root, backupDir, 0);
    const aborted = Date.now();
    controller.abort();
    await expect(run).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    expect(Date.now() - aborted).toBeLessThan(STOP_BOUND_MS);
    expect(readdirSync(root)).toEqual(['backup']);
  });
});
