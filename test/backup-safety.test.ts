// The safety rules of a backup: refusing a destination that overlaps the source, never touching an existing
// backup unless --force (and then only once the new one is complete), nothing left behind by a killed run,
// a full disk, and source files that cannot be read (made for real, also as root).

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, type TestContext } from 'vitest';
import { generateStore } from '../dist/src/demo/generator.js';
import { backup } from '../dist/src/index.js';
import {
  expectBackupConsistent,
  expectOneLineError,
  holdWriteLease,
  readManifestJson,
  siblingsOf,
  snapshot,
  tryMount,
  unmountAll,
  waitFor,
} from './helpers/backup.js';
import {
  CLI,
  cleanup,
  createTree,
  dir,
  file,
  isRoot,
  runCli,
  startCli,
  type Tree,
  tempDir,
} from './helpers/tree.js';

afterEach(() => {
  unmountAll();
  cleanup();
});

async function smallStore(root: string): Promise<string> {
  const source = join(root, 'src');
  await createTree(source, {
    seeds: { 'a.json': file('{"a":1}'), 'b.md': file('# b') },
    memory: { facts: { 'f.json': file('{"f":true}') } },
  });
  return source;
}

/** A pid that belonged to a process that has exited. */
function deadPid(): number {
  const run = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(run.stdout.toString());
}

describe('a destination that overlaps the source is refused before anything is written', () => {
  type Case = { source: string; dest: string };
  const cases: Array<[string, (root: string, source: string) => Case]> = [
    ['dest equal to source', (_root, source) => ({ source, dest: source })],
    ['dest equal to source, spelled with ..', (_root, source) => ({ source, dest: `${source}/seeds/..` })],
    ['dest inside source', (_root, source) => ({ source, dest: join(source, 'backup') })],
    ['dest deep inside source', (_root, source) => ({ source, dest: join(source, 'memory/facts/backup') })],
    ['dest containing source', (root) => ({ source: join(root, 'src'), dest: root })],
    [
      'dest inside source through a symlinked parent',
      (root, source) => {
        symlinkSync(source, join(root, 'link'));
        return { source, dest: join(root, 'link', 'backup') };
      },
    ],
    [
      'dest is a symlink to the source',
      (root, source) => {
        symlinkSync(source, join(root, 'link'));
        return { source, dest: join(root, 'link') };
      },
    ],
    [
      'source given through a symlink, dest inside its real path',
      (root, source) => {
        symlinkSync(source, join(root, 'link'));
        return { source: join(root, 'link'), dest: join(source, 'backup') };
      },
    ],
  ];

  it.each(cases)('%s: exit 2, ERR_DEST_OVERLAPS_SOURCE, nothing created', async (_name, makeCase) => {
    const root = tempDir();
    const source = await smallStore(root);
    const { source: sourceArg, dest } = makeCase(root, source);
    const before = snapshot(root);
    const run = await runCli(['backup', sourceArg, dest]);
    expect(run.exitCode).toBe(2);
    expectOneLineError(run, 'ERR_DEST_OVERLAPS_SOURCE');
    expect(snapshot(root)).toEqual(before);
  });

  it('dest inside a bind mount of the source (same dev+ino, different path)', async (ctx) => {
    const root = tempDir();
    const source = await smallStore(root);
    mkdirSync(join(root, 'bind'));
    if (!tryMount(['--bind', source], join(root, 'bind'))) ctx.skip('mount --bind is not allowed here');
    const before = snapshot(source);
    await expect(backup({ source, dest: join(root, 'bind', 'backup') })).rejects.toMatchObject({
      code: 'ERR_DEST_OVERLAPS_SOURCE',
    });
    await expect(backup({ source: join(root, 'bind'), dest: join(source, 'backup') })).rejects.toMatchObject({
      code: 'ERR_DEST_OVERLAPS_SOURCE',
    });
    expect(snapshot(source)).toEqual(before);
  });
});

