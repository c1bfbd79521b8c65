// The library API of backup(): options validated before any I/O, AbortSignal before and during a run,
// onProgress, and what two runs racing for one destination do. Real trees, the real worker pool.

import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { generateStore } from '../dist/src/demo/generator.js';
import { IndexWriter } from '../dist/src/format/index-file.js';
import { type BackupOptions, type BackupResult, backup, type Progress } from '../dist/src/index.js';
import { expectBackupConsistent, readManifestJson, siblingsOf } from './helpers/backup.js';
import { cleanup, createTree, file, fingerprintTree, tempDir } from './helpers/tree.js';

afterEach(cleanup);

/** The threads of this process (the worker pool's among them). */
function threadCount(): number {
  return readdirSync('/proc/self/task').length;
}

async function smallStore(root: string): Promise<string> {
  const source = join(root, 'src');
  await createTree(source, {
    seeds: { 'a.json': file('{"a":1}') },
    memory: { facts: { 'f.json': file('{}') } },
  });
  return source;
}

describe('invalid options are refused before any I/O', () => {
  it.each([
    ['threads', { threads: 0 }, 'got `0`'],
    ['threads', { threads: 1.5 }, 'got `1.5`'],
    ['threads', { threads: '4' }, 'got `4`'],
    ['changedRetries', { changedRetries: -1 }, 'got `-1`'],
    ['exclude', { exclude: '*.log' }, 'got `"*.log"`'],
    ['exclude', { exclude: [''] }, 'got `[""]`'],
    ['categories', { categories: ['../outside'] }, 'got `../outside`'],
    ['onFileError', { onFileError: 'ignore' }, 'got `ignore`'],
    ['onProgress', { onProgress: 'yes' }, 'got `string`'],
    ['force', { force: 'yes' }, 'got `yes`'],
    ['source', { source: '' }, 'got ``'],
    ['dest', { dest: 'a\0b' }, 'got `a'],
  ])('%s %j: ERR_INVALID_OPTION with the value received', async (name, bad, shown) => {
    const root = tempDir();
    const source = await smallStore(root);
    const before = fingerprintTree(root);
    const options = { source, dest: join(root, 'out'), ...bad } as unknown as BackupOptions;
    const error = await backup(options).then(
      () => null,
      (caught: unknown) => caught as { code: string; message: string },
    );
    expect(error?.code).toBe('ERR_INVALID_OPTION');
    expect(error?.message).toContain(`\`${name}\``);
    expect(error?.message).toContain(shown);
    expect(fingerprintTree(root)).toEqual(before);
  });
});

describe('AbortSignal', () => {
  it('an already aborted signal: ERR_ABORTED, nothing created', async () => {
    const root = tempDir();
    const source = await smallStore(root);
    const before = fingerprintTree(root);
    await expect(
      backup({ source, dest: join(root, 'out'), signal: AbortSignal.abort() }),
    ).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    expect(fingerprintTree(root)).toEqual(before);
  });

  it('aborted mid-run: ERR_ABORTED, no dest, no partial, the pool stopped', async () => {
    const root = tempDir();
    const source = join(root, 'src');
    const generated = await generateStore(source, { profile: 'oxios', scale: 0.01 });
    const controller = new AbortController();
    let filesAtAbort = -1;
    const threadsBefore = threadCount();
    let threadsDuring = 0;
    const run = backup({
      source,
      dest: join(root, 'out'),
      threads: 1,
      signal: controller.signal,
      onProgress: (progress) => {
        if (filesAtAbort < 0) {
          filesAtAbort = progress.filesDone;
          threadsDuring = threadCount();
          controller.abort();
        }
      },
    });
    await expect(run).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    expect(filesAtAbort).toBeGreaterThan(0);
    expect(filesAtAbort).toBeLessThan(generated.files - generated.tempFiles); // it was really mid-run
    // The worker thread ran while the backup did, and is gone once the promise has settled.
    expect(threadsDuring).toBeGreaterThan(threadsBefore);
    expect(threadCount()).toBe(threadsBefore);
    expect(readdirSync(root)).toEqual(['src']);
  });
});

