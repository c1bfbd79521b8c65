// Sparse files keep their holes through backup and restore (both modes), with the index hash of the full
// content, while a fully allocated file, zeros included, stays fully allocated; and a sparse file far larger
// than the destination filesystem fits on it. Copies are compared with cmp: hashing every gigabyte again
// would double the test's time.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, ftruncateSync, mkdirSync, openSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, type TestContext } from 'vitest';
import { backup, restore } from '../dist/src/index.js';
import { readBackupIndex, sha256File, tryMount, unmountAll } from './helpers/backup.js';
import { cleanup, tempDir } from './helpers/tree.js';

afterEach(() => {
  unmountAll();
  cleanup();
});

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** A file of `size` bytes holding only `data` (offset → bytes); everything else is a hole. */
function writeSparse(path: string, size: number, data: ReadonlyArray<[number, Buffer]>): void {
  const fd = openSync(path, 'wx');
  try {
    ftruncateSync(fd, size);
    for (const [offset, bytes] of data) writeSync(fd, bytes, 0, bytes.length, offset);
  } finally {
    closeSync(fd);
  }
}

/** Bytes the filesystem really holds for the file (what `du` counts). */
function allocated(path: string): number {
  return statSync(path).blocks * 512;
}

/** Skips the test where the temporary directory's filesystem keeps no holes. */
function requireHoles(ctx: TestContext, path: string): void {
  if (allocated(path) >= statSync(path).size) ctx.skip(`the filesystem of ${path} does not keep holes`);
}

/**
 * The copy has the original's size and content, and its holes: nearly nothing allocated where the original
 * is sparse, everything where it is fully allocated.
 */
function expectCopy(copy: string, original: string): void {
  const size = statSync(original).size;
  expect({ copy, size: statSync(copy).size }).toEqual({ copy, size });
  const compared = spawnSync('cmp', [original, copy], { encoding: 'utf8' });
  expect(compared.status, `cmp ${original} ${copy}: ${compared.stdout}${compared.stderr}`).toBe(0);
  if (allocated(original) < size) expect(allocated(copy), `blocks of ${copy}`).toBeLessThan(2 * MiB);
  else expect(allocated(copy), `blocks of ${copy}`).toBeGreaterThanOrEqual(size);
}

describe('sparse files keep their holes', () => {
  it('a 1 GiB sparse file is small on disk in the backup and the restore; fully allocated zeros stay allocated', async (ctx) => {
    const root = tempDir();
    const source = join(root, 'src');
    const seeds = join(source, 'seeds');
    mkdirSync(seeds, { recursive: true });
    // Data at the start, in the middle and near the end, then a trailing hole (the size comes from ftruncate).
    writeSparse(join(seeds, 'sparse.bin'), GiB, [
      [0, Buffer.from('head of the file')],
      [300 * MiB + 123, randomBytes(64 * 1024)],
      [GiB - 3 * MiB, Buffer.from('last data before the trailing hole')],
    ]);
    requireHoles(ctx, join(seeds, 'sparse.bin'));
    // Ends in data: no trailing hole to restore.
    writeSparse(join(seeds, 'ends-in-data.bin'), 64 * MiB, [[64 * MiB - 10, Buffer.from('0123456789')]]);
    // Small enough to be copied in one read (the whole-file path).
    writeSparse(join(seeds, 'small.bin'), MiB, [[512 * 1024, randomBytes(4096)]]);
    writeFileSync(join(seeds, 'zeros.bin'), Buffer.alloc(8 * MiB));
    expect(allocated(join(seeds, 'zeros.bin'))).toBeGreaterThanOrEqual(8 * MiB);
    const names = ['sparse.bin', 'ends-in-data.bin', 'small.bin', 'zeros.bin'];

    const backupDir = join(root, 'backup');
    await backup({ source, dest: backupDir, sync: false });
    const index = new Map(readBackupIndex(backupDir).map((entry) => [entry.path, entry]));
    for (const name of names) {
      const original = join(seeds, name);
      // The index hashes the whole content, holes read as zeros.
      expect(index.get(`seeds/${name}`)).toMatchObject({
        size: statSync(original).size,
        sha256: sha256File(original),
      });
      expectCopy(join(backupDir, 'seeds', name), original);
    }

    const target = join(root, 'target');
    await restore({ backup: backupDir, target, sync: false });
    for (const name of names) expectCopy(join(target, 'seeds', name), join(seeds, name));
  });

  it('a 1 GiB sparse file backs up to and merge-restores on a 16 MiB filesystem', async (ctx) => {
    const root = tempDir();
    const small = join(root, 'small');
    mkdirSync(small);
    if (!tryMount(['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs'], small)) {
      ctx.skip('cannot mount a small tmpfs here (needs root)');
    }
    const source = join(root, 'src');
    mkdirSync(join(source, 'memory'), { recursive: true });
    const big = join(source, 'memory', 'vectors.bin');
    writeSparse(big, GiB, [
      [0, randomBytes(4096)],
      [GiB / 2, randomBytes(100_000)],
    ]);
    requireHoles(ctx, big);

    const backupDir = join(small, 'backup');
    const made = await backup({ source, dest: backupDir });
    expect(made.bytes).toBe(GiB);
    expectCopy(join(backupDir, 'memory', 'vectors.bin'), big);
    // A merge writes a temp file beside the name and renames it over: that temp file keeps the holes too.
    const target = join(small, 'target');
    mkdirSync(join(target, 'memory'), { recursive: true });
    writeFileSync(join(target, 'memory', 'vectors.bin'), 'the old content');
    await restore({ backup: backupDir, target, mode: 'merge' });
    expectCopy(join(target, 'memory', 'vectors.bin'), big);
  });
});