describe('an existing destination', () => {
  async function oldBackup(root: string): Promise<string> {
    const dest = join(root, 'backup');
    await createTree(dest, {
      'manifest.json': file('{"version":1,"old":true}'),
      'old-only.json': file('from the previous backup'),
    });
    return dest;
  }

  it('is refused without --force: exit 1, ERR_DEST_EXISTS, untouched', async () => {
    const root = tempDir();
    const source = await smallStore(root);
    const dest = await oldBackup(root);
    const before = snapshot(root);
    const run = await runCli(['backup', source, dest]);
    expect(run.exitCode).toBe(1);
    expectOneLineError(run, 'ERR_DEST_EXISTS');
    expect(run.stderr).toContain(dest);
    expect(snapshot(root)).toEqual(before);
  });

  it.each([
    ['a regular file', (dest: string) => writeFileSync(dest, 'not a backup')],
    ['a dangling symlink', (dest: string) => symlinkSync('nowhere', dest)],
    ['an empty directory', (dest: string) => mkdirSync(dest)],
  ])('is refused when it is %s', async (_name, make) => {
    const root = tempDir();
    const source = await smallStore(root);
    const dest = join(root, 'backup');
    make(dest);
    const before = snapshot(root);
    await expect(backup({ source, dest })).rejects.toMatchObject({ code: 'ERR_DEST_EXISTS' });
    expect(snapshot(root)).toEqual(before);
  });

  it('is replaced with --force: old content gone, new backup complete, no siblings left', async () => {
    const root = tempDir();
    const source = await smallStore(root);
    const dest = await oldBackup(root);
    const run = await runCli(['backup', '--force', '--json', source, dest]);
    expect(run.exitCode).toBe(0);
    expect(JSON.parse(run.stdout).replacedExisting).toBe(true);
    expect(existsSync(join(dest, 'old-only.json'))).toBe(false);
    expect(readManifestJson(dest).old).toBeUndefined();
    expect(readFileSync(join(dest, 'seeds/a.json'), 'utf8')).toBe('{"a":1}');
    expectBackupConsistent(dest);
    expect(siblingsOf(dest)).toEqual([]);
  });

  it('--force replaces a dangling symlink or a file at dest too', async () => {
    const root = tempDir();
    const source = await smallStore(root);
    for (const make of [(p: string) => symlinkSync('nowhere', p), (p: string) => writeFileSync(p, 'x')]) {
      const dest = join(root, `backup-${readdirSync(root).length}`);
      make(dest);
      const result = await backup({ source, dest, force: true, sync: false });
      expect(result.replacedExisting).toBe(true);
      expectBackupConsistent(dest);
      expect(siblingsOf(dest)).toEqual([]);
    }
  });

  it('--force keeps the old backup whole until the new one is complete', async () => {
    const root = tempDir();
    const source = join(root, 'src');
    await generateStore(source, { profile: 'oxios', scale: 0.02 });
    const dest = await oldBackup(root);
    const running = startCli(['backup', '--force', '--no-sync', '--threads', '1', source, dest]);
    let sawOldWhileBuilding = false;
    let exited = false;
    void running.done.then(() => {
      exited = true;
    });
    const readManifest = (): { old?: boolean; statesnap?: unknown } | null => {
      try {
        return JSON.parse(readFileSync(join(dest, 'manifest.json'), 'utf8'));
      } catch {
        return null; // dest is being renamed: missing for an instant is allowed
      }
    };
    while (!exited) {
      const building = siblingsOf(dest).some((name) => name.includes('.partial-'));
      const manifest = readManifest();
      if (manifest?.old === true) {
        // The old backup is whole: its files are there as long as its manifest is (or the rename just happened).
        if (!existsSync(join(dest, 'old-only.json'))) expect(readManifest()?.old).not.toBe(true);
        if (building) sawOldWhileBuilding = true;
      } else if (manifest !== null) {
        expect(manifest.statesnap).toBeDefined(); // a new manifest is only ever seen complete
      }
      await new Promise((resolveTick) => setTimeout(resolveTick, 5));
    }
    expect((await running.done).exitCode).toBe(0);
    expect(sawOldWhileBuilding).toBe(true);
    expectBackupConsistent(dest);
    expect(siblingsOf(dest)).toEqual([]);
  });

  it('a --force run that fails leaves the old backup in place', async (ctx) => {
    const root = tempDir();
    const source = await smallStore(root);
    const dest = await oldBackup(root);
    const lease = await holdWriteLease(join(source, 'seeds/a.json'));
    if (lease === null) return ctx.skip('python3 or file leases are not available');
    try {
      const before = snapshot(dest);
      const run = await runCli(['backup', '--force', '--on-file-error', 'abort', source, dest]);
      expect(run.exitCode).toBe(1);
      expectOneLineError(run, 'ERR_FILE_UNREADABLE');
      expect(snapshot(dest)).toEqual(before);
      expect(siblingsOf(dest)).toEqual([]);
    } finally {
      lease.kill();
    }
  });
});

