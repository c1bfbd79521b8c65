// The tools statesnap is compared against, as the benchmark runs them: Node copiers in this process, and
// coreutils/rsync/tar spawned; plus the `which`, `sync` and `rm -rf` helpers the runner needs around them.

import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Absolute path of an executable on PATH, or null (no shell, no spawn). */
export function which(command: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return null;
}

/** Runs a command to completion with stdout discarded; rejects with its stderr on a non-zero exit. */
export function run(command: string, args: readonly string[]): Promise<void> {
  return new Promise((resolveRun, rejectRun) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      if (stderr.length < 4096) stderr += chunk;
    });
    child.on('error', rejectRun);
    child.on('close', (code, signal) => {
      if (code === 0) resolveRun();
      else
        rejectRun(new Error(`${command} ${args.join(' ')} failed (${signal ?? `exit ${code}`}): ${stderr}`));
    });
  });
}

/**
 * The original's `copy_dir_recursive`, in TypeScript: one awaited readdir, then per entry one awaited lstat
 * and one awaited copy, strictly in sequence; symlinks skipped, directories recursed (tokio::fs::copy is
 * copyFile here; it also copied permission bits, which copyFile does not, a negligible difference).
 */
export async function sequentialCopy(source: string, dest: string): Promise<void> {
  await fsp.mkdir(dest, { recursive: true });
  for (const name of await fsp.readdir(source)) {
    const from = join(source, name);
    const to = join(dest, name);
    const stats = await fsp.lstat(from);
    if (stats.isSymbolicLink()) continue;
    if (stats.isDirectory()) await sequentialCopy(from, to);
    else await fsp.copyFile(from, to);
  }
}

/** Node's own recursive copy, as a user would call it (without verbatimSymlinks it rewrites link targets). */
export function nodeCp(source: string, dest: string): Promise<void> {
  return fsp.cp(source, dest, { recursive: true, verbatimSymlinks: true });
}

export type Copier = (source: string, dest: string) => Promise<void>;

/**
 * fs-extra's `copy`, loaded on demand: it is a dev dependency, so an installed statesnap running
 * `statesnap bench` does not have it. Returns the reason instead when it cannot be loaded.
 */
export async function loadFsExtraCopy(): Promise<Copier | string> {
  try {
    const fsExtra = (await import('fs-extra')) as { default?: { copy?: unknown }; copy?: unknown };
    const copy = (fsExtra.default?.copy ?? fsExtra.copy) as
      | ((from: string, to: string) => Promise<void>)
      | undefined;
    if (typeof copy !== 'function') return 'fs-extra has no copy() export';
    return (source, dest) => copy(source, dest);
  } catch (error) {
    return `fs-extra is not installed (a dev dependency): ${(error as Error).message.split('\n')[0]}`;
  }
}

export function cpA(source: string, dest: string): Promise<void> {
  return run('cp', ['-a', source, dest]);
}

export function rsyncA(source: string, dest: string): Promise<void> {
  return run('rsync', ['-a', `${source}/`, `${dest}/`]);
}

// Paths per `cp` process of the parallel floor: few enough for one command line, many enough that starting a
// process costs little beside the copying.
const FLOOR_PATHS_PER_CP = '4096';
// The pause between two flushes of the parallel floor: an idle loop of `sync` would only cost processes.
const FLOOR_FLUSH_PAUSE_MS = 200;

/**
 * The floor of a durable copy on this machine: `cp -a`'s kernel work (no hashing, no JavaScript per file)
 * spread over one `cp` process per core, with the destination flushed over and over while they copy, as
 * statesnap's durable backup flushes while it copies, and once more at the end. `find | xargs` makes the
 * directories first (without their attributes: their share of the work is small), then hands every other
 * entry, as it is listed, to `cp -a --parents` processes of a few thousand paths each.
 */
