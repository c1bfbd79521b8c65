// The file worker's descriptor hygiene: every descriptor it opens is closed exactly once, also when the final
// rename of a temp file fails after the close (worker threads share one descriptor table, so a second close
// could close another thread's file). The real built worker runs one task, under strace where it counts.
// And its containment once per directory: a directory that moves out of the source mid-batch takes back
// every file read through it.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, watch, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type CopyTask, postedTask, type TaskResult } from '../dist/src/core/protocol.js';
import { performTask } from '../dist/workers/file-worker.js';
import { requireDependency } from './helpers/dependencies.js';
import { cleanup, tempDir } from './helpers/tree.js';

afterEach(cleanup);

const WORKER = resolve(import.meta.dirname, '../dist/workers/file-worker.js');
const PROTOCOL = resolve(import.meta.dirname, '../dist/src/core/protocol.js');

/**
 * A merge-style copy of `a.json` into `target`, where a directory has been planted at `target/a.json`: the
 * temp file is written and closed, and only then does its rename over the directory fail (EISDIR).
 */
function plantedDirectoryCase(): { task: CopyTask; target: string } {
  const root = tempDir();
  const source = join(root, 'backup');
  const target = join(root, 'target');
  mkdirSync(source);
  writeFileSync(join(source, 'a.json'), '{"a":1}');
  mkdirSync(join(target, 'a.json'), { recursive: true });
  writeFileSync(join(target, 'a.json', 'inside.txt'), 'planted');
  const task: CopyTask = {
    kind: 'copy',
    files: [{ rel: 'a.json', size: 7 }],
    from: { root: source, confineTo: source, attributesFrom: 'source', changedRetries: 0, expectSize: true },
    to: { root: target, confineTo: target, writeMode: 'replace', owners: false, modeMask: 0o7777 },
  };
  return { task, target };
}

function noStop(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
}

function hasStrace(): boolean {
  return spawnSync('strace', ['-V']).status === 0;
}

// Runs the task in a child process of its own, under strace; prints the result as JSON.
const CHILD = `
const { performTask } = await import(process.argv[1]);
const { postedTask } = await import(process.argv[3]);
const task = JSON.parse(process.argv[2]);
const stop = new Int32Array(new SharedArrayBuffer(4));
process.stdout.write(JSON.stringify(performTask({ task: postedTask(task), stop })));
`;

describe('a temp file whose final rename fails', () => {
  it('is reported as dest-failed with the rename error, removed, and the directory there left alone', () => {
    const { task, target } = plantedDirectoryCase();
    const result: TaskResult = performTask({ task: postedTask(task), stop: noStop() });
    expect(result.outcomes).toMatchObject([
      { ok: false, rel: 'a.json', problem: 'dest-failed', cause: { code: 'EISDIR', syscall: 'rename' } },
    ]);
    expect(readdirSync(target)).toEqual(['a.json']);
    expect(readFileSync(join(target, 'a.json', 'inside.txt'), 'utf8')).toBe('planted');
  });

  it('has its descriptor closed exactly once (strace: no close() after the failed rename, no EBADF)', (ctx) => {
    requireDependency(ctx, hasStrace() ? null : 'strace is not installed');
    const { task } = plantedDirectoryCase();
    const trace = join(tempDir(), 'trace');
    const run = spawnSync(
      'strace',
      [
        '-f',
        '-e',
        'trace=openat,close,rename,renameat,renameat2',
        '-o',
        trace,
        process.execPath,
        '--input-type=module',
        '-e',
        CHILD,
        WORKER,
        JSON.stringify(task),
        PROTOCOL,
      ],
      { encoding: 'utf8' },
    );
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({
      outcomes: [{ ok: false, problem: 'dest-failed', cause: { code: 'EISDIR' } }],
    });
    expect(existsSync(trace)).toBe(true);
    const lines = readFileSync(trace, 'utf8').split('\n');
    // `<tid> openat(AT_FDCWD, "/proc/self/fd/<dir>/.statesnap-….tmp", O_WRONLY|O_CREAT|O_EXCL…) = <fd>`: the temp
    // file is made through the descriptor of its (confined) directory.
    const opened = lines.find((line) => line.includes('/.statesnap-') && line.includes('O_CREAT'));
    expect(opened, 'the openat of the temp file').toBeDefined();
    const fd = /= (\d+)$/.exec(opened!)?.[1];
    expect(fd).toBeDefined();
    // Until the number is handed out again by a later open.
    const after = lines.slice(lines.indexOf(opened!) + 1);
    const reopened = after.findIndex((line) => line.includes('openat(') && line.endsWith(`= ${fd}`));
    const closes = (reopened < 0 ? after : after.slice(0, reopened)).filter((line) =>
      new RegExp(`\\bclose\\(${fd}\\)`).test(line),
    );
    expect(closes, `close(${fd}) after the temp file's open`).toHaveLength(1);
    expect(closes[0]).toMatch(/= 0$/);
    expect(lines.filter((line) => line.includes('EBADF'))).toEqual([]);
  });
});

describe('a source directory moved outside the source while its files are read', () => {
  it('makes every file read through it escaped, with its copy removed', async () => {
    const root = tempDir();
    const source = join(root, 'source');
    const dir = join(source, 'dir');
    const dest = join(root, 'dest');
    mkdirSync(dir, { recursive: true });
    mkdirSync(join(dest, 'dir'), { recursive: true });
    // A 48 MiB file first: the directory is moved while the worker copies it, long before the batch ends.
    writeFileSync(join(dir, 'a-big.bin'), Buffer.alloc(48 << 20, 1));
    const files = [{ rel: 'dir/a-big.bin', size: 48 << 20 }];
    for (let i = 0; i < 20; i++) {
      writeFileSync(join(dir, `f-${i}.json`), `{"i":${i}}`);
      files.push({ rel: `dir/f-${i}.json`, size: `{"i":${i}}`.length });
    }
    const task: CopyTask = {
      kind: 'copy',
      files,
      from: {
        root: source,
        confineTo: source,
        attributesFrom: 'source',
        changedRetries: 0,
        expectSize: false,
      },
      to: { root: dest, confineTo: null, writeMode: 'create', owners: false, modeMask: 0o7777 },
    };
    const child = spawn(
      process.execPath,
      ['--input-type=module', '-e', CHILD, WORKER, JSON.stringify(task), PROTOCOL],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    const exited = new Promise<number | null>((resolveExit) => child.on('exit', resolveExit));
    // The copy of the big file appears as soon as the worker starts writing it: then the directory moves out.
    const watcher = watch(join(dest, 'dir'));
    await new Promise<void>((resolveCreated) => watcher.once('change', () => resolveCreated()));
    watcher.close();
    process.kill(child.pid!, 'SIGSTOP');
    const stillReading = stdout === '';
    renameSync(dir, join(root, 'moved-out'));
    process.kill(child.pid!, 'SIGCONT');
    expect(await exited).toBe(0);
    expect(stillReading, 'the batch ended before the directory moved: nothing was tested').toBe(true);
    const result = JSON.parse(stdout) as TaskResult;
    expect(result.outcomes).toHaveLength(files.length);
    for (const outcome of result.outcomes) expect(outcome).toMatchObject({ ok: false, problem: 'escaped' });
    expect(readdirSync(join(dest, 'dir'))).toEqual([]);
    expect(result.bytes).toBe(0);
  });
});