describe('a killed backup', () => {
  it('kill -9 at any point leaves no dest; the next run removes the stale partial and succeeds', async () => {
    const root = tempDir();
    const source = join(root, 'src');
    // 10,000 tiny files: per-file work keeps one thread copying for seconds, so even on a fast machine and
    // a fast Node the last kill still lands mid-copy (3,000 oxios files were done within 500 ms on Node 22).
    await generateStore(source, { profile: 'tiny-files', scale: 0.01 });
    const dest = join(root, 'backup');
    // Delays after the partial directory appears: at once, while copying, and later in the copy. Each new run
    // first removes the partial of the run killed before it (its owner is dead), so exactly one is left.
    for (const delayMs of [0, 150, 500]) {
      const running = startCli(['backup', '--threads', '1', source, dest]);
      const partial = `backup.partial-${running.child.pid}-`;
      await waitFor(() => readdirSync(root).some((name) => name.startsWith(partial)), 20_000, 'the partial');
      await new Promise((resolveDelay) => setTimeout(resolveDelay, delayMs));
      running.child.kill('SIGKILL');
      const run = await running.done;
      expect(run.signal, `killed after ${delayMs} ms`).toBe('SIGKILL');
      expect(existsSync(dest), `no dest after a kill at ${delayMs} ms`).toBe(false);
      expect(siblingsOf(dest)).toEqual([expect.stringMatching(new RegExp(`^${partial}[0-9a-f]{8}$`))]);
    }
    // A sibling owned by a live process (this one) is not stale and must be left alone.
    const live = `backup.partial-${process.pid}-0badc0de`;
    mkdirSync(join(root, live));

    const run = await runCli(['backup', '--json', '--no-sync', source, dest]);
    expect(run.exitCode).toBe(0);
    expect(siblingsOf(dest)).toEqual([live]);
    expectBackupConsistent(dest);
    expect(JSON.parse(run.stdout).files).toBeGreaterThan(2500);
  });

  it('a previous backup renamed aside by a killed --force run is put back', async () => {
    const root = tempDir();
    const source = await smallStore(root);
    const dest = join(root, 'backup');
    const aside = `${dest}.replaced-${deadPid()}-0123abcd`;
    await createTree(aside, { 'manifest.json': file('{"version":1,"old":true}'), 'old.json': file('old') });
    const stalePartial = `${dest}.partial-${deadPid()}-89abcdef`;
    await createTree(stalePartial, { 'half.json': file('half') });

    // Without --force the recovered backup is an existing dest: refused, but recovered and cleaned.
    const run = await runCli(['backup', source, dest]);
    expect(run.exitCode).toBe(1);
    expectOneLineError(run, 'ERR_DEST_EXISTS');
    expect(readFileSync(join(dest, 'old.json'), 'utf8')).toBe('old');
    expect(siblingsOf(dest)).toEqual([]);
  });
});

