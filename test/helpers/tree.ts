// Test trees: build one on the real filesystem from a literal description, fingerprint one (never following a
// link), and expect one to equal a description; plus temporary directories and the real built CLI. No mocked fs.

import { isUtf8 } from 'node:buffer';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  type BigIntStats,
  chmodSync,
  closeSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { expect } from 'vitest';

export const CLI = resolve(import.meta.dirname, '../../dist/src/cli/main.js');

export type TreeNode =
  | { kind: 'file'; content: string | Buffer; mode?: number; mtime?: number }
  | { kind: 'symlink'; target: string }
  | { kind: 'fifo' }
  | { kind: 'socket' }
  | { kind: 'dir'; entries: Tree; mode?: number; mtime?: number };
export interface Tree {
  [name: string]: TreeNode | Tree;
}

export const file = (
  content: string | Buffer = '',
  options: { mode?: number; mtime?: number } = {},
): TreeNode => ({
  kind: 'file',
  content,
  ...options,
});
export const symlink = (target: string): TreeNode => ({ kind: 'symlink', target });
export const fifo = (): TreeNode => ({ kind: 'fifo' });
export const socket = (): TreeNode => ({ kind: 'socket' });
export const dir = (entries: Tree = {}, options: { mode?: number; mtime?: number } = {}): TreeNode => ({
  kind: 'dir',
  entries,
  ...options,
});

function isNode(value: TreeNode | Tree): value is TreeNode {
  // A file literally named "kind" inside a Tree maps to an object, never to a string.
  return typeof (value as TreeNode).kind === 'string';
}

/** Unix sockets must stay bound to exist; closing them is the caller's job (`closeSockets`). */
const openServers: Array<import('node:net').Server> = [];

export async function createTree(root: string, tree: Tree): Promise<void> {
  mkdirSync(root, { recursive: true });
  const modes: Array<{ path: string; mode?: number; mtime?: number }> = [];
  for (const [name, value] of Object.entries(tree)) {
    const path = join(root, name);
    const node: TreeNode = isNode(value) ? value : dir(value as Tree);
    switch (node.kind) {
      case 'file':
        writeFileSync(path, node.content);
        if (node.mode !== undefined) chmodSync(path, node.mode);
        if (node.mtime !== undefined) utimesSync(path, node.mtime, node.mtime);
        break;
      case 'symlink':
        symlinkSync(node.target, path);
        break;
      case 'fifo': {
        const made = spawnSync('mkfifo', [path]);
        if (made.status !== 0) throw new Error(`mkfifo ${path} failed: ${made.stderr}`);
        break;
      }
      case 'socket': {
        const server = createServer();
        await new Promise<void>((done) => server.listen(path, done));
        openServers.push(server);
        break;
      }
      case 'dir':
        await createTree(path, node.entries);
        modes.push({ path, mode: node.mode, mtime: node.mtime });
        break;
    }
  }
  // Directory attributes last, as the product does: writing inside a directory changes its mtime.
  for (const { path, mode, mtime } of modes) {
    if (mode !== undefined) chmodSync(path, mode);
    if (mtime !== undefined) utimesSync(path, mtime, mtime);
  }
}

export async function closeSockets(): Promise<void> {
  await Promise.all(openServers.splice(0).map((server) => new Promise((done) => server.close(done))));
}

export type EntryKind = 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'char-device' | 'block-device';

/** What a fingerprint records of one entry (read with lstat: a symlink is recorded, never followed). */
export interface EntryPrint {
  kind: EntryKind;
  /** Permission bits in octal, as `chmod` takes them ('644', '2750'). */
  mode: string;
  /** Modification time to the microsecond, ISO 8601 with six decimals (left out with `mtimes: false`). */
  mtime?: string;
  /** Files: size in bytes and the content's sha256 (or why it could not be read). */
  size?: number;
  sha256?: string;
  /** Symlinks: the target as stored. */
  target?: string;
  /** Directories that could not be listed: the error code. */
  unlisted?: string;
}

/** Every entry below a root by relative POSIX path, in path order. */
export type TreePrint = Record<string, EntryPrint>;

export interface PrintOptions {
  /** Record mtimes (false where a test writes the same tree at different times). @default true */
  mtimes?: boolean;
  /** Paths (relative, POSIX) left out together with everything below them. */
  exclude?: (rel: string) => boolean;
}

function kindOf(stats: BigIntStats): EntryKind {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'dir';
  if (stats.isSymbolicLink()) return 'symlink';
  if (stats.isFIFO()) return 'fifo';
  if (stats.isSocket()) return 'socket';
  return stats.isCharacterDevice() ? 'char-device' : 'block-device';
}

function errorCode(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? String(error);
}