export async function cpAParallelSync(source: string, dest: string): Promise<void> {
  await fsp.mkdir(dest);
  await pipeCommands(
    ['find', '.', '-mindepth', '1', '-type', 'd', '-print0'],
    ['xargs', '-0', 'mkdir', '-p', '--'],
    {
      from: source,
      to: dest,
    },
  );
  let copying = true;
  const flushing = (async () => {
    while (copying) {
      await syncFilesystemOf(dest);
      await sleep(FLOOR_FLUSH_PAUSE_MS);
    }
  })();
  try {
    const cores = String(availableParallelism());
    await pipeCommands(
      ['find', '.', '!', '-type', 'd', '-print0'],
      ['xargs', '-0', '-P', cores, '-n', FLOOR_PATHS_PER_CP, 'cp', '-a', '--parents', '-t', dest, '--'],
      { from: source, to: source },
    );
  } finally {
    copying = false;
    await flushing;
  }
  await syncFilesystemOf(dest);
}

/** rsync's incremental copy: files unchanged since `previous` (same size and mtime) become hard links to it. */
export function rsyncLinkDest(previous: string, source: string, dest: string): Promise<void> {
  return run('rsync', ['-a', `--link-dest=${previous}`, `${source}/`, `${dest}/`]);
}

/** The one-thread link farm: every file of `previous` hard-linked, the source not even looked at. */
export function cpAl(previous: string, dest: string): Promise<void> {
  return run('cp', ['-al', previous, dest]);
}

/** `tar -C src -cf - . | tar -C dst -xf -`, the pipe joined at the fd level so no byte passes through Node. */
export async function tarPipe(source: string, dest: string): Promise<void> {
  await fsp.mkdir(dest);
  await pipeCommands(['tar', '-C', source, '-cf', '-', '.'], ['tar', '-C', dest, '-xf', '-'], {
    from: source,
    to: dest,
  });
}

/** `producer | consumer`, run in the directories `from` and `to`, the pipe joined at the fd level. */
async function pipeCommands(
  producer: readonly [string, ...string[]],
  consumer: readonly [string, ...string[]],
  cwd: { from: string; to: string },
): Promise<void> {
  const [producerCommand, ...producerArgs] = producer;
  const [consumerCommand, ...consumerArgs] = consumer;
  const create = spawn(producerCommand, producerArgs, { stdio: ['ignore', 'pipe', 'pipe'], cwd: cwd.from });
  const extract = spawn(consumerCommand, consumerArgs, {
    stdio: [create.stdout, 'ignore', 'pipe'],
    cwd: cwd.to,
  });
  // The consumer has its own copy of the pipe's read end; ours, never read, would keep the producer from closing.
  create.stdout.destroy();
  const finished = (child: ReturnType<typeof spawn>, name: string) =>
    new Promise<void>((resolveChild, rejectChild) => {
      let stderr = '';
      child.stderr?.setEncoding('utf8');
      child.stderr?.on('data', (chunk: string) => {
        stderr += chunk;
      });
      child.on('error', rejectChild);
      child.on('close', (code, signal) =>
        code === 0
          ? resolveChild()
          : rejectChild(new Error(`${name} failed (${signal ?? `exit ${code}`}): ${stderr}`)),
      );
    });
  await Promise.all([finished(create, producerCommand), finished(extract, consumerCommand)]);
}

export function duSb(source: string): Promise<void> {
  return run('du', ['-sb', source]);
}

/** Flushes every filesystem: nothing one case wrote is left for the next one to pay for. */
export function syncAll(): Promise<void> {
  return run('sync', []);
}

/**
 * The baseline's half of "copy, then make it durable": the flush statesnap's durable backup makes (syncfs of
 * the destination's filesystem on Linux), so neither side pays for what other processes wrote elsewhere.
 */
export function syncFilesystemOf(path: string): Promise<void> {
  return process.platform === 'linux' ? run('sync', ['-f', path]) : syncAll();
}

/** `rm -rf` when there is one: about twice as fast as Node's recursive rm (2k-file store: 40 vs 80 ms). */
export async function removeTree(path: string): Promise<void> {
  if (which('rm') !== null) await run('rm', ['-rf', '--', path]);
  else await fsp.rm(path, { recursive: true, force: true });
}