describe('a full destination disk (ENOSPC)', () => {
  /** A source with `tree` and, beside it, a tmpfs mounted with `options` for the destination. */
  async function fullDiskCase(ctx: TestContext, options: string, tree: Tree) {
    const root = tempDir();
    const small = join(root, 'small');
    mkdirSync(small);
    if (!tryMount(['-t', 'tmpfs', '-o', options, 'tmpfs'], small)) {
      ctx.skip('cannot mount a small tmpfs here (needs root)');
    }
    const source = join(root, 'src');
    await createTree(source, tree);
    return { source, small, dest: join(small, 'backup') };
  }

  it.for([
    ['many small files', { count: 48, size: 64 * 1024 }],
    ['one large file', { count: 1, size: 3 * 1024 * 1024 }],
  ] as const)(
    '%s: exit 1, one line naming the path and ENOSPC, no dest, no partial',
    async ([, shape], ctx) => {
      const files: Record<string, ReturnType<typeof file>> = {};
      for (let i = 0; i < shape.count; i++) files[`f${i}.json`] = file(randomBytes(shape.size));
      const { source, small, dest } = await fullDiskCase(ctx, 'size=1m', { memory: { facts: files } });

      const run = await runCli(['backup', source, dest]);
      expect(run.exitCode).toBe(1);
      expectOneLineError(run, 'ERR_DEST_WRITE');
      expect(run.stderr).toContain('ENOSPC');
      expect(run.stderr).toContain(dest);
      expect(readdirSync(small)).toEqual([]);
    },
  );

  it('the library error carries the worker system error as its cause (code ENOSPC)', async (ctx) => {
    const big = { memory: { 'big.json': file(randomBytes(3 * 1024 * 1024)) } };
    const { source, small, dest } = await fullDiskCase(ctx, 'size=1m', big);
    await expect(backup({ source, dest, sync: false })).rejects.toMatchObject({
      code: 'ERR_DEST_WRITE',
      cause: { code: 'ENOSPC', syscall: 'write' },
    });
    expect(readdirSync(small)).toEqual([]);
  });

  it('no inode left for the index file: exit 1, one line with ENOSPC, no partial left', async (ctx) => {
    // Regression: the index was opened outside the failure path, so this leaked the partial tree (and printed
    // a stack trace). Three inodes: the tmpfs root, the partial tree and its .statesnap folder; not the index.
    const one = { seeds: { 'a.json': file('{}') } };
    const { source, small, dest } = await fullDiskCase(ctx, 'size=1m,nr_inodes=3', one);
    const run = await runCli(['backup', source, dest]);
    expect(run.exitCode).toBe(1);
    expectOneLineError(run, 'ERR_DEST_WRITE');
    expect(run.stderr).toContain('ENOSPC');
    expect(readdirSync(small)).toEqual([]);
  });
});

