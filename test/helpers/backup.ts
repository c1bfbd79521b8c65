// Checks shared by the backup tests: the invariant every backup must keep (the index says exactly what is on
// disk), a search of a whole backup for content that must never be there, mounts, file leases, and waiting.

import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { lstatSync, readdirSync, readFileSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { expect } from 'vitest';
import { ManifestSchema } from '../../dist/src/format/manifest-schema.js';
import { type CliRun, fingerprintTree, isoMicros, pathKey, sha256 } from './tree.js';

export { type RunningCli, sha256, sha256File, startCli } from './tree.js';

export interface IndexLine {
  /** Absent when the path is not UTF-8: `path_b64` holds its bytes then. */
  path: string;
  path_b64?: string;
  type: string;
  size?: number;
  mode?: number;
  mtime_ns?: string;
  ctime_ns?: string;
  ino?: string;
  uid?: number;
  gid?: number;
  sha256?: string;
  skipped?: boolean;
  /** The file is a hard link into the backup's link source. */
  linked?: boolean;
}

/** An index line's path as the fingerprint names it (`pathKey`). */
export function lineKey(line: IndexLine): string {
  return line.path_b64 === undefined ? line.path : pathKey(Buffer.from(line.path_b64, 'base64'));
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

/**
 * Every entry below `root` by relative POSIX path, never following symlinks.
 * @deprecated use `fingerprintTree` (./tree.js); kept while tests on other branches still call it.
 */
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

const OWN_FILES = new Set([
  'manifest.json',
  '.statesnap',
  '.statesnap/index.jsonl',
  '.statesnap/published.json',
]);

/**
 * The invariant of every backup: the manifest validates, the index's line count and sha256 are the ones the
 * manifest records, every file the index lists is on disk with that size, mode, mtime and content hash, every
 * directory it lists is a directory with that mode and mtime, and nothing else (no skipped entry, no stray
 * file) is in the backup. Returns the index for further checks.
 */
export function expectBackupConsistent(dest: string): IndexLine[] {
  const manifest = ManifestSchema.parse(readManifestJson(dest));
  const extras = manifest.statesnap!;
  expect(extras).toBeDefined();
  const indexText = readFileSync(join(dest, '.statesnap', 'index.jsonl'));
  const index = readBackupIndex(dest);
  expect(extras.index.entries).toBe(index.length);
  expect(extras.index.sha256).toBe(sha256(indexText));
  const onDisk = fingerprintTree(dest);
  for (const own of OWN_FILES) delete onDisk[own];
  let files = 0;
  let dirs = 0;
  let bytes = 0;
  for (const entry of index) {
    const key = lineKey(entry);
    const found = onDisk[key];
    const recorded = { mode: entry.mode?.toString(8), mtime: isoMicros(BigInt(entry.mtime_ns ?? 0)) };
    if (entry.type === 'file') {
      expect(found, `${key} in the backup`).toEqual({
        kind: 'file',
        ...recorded,
        size: entry.size,
        sha256: entry.sha256,
      });
      files++;
      bytes += entry.size!;
    } else if (entry.type === 'dir') {
      expect(found, `${key} in the backup`).toEqual({ kind: 'dir', ...recorded });
      dirs++;
    } else {
      expect(entry.skipped, `${key} is marked skipped`).toBe(true);
      expect(found, `skipped ${key} is not in the backup`).toBeUndefined();
    }
    delete onDisk[key];
  }
  expect(Object.keys(onDisk), 'entries in the backup that the index does not list').toEqual([]);
  expect(extras.totals).toEqual({ files, dirs, bytes });
  return index;
}

/** Paths below `root` whose name or (for regular files) content contains `marker`. */
export function findMarker(root: string, marker: string): string[] {
  const found: string[] = [];
  for (const [rel, entry] of Object.entries(fingerprintTree(root, { mtimes: false }))) {
    if (rel.includes(marker)) found.push(rel);
    else if (entry.kind === 'file' && readFileSync(join(root, rel)).includes(marker)) found.push(rel);
  }
  return found;
}

/** Names beside `dest` that belong to it (`<dest>.partial-…`, `<dest>.replaced-…`), dest itself excluded. */
export function siblingsOf(dest: string): string[] {
  const prefix = `${basename(dest)}.`;
  return readdirSync(dirname(dest)).filter((name) => name.startsWith(prefix));
}

/**
 * @deprecated a fixed delay is a guess at how far a run got: stop it at a pause point (./pause.ts) instead.
 * Kept while tests on other branches still call it.
 */
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

/**
 * An `onProgress` that does `action` once, at the first report: after the first finished batch, when the walk
 * has planned more than has been copied. `ran` says whether it did.
 */
export function atFirstProgress(action: () => void): { onProgress: () => void; readonly ran: boolean } {
  let ran = false;
  return {
    onProgress: () => {
      if (ran) return;
      ran = true;
      action();
    },
    get ran() {
      return ran;
    },
  };
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