describe('results and progress', () => {
  it('onProgress reports monotone counts ending at the totals, phase copying then finishing', async () => {
    const root = tempDir();
    const source = join(root, 'src');
    const generated = await generateStore(source, { profile: 'oxios', scale: 0.01 });
    const seen: Progress[] = [];
    const result = await backup({
      source,
      dest: join(root, 'out'),
      sync: false,
      onProgress: (p) => seen.push(p),
    });
    expect(seen.length).toBeGreaterThan(1);
    for (let i = 1; i < seen.length; i++) {
      expect(seen[i]!.filesDone).toBeGreaterThanOrEqual(seen[i - 1]!.filesDone);
      expect(seen[i]!.bytesDone).toBeGreaterThanOrEqual(seen[i - 1]!.bytesDone);
      expect(seen[i]!.filesDone).toBeLessThanOrEqual(seen[i]!.filesPlanned);
    }
    const last = seen.at(-1)!;
    // The fields of the first progress shape stay (fields are added, never renamed): test/progress.test.ts has the rest.
    expect(last).toMatchObject({
      phase: 'finishing',
      filesDone: result.files,
      bytesDone: result.bytes,
      filesPlanned: result.files,
      bytesPlanned: result.bytes,
      planningDone: true,
    });
    expect(seen.filter((p) => p.phase === 'finishing')).toHaveLength(1);
    expect(result.files).toBe(generated.files - generated.tempFiles);
    expect(result.skipped.symlink).toBe(generated.symlinks);
    expectBackupConsistent(join(root, 'out'));
  });

  it('two runs racing for one dest without force: one backup wins whole, the other is refused', async () => {
    const root = tempDir();
    const source = await smallStore(root);
    const dest = join(root, 'out');
    const outcomes = await Promise.allSettled([
      backup({ source, dest, sync: false }),
      backup({ source, dest, sync: false }),
    ]);
    const won = outcomes.filter((o) => o.status === 'fulfilled');
    const lost = outcomes.filter((o) => o.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect((lost[0] as PromiseRejectedResult).reason).toMatchObject({ code: 'ERR_DEST_EXISTS' });
    const winner = (won[0] as PromiseFulfilledResult<BackupResult>).value;
    expect(winner.replacedExisting).toBe(false);
    expect(readManifestJson(dest).created_at).toBe(winner.createdAt);
    expectBackupConsistent(dest);
    expect(siblingsOf(dest)).toEqual([]);
    expect(existsSync(join(dest, 'seeds/a.json'))).toBe(true);
  });

  it('a failed run never closes the index descriptor twice (its number may belong to another file by then)', () => {
    // A run that fails after the index was closed (the manifest, the final rename) abandons the writer; a
    // second close would hit whatever the process opened since under the same number (lowest free fd).
    const root = tempDir();
    mkdirSync(join(root, '.statesnap'));
    const writer = new IndexWriter(root);
    writer.add({ path: 'a', type: 'dir', mode: 0o755, mtime_ns: '0', uid: 0, gid: 0 });
    writer.close();
    const other = openSync(join(root, 'other'), 'w');
    try {
      writer.abandon();
      expect(() => fstatSync(other)).not.toThrow();
    } finally {
      closeSync(other);
    }
  });
});

describe('starting the worker pool', () => {
  // Regression: piscina require()s the worker first, and on Node 20.19+ require() of our ES module aborted the
  // whole process now and then (SIGABRT, "Assertion failed: facade->InstantiateModule") — 2 of 3 runs of
  // this loop before the fix. The pool now starts its workers with require(esm) off. Probabilistic by nature:
  // many pool starts in one child process, which must exit 0.
  it('survives many pool starts in one process (no SIGABRT while loading the worker)', async () => {
    const root = tempDir();
    const source = await smallStore(root);
    const script = `
      import { backup } from ${JSON.stringify(resolve(import.meta.dirname, '../dist/src/index.js'))};
      import { rmSync } from 'node:fs';
      const dest = ${JSON.stringify(join(root, 'out'))};
      for (let i = 0; i < 120; i++) {
        rmSync(dest, { recursive: true, force: true });
        await backup({ source: ${JSON.stringify(source)}, dest, sync: false });
      }
      console.log('done');`;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect({ status: run.status, signal: run.signal, stdout: run.stdout.trim() }).toEqual({
      status: 0,
      signal: null,
      stdout: 'done',
    });
  }, 120_000);
});