describe('a source file that cannot be read', () => {
  // Root reads any file whatever its mode, so chmod 000 alone proves nothing as root.
  it.skipIf(isRoot)('chmod 000 (not root): warn skips it with exit 3, abort fails with exit 1', async () => {
    const root = tempDir();
    const source = await smallStore(root);
    await createTree(source, { 'locked.json': file('secret', { mode: 0o000 }) });
    const warned = await runCli(['backup', '--json', source, join(root, 'warn')]);
    expect(warned.exitCode).toBe(3);
    expect(JSON.parse(warned.stdout).warnings.byProblem).toEqual({ unreadable: 1 });
    expect(existsSync(join(root, 'warn', 'locked.json'))).toBe(false);
    expectBackupConsistent(join(root, 'warn'));
    const aborted = await runCli(['backup', '--on-file-error', 'abort', source, join(root, 'abort')]);
    expect(aborted.exitCode).toBe(1);
    expectOneLineError(aborted, 'ERR_FILE_UNREADABLE');
    expect(readdirSync(root).sort()).toEqual(['src', 'warn']);
  });

  it('chmod 000 as root with CAP_DAC_OVERRIDE dropped (setpriv): files and folders', async (ctx) => {
    if (!isRoot) ctx.skip('only root has capabilities to drop; the test above covers non-root');
    if (spawnSync('setpriv', ['--bounding-set', '-dac_override,-dac_read_search', 'true']).status !== 0) {
      ctx.skip('setpriv cannot drop capabilities here');
    }
    const root = tempDir();
    const source = await smallStore(root);
    await createTree(source, {
      'locked.json': file('secret', { mode: 0o000 }),
      closed: dir({ 'inner.json': file('inner') }, { mode: 0o000 }),
    });
    const cli = (args: string[]) => {
      const run = spawnSync(
        'setpriv',
        ['--bounding-set', '-dac_override,-dac_read_search', process.execPath, CLI, ...args],
        { encoding: 'utf8' },
      );
      return { exitCode: run.status, stdout: run.stdout, stderr: run.stderr };
    };

    const warned = cli(['backup', '--json', '--no-sync', source, join(root, 'warn')]);
    expect(warned.exitCode).toBe(3);
    const result = JSON.parse(warned.stdout);
    expect(result.warnings.byProblem).toEqual({ unreadable: 2 });
    expect(result.warnings.list.map((w: { path: string }) => w.path).sort()).toEqual([
      join(source, 'closed'),
      join(source, 'locked.json'),
    ]);
    expect(warned.stderr).toContain(`warning: ${join(source, 'locked.json')}`);
    expect(existsSync(join(root, 'warn', 'locked.json'))).toBe(false);
    expect(readFileSync(join(root, 'warn', 'seeds/a.json'), 'utf8')).toBe('{"a":1}');
    expectBackupConsistent(join(root, 'warn'));

    // --on-file-error abort applies to a folder that cannot be listed as much as to a file.
    rmSync(join(source, 'locked.json'));
    const aborted = cli(['backup', '--on-file-error', 'abort', source, join(root, 'abort')]);
    expect(aborted.exitCode).toBe(1);
    expect(aborted.stdout).toBe('');
    expect(aborted.stderr.trim().split('\n')).toHaveLength(1);
    expect(aborted.stderr).toContain('[ERR_FILE_UNREADABLE]');
    expect(aborted.stderr).toContain(join(source, 'closed'));
    expect(readdirSync(root).sort()).toEqual(['src', 'warn']);
  });

  it('a file another process holds a write lease on (open fails even for root)', async (ctx) => {
    const root = tempDir();
    const source = await smallStore(root);
    const leased = join(source, 'memory/facts/f.json');
    const lease = await holdWriteLease(leased);
    if (lease === null) return ctx.skip('python3 or file leases are not available');
    try {
      const warned = await backup({ source, dest: join(root, 'warn'), sync: false });
      expect(warned.exitCode).toBe(3);
      expect(warned.warnings.list).toEqual([
        { path: leased, problem: 'unreadable', message: expect.stringContaining('EAGAIN') },
      ]);
      expect(existsSync(join(root, 'warn', 'memory/facts/f.json'))).toBe(false);
      expectBackupConsistent(join(root, 'warn'));

      await expect(
        backup({ source, dest: join(root, 'abort'), onFileError: 'abort', sync: false }),
      ).rejects.toMatchObject({ code: 'ERR_FILE_UNREADABLE', path: leased });
      expect(readdirSync(root).sort()).toEqual(['src', 'warn']);
    } finally {
      lease.kill();
    }
  });

  it("a read that fails with EIO is the source file's problem, not a destination failure", async (ctx) => {
    // Reading /proc/<pid>/mem at offset 0 fails with EIO (page 0 is never mapped); bind-mounted over a
    // regular file of the source, it is a file that opens fine and then cannot be read.
    const root = tempDir();
    const source = await smallStore(root);
    const broken = join(source, 'seeds/broken.json');
    writeFileSync(broken, '');
    if (!tryMount(['--bind', `/proc/${process.pid}/mem`], broken))
      ctx.skip('mount --bind is not allowed here');
    const warned = await backup({ source, dest: join(root, 'warn'), sync: false });
    expect(warned.exitCode).toBe(3);
    expect(warned.warnings.list).toEqual([
      { path: broken, problem: 'unreadable', message: expect.stringContaining('EIO') },
    ]);
    expect(existsSync(join(root, 'warn', 'seeds/broken.json'))).toBe(false);
    expectBackupConsistent(join(root, 'warn'));

    const aborted = await runCli(['backup', '--on-file-error', 'abort', source, join(root, 'abort')]);
    expect(aborted.exitCode).toBe(1);
    expectOneLineError(aborted, 'ERR_FILE_UNREADABLE');
    expect(aborted.stderr).toContain(broken);
    expect(readdirSync(root).sort()).toEqual(['src', 'warn']);
  });
});
