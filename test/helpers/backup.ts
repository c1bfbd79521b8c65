// Checks shared by the backup tests: the invariant every backup must keep (the index says exactly what is on
// disk), a search of a whole backup for content that must never be there, and a CLI run that can be
// signalled while it works.

import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, lstatSync, openSync, readdirSync, readFileSync, readSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { expect } from 'vitest';
import { ManifestSchema } from '../../dist/src/format/manifest.js';
import type { CliRun } from './tree.js';

export { type RunningCli, startCli } from './tree.js';

export interface IndexLine {
  path: string;
  type: string;
  size?: number;
  mode?: number;
  mtime_ns?: string;
  sha256?: string;
  skipped?: boolean;
}

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The sha256 of a file's content, read in chunks (a test file may be larger than a Buffer can hold). */
export function sha256File(path: string): string {
  const hash = createHash('sha256');
  const chunk = Buffer.allocUnsafe(1 << 20);
  const fd = openSync(path, 'r');
  try {
    for (let n = readSync(fd, chunk); n > 0; n = readSync(fd, chunk)) hash.update(chunk.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

export function readBackupIndex(dest: string): IndexLine[] {
  const text = readFileSync(join(dest, '.statesnap', 'index.jsonl'), 'utf8');
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as IndexLine);
}

export function readManifestJson(dest: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(dest, 'manifest.json'), 'utf8')) as Record<string, unknown>;
}

/** Every entry below `root` by relative POSIX path, never following symlinks. */
export function listEntries(root: string, rel = ''): Map<string, Stats> {
  const out = new Map<string, Stats>();
  for (const name of readdirSync(rel === '' ? root : join(root, rel))) {
    const child = rel === '' ? name : `${rel}/${name}`;
    const stats = lstatSync(join(root, child));
    out.set(child, stats);
    if (stats.isDirectory()) for (const [k, v] of listEntries(root, child)) out.set(k, v);
  }
  return out;
}

const OWN_FILES = new Set(['manifest.json', '.statesnap', '.statesnap/index.jsonl']);

/**
 * The invariant of every backup: the manifest validates, the index's line count and sha256 are the ones the
 * manifest records, every file the index lists is on disk with that size, mode and content hash, every
 * directory it lists is a directory, and nothing else (no skipped entry, no stray file) is in the backup.
 * Returns the index for further checks.
 */
export function expectBackupConsistent(dest: string): IndexLine[] {
  const manifest = ManifestSchema.parse(readManifestJson(dest));
  const extras = manifest.statesnap!;
  expect(extras).toBeDefined();
  const indexText = readFileSync(join(dest, '.statesnap', 'index.jsonl'));
  const index = readBackupIndex(dest);
  expect(extras.index.entries).toBe(index.length);
  expect(extras.index.sha256).toBe(sha256(indexText));
  const onDisk = listEntries(dest);
  for (const own of OWN_FILES) onDisk.delete(own);
  let files = 0;
  let dirs = 0;
  let bytes = 0;
  for (const entry of index) {
    const stats = onDisk.get(entry.path);
    if (entry.type === 'file') {
      expect(stats?.isFile(), `${entry.path} is a file in the backup`).toBe(true);
      expect({ path: entry.path, size: stats!.size, mode: stats!.mode & 0o7777 }).toEqual({
        path: entry.path,
        size: entry.size,
        mode: entry.mode,
      });
      expect(sha256File(join(dest, entry.path)), `sha256 of ${entry.path}`).toBe(entry.sha256);
      files++;
      bytes += stats!.size;
    } else if (entry.type === 'dir') {
      expect(stats?.isDirectory(), `${entry.path} is a directory in the backup`).toBe(true);
      expect(stats!.mode & 0o7777, `mode of ${entry.path}`).toBe(entry.mode);
      dirs++;
    } else {
      expect(entry.skipped, `${entry.path} is marked skipped`).toBe(true);
      expect(stats, `skipped ${entry.path} is not in the backup`).toBeUndefined();
    }
    onDisk.delete(entry.path);
  }
  expect([...onDisk.keys()], 'entries in the backup that the index does not list').toEqual([]);
  expect(extras.totals).toEqual({ files, dirs, bytes });
  return index;
}

/** Paths below `root` whose name or (for regular files) content contains `marker`. */
export function findMarker(root: string, marker: string): string[] {
  const found: string[] = [];
  for (const [rel, stats] of listEntries(root)) {
    if (rel.includes(marker)) found.push(rel);
    else if (stats.isFile() && readFileSync(join(root, rel)).includes(marker)) found.push(rel);
  }
  return found;
}

/** Names beside `dest` that belong to it (`<dest>.partial-…`, `<dest>.replaced-…`), dest itself excluded. */
export function siblingsOf(dest: string): string[] {
  const prefix = `${basename(dest)}.`;
  return readdirSync(dirname(dest)).filter((name) => name.startsWith(prefix));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolveSleep) => setTimeout(resolveSleep, ms));
}

/** Resolves once `check()` is true, polling every few ms; rejects after `timeoutMs`. */
export async function waitFor(check: () => boolean, timeoutMs = 20_000, what = 'condition'): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** A one-line error on stderr naming the stable code, nothing on stdout. */
export function expectOneLineError(run: CliRun, code: string): void {
  expect(run.stdout).toBe('');
  const lines = run.stderr.trimEnd().split('\n');
  expect(lines, run.stderr).toHaveLength(1);
  expect(lines[0]).toContain(`[${code}]`);
}

const mounted: string[] = [];

/** Runs `mount <args> <target>`; false (and nothing to undo) where this machine does not allow it. */
export function tryMount(args: readonly string[], target: string): boolean {
  const run = spawnSync('mount', [...args, target], { stdio: 'ignore' });
  if (run.status !== 0) return false;
  mounted.push(target);
  return true;
}

/** Unmounts what `tryMount` mounted, innermost first; call before removing the temp dirs. */
export function unmountAll(): void {
  for (const target of mounted.splice(0).reverse()) {
    if (spawnSync('umount', [target]).status !== 0) spawnSync('umount', ['-l', target]);
  }
}

/**
 * Holds a write lease (fcntl F_SETLEASE) on `path` from a python3 child: while it is held, any other
 * process's open() of the file with O_NONBLOCK fails with EAGAIN — a file that cannot be opened even by root.
 * Resolves to the child (kill it to release the lease), or null where leases or python3 are unavailable.
 */
export async function holdWriteLease(path: string): Promise<ChildProcessWithoutNullStreams | null> {
  const script = [
    'import fcntl, os, signal, sys, time',
    'signal.signal(signal.SIGIO, lambda *a: None)', // a lease break must not kill the holder
    'fd = os.open(sys.argv[1], os.O_RDWR)',
    'fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)',
    'print("leased", flush=True)',
    'time.sleep(60)',
  ].join('\n');
  const child = spawn('python3', ['-c', script, path], { stdio: ['pipe', 'pipe', 'pipe'] });
  return new Promise((resolveLease) => {
    child.on('error', () => resolveLease(null));
    child.on('exit', () => resolveLease(null));
    child.stdout.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('leased')) resolveLease(child);
    });
  });
}

/** Kind, size, mode and mtime of every entry below `root`: equal snapshots mean nothing was created or touched. */
export function snapshot(root: string): string[] {
  return [...listEntries(root)]
    .map(([rel, stats]) => {
      const kind = stats.isDirectory() ? 'd' : stats.isFile() ? 'f' : stats.isSymbolicLink() ? 'l' : 'o';
      return `${rel} ${kind} ${stats.size} ${stats.mode.toString(8)} ${stats.mtimeMs}`;
    })
    .sort();
}