/**
 * Whole microseconds as ISO 8601 (`2020-09-13T12:26:40.123000Z`). A copy keeps mtimes to the microsecond
 * (the precision of `utimes`), and Node 24+ sets sub-microsecond times, so nanoseconds would differ.
 */
export function isoMicros(ns: bigint): string {
  const micros = ns / 1000n - (ns < 0n && ns % 1000n !== 0n ? 1n : 0n);
  const fraction = ((micros % 1_000_000n) + 1_000_000n) % 1_000_000n;
  const seconds = (micros - fraction) / 1_000_000n;
  const whole = new Date(Number(seconds) * 1000).toISOString();
  return `${whole.slice(0, -5)}.${fraction.toString().padStart(6, '0')}Z`;
}

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The sha256 of a file's content, read in chunks (a test file may be larger than a Buffer can hold). */
export function sha256File(path: string | Buffer): string {
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

/**
 * How a fingerprint names a path: its text when its bytes are UTF-8, otherwise `b64:` and its bytes in base64
 * (the index's `path_b64`), so two names that differ only in bytes never meet under one key.
 */
export function pathKey(bytes: Buffer): string {
  return isUtf8(bytes) ? bytes.toString('utf8') : `b64:${bytes.toString('base64')}`;
}

/** `root` joined with a `pathKey`, as fs takes it: a Buffer when the path is not UTF-8. */
export function keyPath(root: string, key: string): string | Buffer {
  if (!key.startsWith('b64:')) return join(root, key);
  return Buffer.concat([Buffer.from(`${root}/`), Buffer.from(key.slice(4), 'base64')]);
}

/** The fingerprint of the one entry at `path` (not followed if it is a symlink). */
export function entryPrint(path: string | Buffer, options: PrintOptions = {}): EntryPrint {
  const stats = lstatSync(path, { bigint: true });
  const kind = kindOf(stats);
  const print: EntryPrint = { kind, mode: (stats.mode & 0o7777n).toString(8) };
  if (options.mtimes !== false) print.mtime = isoMicros(stats.mtimeNs);
  if (kind === 'file') {
    print.size = Number(stats.size);
    try {
      print.sha256 = sha256File(path);
    } catch (error) {
      print.sha256 = `unreadable (${errorCode(error)})`;
    }
  } else if (kind === 'symlink') {
    print.target = readlinkSync(path);
  }
  return print;
}

/**
 * Every entry below `root` (not `root` itself), by `pathKey` (names are read as bytes): kind, mode, mtime,
 * size, content hash, symlink target. Equal fingerprints mean the same tree, byte for byte, with the same
 * attributes.
 */
export function fingerprintTree(root: string, options: PrintOptions = {}): TreePrint {
  const found: Array<[string, EntryPrint]> = [];
  const under = (rel: Buffer) => Buffer.concat([Buffer.from(`${root}/`), rel]);
  const visit = (rel: Buffer): void => {
    let names: Buffer[];
    try {
      names = readdirSync(rel.length === 0 ? root : under(rel), { encoding: 'buffer' });
    } catch (error) {
      if (rel.length === 0) throw error;
      found.at(-1)![1].unlisted = errorCode(error);
      return;
    }
    for (const name of names) {
      const childBytes = rel.length === 0 ? name : Buffer.concat([rel, Buffer.from('/'), name]);
      const child = pathKey(childBytes);
      if (options.exclude?.(child)) continue;
      const print = entryPrint(under(childBytes), options);
      found.push([child, print]);
      if (print.kind === 'dir') visit(childBytes);
    }
  };
  visit(Buffer.alloc(0));
  return Object.fromEntries(found.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The entries of `print` that `keep` accepts. */
export function filterPrint(print: TreePrint, keep: (rel: string, entry: EntryPrint) => boolean): TreePrint {
  return Object.fromEntries(Object.entries(print).filter(([rel, entry]) => keep(rel, entry)));
}

/** Short UTF-8 content as itself (readable in a failed expectation), anything else by size and hash. */
function shownContent(content: Buffer): string {
  const text = content.toString('utf8');
  return content.length <= 200 && Buffer.from(text).equals(content)
    ? text
    : `${content.length} bytes, sha256 ${sha256(content)}`;
}

/** What a description says of each entry, by relative path (attributes it leaves out are not checked). */
function describeTree(tree: Tree, prefix = '', out: Record<string, TreeNode> = {}): Record<string, TreeNode> {
  for (const [name, value] of Object.entries(tree)) {
    const node: TreeNode = isNode(value) ? value : dir(value as Tree);
    out[`${prefix}${name}`] = node;
    if (node.kind === 'dir') describeTree(node.entries, `${prefix}${name}/`, out);
  }
  return out;
}

type Shown = Record<string, string | number>;

/** A described mtime (seconds, as `utimes` takes them) in whole microseconds' nanoseconds. */
function describedMtimeNs(seconds: number): bigint {
  return BigInt(Math.round(seconds * 1e6)) * 1000n;
}

function shownExpected(node: TreeNode): Shown {
  const shown: Shown = { kind: node.kind };
  if ((node.kind === 'file' || node.kind === 'dir') && node.mode !== undefined)
    shown.mode = node.mode.toString(8);
  if ((node.kind === 'file' || node.kind === 'dir') && node.mtime !== undefined) {
    shown.mtime = isoMicros(describedMtimeNs(node.mtime));
  }
  if (node.kind === 'file') shown.content = shownContent(Buffer.from(node.content));
  if (node.kind === 'symlink') shown.target = node.target;
  return shown;
}

/** The entry at `path` shown with the attributes its description gives (all of them for an unexpected entry). */
function shownActual(path: string, node: TreeNode | undefined): Shown {
  const print = entryPrint(path);
  if (node === undefined) return { ...print };
  const shown: Shown = { kind: print.kind };
  if ((node.kind === 'file' || node.kind === 'dir') && node.mode !== undefined) shown.mode = print.mode;
  if ((node.kind === 'file' || node.kind === 'dir') && node.mtime !== undefined) {
    // The described seconds went through a double on their way to the disk: within a microsecond is a match.
    const wantedNs = describedMtimeNs(node.mtime);
    const offNs = lstatSync(path, { bigint: true }).mtimeNs - wantedNs;
    shown.mtime = offNs > -1000n && offNs < 1000n ? isoMicros(wantedNs) : print.mtime!;
  }
  if (print.kind === 'file' && node.kind === 'file') shown.content = shownContent(readFileSync(path));
  if (print.target !== undefined) shown.target = print.target;
  return shown;
}

/**
 * Expects the tree at `root` to be exactly `expected`: the same paths, each of the described kind, content and
 * symlink target, and the mode and mtime where the description gives them.
 */
export function expectTree(root: string, expected: Tree, message?: string): void {
  const described = describeTree(expected);
  const wanted = Object.fromEntries(
    Object.entries(described).map(([rel, node]) => [rel, shownExpected(node)]),
  );
  const actual = Object.fromEntries(
    Object.keys(fingerprintTree(root, { mtimes: false })).map((rel) => [
      rel,
      shownActual(join(root, rel), described[rel]),
    ]),
  );
  expect(actual, message).toEqual(wanted);
}

export type ReadNode =
  | { kind: 'file'; content: string; mode: number }
  | { kind: 'symlink'; target: string }
  | { kind: 'other' }
  | { kind: 'dir'; mode: number; entries: ReadTree };
export interface ReadTree {
  [name: string]: ReadNode;
}

/**
 * Reads a tree back (file content as UTF-8, permission bits), for whole-tree comparisons in tests.
 * @deprecated use `fingerprintTree` or `expectTree`; kept while tests on other branches still call it.
 */
export function readTree(root: string, options: { ignore?: readonly string[] } = {}): ReadTree {
  const result: ReadTree = {};
  for (const name of readdirSync(root).sort()) {
    if (options.ignore?.includes(name)) continue;
    const path = join(root, name);
    const stats = lstatSync(path);
    if (stats.isFile())
      result[name] = { kind: 'file', content: readFileSync(path, 'utf8'), mode: stats.mode & 0o7777 };
    else if (stats.isSymbolicLink()) result[name] = { kind: 'symlink', target: readlinkSync(path) };
    else if (stats.isDirectory())
      result[name] = { kind: 'dir', mode: stats.mode & 0o7777, entries: readTree(path) };
    else result[name] = { kind: 'other' };
  }
  return result;
}

/** A fresh temporary directory; `cleanup()` (afterEach) removes every directory made so far. */
const made: string[] = [];
export function tempDir(prefix = 'statesnap-test-'): string {
  const path = mkdtempSync(join(tmpdir(), prefix));
  made.push(path);
  return path;
}

/**
 * A temporary directory for a fixture that a file's tests only read, made once in `beforeAll`: `cleanup()` leaves
 * it, `cleanupFixtures()` (afterAll) removes it.
 */
const fixtures: string[] = [];
export function fixtureDir(prefix = 'statesnap-fixture-'): string {
  const path = mkdtempSync(join(tmpdir(), prefix));
  fixtures.push(path);
  return path;
}

function removeAll(paths: string[]): void {
  for (const path of paths.splice(0)) {
    try {
      // Restore write permission so read-only directories made by a test can be removed.
      spawnSync('chmod', ['-R', 'u+rwx', path]);
      rmSync(path, { recursive: true, force: true });
    } catch {}
  }
}

export function cleanup(): void {
  removeAll(made);
}

export function cleanupFixtures(): void {
  removeAll(fixtures);
}

export interface CliRun {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunningCli {
  child: ChildProcess;
  done: Promise<CliRun>;
}

export interface CliOptions {
  cwd?: string;
  /** Options for node itself, before the CLI's path (e.g. `--import <preload>`). */
  nodeArgs?: readonly string[];
  timeoutMs?: number;
  /** Added to the environment; an `undefined` value removes a variable. */
  env?: Record<string, string | undefined>;
}

/**
 * The environment of a CLI under test: without the `npm_lifecycle_event=npx` that `npx vitest` would pass
 * down (it makes statesnap print `npx statesnap` in its commands), plus `extra`.
 */
export function cliEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  return { ...process.env, npm_lifecycle_event: undefined, ...extra };
}

/** Starts the real built `statesnap` binary without waiting for it, so a test can signal it mid-run. */
export function startCli(args: readonly string[], options: CliOptions = {}): RunningCli {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), CLI, ...args], {
    cwd: options.cwd,
    env: cliEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return collect(child, options.timeoutMs);
}

/** The user the permission tests run statesnap as: nobody, without groups or capabilities. */
export const UNPRIVILEGED_UID = 65534;

/**
 * Starts the built binary as an unprivileged user: as root through setpriv (root bypasses the permission
 * checks these tests are about); a test run that is itself unprivileged (`npm run test:unprivileged`) runs
 * it directly. Its trees must belong to that user (`giveToUnprivileged`).
 */
export function startCliUnprivileged(args: readonly string[], options: CliOptions = {}): RunningCli {
  if (!isRoot) return startCli(args, options);
  const id = String(UNPRIVILEGED_UID);
  const drop = [`--reuid=${id}`, `--regid=${id}`, '--clear-groups', '--inh-caps=-all'];
  const child = spawn('setpriv', [...drop, process.execPath, CLI, ...args], {
    cwd: options.cwd,
    env: cliEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return collect(child, options.timeoutMs);
}

export function runCliUnprivileged(args: readonly string[], options: CliOptions = {}): Promise<CliRun> {
  return startCliUnprivileged(args, options).done;
}

/** Hands `path` (recursively) to the unprivileged user; a no-op when the tests already run as one. */
export function giveToUnprivileged(path: string): void {
  if (!isRoot) return;
  const run = spawnSync('chown', ['-R', `${UNPRIVILEGED_UID}:${UNPRIVILEGED_UID}`, path]);
  if (run.status !== 0) throw new Error(`chown ${path} failed: ${run.stderr}`);
}

function collect(
  child: ChildProcess & { stdout: Readable; stderr: Readable },
  timeoutMs = 60_000,
): RunningCli {
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const done = new Promise<CliRun>((resolveRun, rejectRun) => {
    child.on('error', rejectRun);
    child.on('close', (exitCode, signal) => {
      clearTimeout(timer);
      resolveRun({ exitCode, signal, stdout, stderr });
    });
  });
  return { child, done };
}

/**
 * Runs `file` (a wrapper such as `setpriv … node`, or `sh -c 'ulimit …; exec "$@"'`) in the CLI's
 * environment and collects its output like runCli.
 */
export function runProgram(file: string, args: readonly string[], options: CliOptions = {}): Promise<CliRun> {
  const child = spawn(file, args, {
    cwd: options.cwd,
    env: cliEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return collect(child, options.timeoutMs).done;
}

/** Runs the real built `statesnap` binary. */
export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliRun> {
  return startCli(args, options).done;
}

/**
 * A directory holding `statesnap` and `npx` executables that run the built binary, so that a command line
 * printed for users (`statesnap verify …`, `npx statesnap verify …`) runs exactly as printed through `sh -c`.
 */
export function binShims(): string {
  const bin = tempDir('statesnap-bin-');
  const run = `exec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} "$@"`;
  writeFileSync(join(bin, 'statesnap'), `#!/bin/sh\n${run}\n`, { mode: 0o755 });
  writeFileSync(
    join(bin, 'npx'),
    `#!/bin/sh\n[ "$1" = statesnap ] || { echo "not a statesnap command: npx $*" >&2; exit 127; }\nshift\n${run}\n`,
    { mode: 0o755 },
  );
  return bin;
}

/** Runs one printed command line through `sh -c`, with `bin` (from binShims) first on PATH. */
export function runAsPrinted(line: string, options: CliOptions & { bin: string }): Promise<CliRun> {
  const child = spawn('sh', ['-c', line], {
    cwd: options.cwd,
    env: cliEnv({ PATH: `${options.bin}:${process.env.PATH}`, ...options.env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return collect(child, options.timeoutMs).done;
}

export const isRoot = process.getuid?.() === 0;
