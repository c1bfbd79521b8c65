// A backup's own files are read as what they must be: manifest.json and the index never through a symlink,
// never blocking (a FIFO), only regular files, and bounded (a manifest size cap, an index line-length cap).
// A FIFO, /dev/zero or a 600 MB line gets a one-line error naming the file, never a hang or a crash.

import { spawnSync } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  openSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, type TestContext } from 'vitest';
import { expectOneLineError } from './helpers/backup.js';
import { restoreSiblings, writeHandBackup } from './helpers/restore.js';
import { cleanup, fingerprintTree, isRoot, runCli, type TreePrint, tempDir } from './helpers/tree.js';

afterEach(cleanup);

// Long enough for a slow machine, short enough that a hang fails the test instead of the whole run.
const TIMEOUT_MS = 20_000;

type Replacement = 'fifo' | 'dev-zero' | 'symlink-to-dev-zero' | 'directory';

/** Puts something that is not a regular file where `path` was. */
function replaceWith(path: string, what: Replacement, context: TestContext): void {
  unlinkSync(path);
  if (what === 'fifo') {
    if (spawnSync('mkfifo', [path]).status !== 0) throw new Error(`mkfifo ${path} failed`);
  } else if (what === 'dev-zero') {
    // A character device node like /dev/zero's own (1, 5): only root may make one.
    if (!isRoot) context.skip('only root can make a device node (the symlink case runs unprivileged)');
    if (spawnSync('mknod', [path, 'c', '1', '5']).status !== 0) throw new Error(`mknod ${path} failed`);
  } else if (what === 'symlink-to-dev-zero') symlinkSync('/dev/zero', path);
  else mkdirSync(path);
}

function backupWithTarget(): { backupDir: string; target: string; before: TreePrint } {
  const root = tempDir();
  const backupDir = join(root, 'backup');
  writeHandBackup(backupDir, [
    { type: 'dir', path: 'seeds' },
    { type: 'file', path: 'seeds/a.json', content: '{}' },
  ]);
  const target = join(root, 'target');
  mkdirSync(target);
  writeFileSync(join(target, 'live.json'), 'live');
  return { backupDir, target, before: fingerprintTree(target) };
}

const REPLACEMENTS: Replacement[] = ['fifo', 'dev-zero', 'symlink-to-dev-zero', 'directory'];

/** verify reports the refused file as a `manifest` problem (exit 1, no hang), and the target never changed. */
async function expectReportedAndTargetUnchanged(backupDir: string, target: string, before: TreePrint) {
  const verified = await runCli(['verify', '--json', backupDir], { timeoutMs: TIMEOUT_MS });
  expect({ exitCode: verified.exitCode, signal: verified.signal }).toEqual({ exitCode: 1, signal: null });
  expect(JSON.parse(verified.stdout).problems.list).toMatchObject([{ problem: 'manifest' }]);
  expect(fingerprintTree(target)).toEqual(before);
  expect(restoreSiblings(target)).toEqual([]);
}

describe('manifest.json that is not a regular file', () => {
  for (const what of REPLACEMENTS) {
    it(`${what}: inspect, verify and restore refuse it at once (ERR_MANIFEST_INVALID)`, async (context) => {
      const { backupDir, target, before } = backupWithTarget();
      replaceWith(join(backupDir, 'manifest.json'), what, context);
      const options = { timeoutMs: TIMEOUT_MS };
      for (const command of ['inspect', 'restore'] as const) {
        const run = await runCli(
          command === 'restore' ? [command, backupDir, target] : [command, backupDir],
          options,
        );
        expect(run.signal, `${command} was killed: it hung`).toBe(null);
        expectOneLineError(run, 'ERR_MANIFEST_INVALID');
        expect(run.stderr).toContain(join(backupDir, 'manifest.json'));
      }
      await expectReportedAndTargetUnchanged(backupDir, target, before);
    });
  }

  it('larger than the cap (16 MiB): refused before it is read (ERR_MANIFEST_INVALID)', async () => {
    const { backupDir, target, before } = backupWithTarget();
    const manifestPath = join(backupDir, 'manifest.json');
    // Valid JSON all the way: only its size is wrong.
    const fd = openSync(manifestPath, 'a');
    writeSync(fd, Buffer.alloc(16 * 1024 * 1024, ' '));
    closeSync(fd);
    const run = await runCli(['restore', backupDir, target], { timeoutMs: TIMEOUT_MS });
    expectOneLineError(run, 'ERR_MANIFEST_INVALID');
    expect(run.stderr).toContain('larger than 16 MiB');
    expect(fingerprintTree(target)).toEqual(before);
  });
});

describe('an index that is not a regular file', () => {
  for (const what of REPLACEMENTS) {
    it(`${what}: verify and restore refuse it at once (ERR_INDEX_INVALID)`, async (context) => {
      const { backupDir, target, before } = backupWithTarget();
      replaceWith(join(backupDir, '.statesnap', 'index.jsonl'), what, context);
      const run = await runCli(['restore', backupDir, target], { timeoutMs: TIMEOUT_MS });
      expect(run.signal, 'restore was killed: it hung').toBe(null);
      expectOneLineError(run, 'ERR_INDEX_INVALID');
      expect(run.stderr).toContain(join(backupDir, '.statesnap', 'index.jsonl'));
      await expectReportedAndTargetUnchanged(backupDir, target, before);
    });
  }

  it('.statesnap itself a symlink to a directory elsewhere: not followed (ERR_INDEX_INVALID)', async () => {
    const { backupDir, target, before } = backupWithTarget();
    const elsewhere = join(tempDir(), 'meta');
    spawnSync('mv', [join(backupDir, '.statesnap'), elsewhere]);
    symlinkSync(elsewhere, join(backupDir, '.statesnap'));
    const run = await runCli(['restore', backupDir, target], { timeoutMs: TIMEOUT_MS });
    expectOneLineError(run, 'ERR_INDEX_INVALID');
    expect(fingerprintTree(target)).toEqual(before);
  });
});

describe('an index line longer than the cap (1 MiB)', () => {
  it('a 600 MB line: refused after reading at most a little past the cap, one line, no crash', async () => {
    const { backupDir, target, before } = backupWithTarget();
    const indexPath = join(backupDir, '.statesnap', 'index.jsonl');
    // Written on the fly in 1 MiB slices, removed at the end (cleanup removes the temp dir too).
    const fd = openSync(indexPath, 'w');
    try {
      writeSync(fd, '{"path":"');
      const slice = Buffer.alloc(1 << 20, 'a');
      for (let i = 0; i < 600; i++) writeSync(fd, slice);
      writeSync(fd, '","type":"dir","mode":493,"mtime_ns":"1"}\n');
    } finally {
      closeSync(fd);
    }
    try {
      for (const args of [
        ['restore', backupDir, target],
        ['verify', backupDir],
      ]) {
        const run = await runCli(args, { timeoutMs: 60_000 });
        expect(run.signal, `${args[0]} was killed`).toBe(null);
        expect(run.exitCode).toBe(1);
        expect(run.stderr).not.toContain('RangeError');
        if (args[0] === 'restore') {
          expectOneLineError(run, 'ERR_INDEX_INVALID');
          expect(run.stderr).toContain('line 1 is longer than 1 MiB');
        } else {
          expect(run.stdout).toContain('line 1 is longer than 1 MiB');
        }
      }
      expect(fingerprintTree(target)).toEqual(before);
    } finally {
      rmSync(indexPath, { force: true });
    }
  }, 120_000);
});
