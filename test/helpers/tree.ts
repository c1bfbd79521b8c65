// Test trees described as literals: build one on the real filesystem, read one back the same way, and run
// the real built CLI. No mocked fs anywhere.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';

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

export type ReadNode =
  | { kind: 'file'; content: string; mode: number }
  | { kind: 'symlink'; target: string }
  | { kind: 'other' }
  | { kind: 'dir'; mode: number; entries: ReadTree };
export interface ReadTree {
  [name: string]: ReadNode;
}

/** Reads a tree back (file content as UTF-8, permission bits), for whole-tree comparisons in tests. */
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

/** A fresh temporary directory; `cleanup()` removes every directory made so far. */
const made: string[] = [];
export function tempDir(prefix = 'statesnap-test-'): string {
  const path = mkdtempSync(join(tmpdir(), prefix));
  made.push(path);
  return path;
}
export function cleanup(): void {
  for (const path of made.splice(0)) {
    try {
      // Restore write permission so read-only directories made by a test can be removed.
      spawnSync('chmod', ['-R', 'u+rwx', path]);
      rmSync(path, { recursive: true, force: true });
    } catch {}
  }
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
