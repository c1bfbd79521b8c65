// The safety rules of a backup: refusing a destination that overlaps the source, never touching an existing
// backup unless --force (and then only once the new one is complete), nothing left behind by a run killed at
// any of its named points (the test-only pause points stop it exactly there), a full disk, and source files
// that cannot be read (made for real, also as root).

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { formatOwner, thisProcess } from '../dist/src/core/owner.js';
import { siblingPath } from '../dist/src/core/siblings.js';
import { generateStore } from '../dist/src/demo/generator.js';
import { backup } from '../dist/src/index.js';
import {
  expectBackupConsistent,
  expectOneLineError,
  holdWriteLease,
  readBackupIndex,
  readManifestJson,
  siblingsOf,
  tryMount,
  unmountAll,
} from './helpers/backup.js';
import { startPausedCli } from './helpers/pause.js';
import { deadPid, oxiosCopyDirRecursive, writeOxiosManifest } from './helpers/restore.js';
import {
  CLI,
  cleanup,
  cleanupFixtures,
  createTree,
  dir,
  file,
  fingerprintTree,
  fixtureDir,
  isRoot,
  runCli,
  type Tree,
  type TreePrint,
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
    const before = fingerprintTree(root);
    const run = await runCli(['backup', sourceArg, dest]);
    expect(run.exitCode).toBe(2);
    expectOneLineError(run, 'ERR_DEST_OVERLAPS_SOURCE');
    expect(fingerprintTree(root)).toEqual(before);
  });

  it('dest inside a bind mount of the source (same dev+ino, different path)', async (ctx) => {
    const root = tempDir();
    const source = await smallStore(root);
    mkdirSync(join(root, 'bind'));
    if (!tryMount(['--bind', source], join(root, 'bind'))) ctx.skip('mount --bind is not allowed here');
    const before = fingerprintTree(source);
    await expect(backup({ source, dest: join(root, 'bind', 'backup') })).rejects.toMatchObject({
      code: 'ERR_DEST_OVERLAPS_SOURCE',
    });
    await expect(backup({ source: join(root, 'bind'), dest: join(source, 'backup') })).rejects.toMatchObject({
      code: 'ERR_DEST_OVERLAPS_SOURCE',
    });
    expect(fingerprintTree(source)).toEqual(before);
  });
});

/** Things at a destination that are not a backup. */
const NOT_BACKUPS: Array<[string, (dest: string) => void]> = [
  ['a regular file', (dest) => writeFileSync(dest, 'not a backup')],
  ['a dangling symlink', (dest) => symlinkSync('nowhere', dest)],
  ['an empty directory', (dest) => mkdirSync(dest)],
];

/**
 * A backup statesnap made at `<root>/backup` of an older store (a file only it has, its manifest marked `old`),
 * and its fingerprint.
 */
async function oldBackup(root: string): Promise<{ dest: string; print: TreePrint }> {
  const store = join(root, 'old-store');
  await createTree(store, { 'old-only.json': file('from the previous backup') });
  const dest = join(root, 'backup');
  await backup({ source: store, dest, sync: false });
  rmSync(store, { recursive: true });
  writeFileSync(join(dest, 'manifest.json'), JSON.stringify({ ...readManifestJson(dest), old: true }));
  return { dest, print: fingerprintTree(dest) };
}

/** The one sibling of `dest` whose name says `purpose` (`partial`, `replaced`), as a path. */
function siblingFor(dest: string, purpose: 'partial' | 'replaced'): string {
  const names = siblingsOf(dest).filter((name) => name.includes(`.${purpose}-`));
  expect(names, `${purpose} siblings of ${dest}`).toHaveLength(1);
  return join(dirname(dest), names[0]!);
}

describe('an existing destination', () => {
  it('is refused without --force: exit 1, ERR_DEST_EXISTS, untouched', async () => {
    const root = tempDir();
    const source = await smallStore(root);
    const { dest } = await oldBackup(root);
    const before = fingerprintTree(root);
    const run = await runCli(['backup', source, dest]);
    expect(run.exitCode).toBe(1);
    expectOneLineError(run, 'ERR_DEST_EXISTS');
    expect(run.stderr).toContain(dest);
    expect(fingerprintTree(root)).toEqual(before);
  });

  it.each(NOT_BACKUPS)('is refused when it is %s', async (_name, make) => {
    const root = tempDir();
    const source = await smallStore(root);
    const dest = join(root, 'backup');
    make(dest);
    const before = fingerprintTree(root);
    await expect(backup({ source, dest })).rejects.toMatchObject({ code: 'ERR_DEST_EXISTS' });
    expect(fingerprintTree(root)).toEqual(before);
  });

  it('is replaced with --force: old content gone, new backup complete, no siblings left', async () => {
    const root = tempDir();
    const source = await smallStore(root);
    const { dest } = await oldBackup(root);
    const run = await runCli(['backup', '--force', '--json', source, dest]);
    expect(run.exitCode).toBe(0);
    expect(JSON.parse(run.stdout).replacedExisting).toBe(true);
    expect(existsSync(join(dest, 'old-only.json'))).toBe(false);
    expect(readManifestJson(dest).old).toBeUndefined();
    expect(readFileSync(join(dest, 'seeds/a.json'), 'utf8')).toBe('{"a":1}');
    expectBackupConsistent(dest);
    expect(siblingsOf(dest)).toEqual([]);
  });

  it('--force keeps the old backup whole until the new one is complete, then swaps it in', async () => {
    const root = tempDir();
    const source = await smallStore(root);
    const { dest, print: oldPrint } = await oldBackup(root);
    const building = ['partial-created', 'copying', 'index-sealed', 'manifest-written', 'before-publish'];
    const running = startPausedCli(
      ['backup', '--force', '--no-sync', source, dest],
      [...building, 'after-rename-aside', 'published'],
    );
    for (const point of building) {
      await running.reached(point);
      expect(fingerprintTree(dest), `dest at ${point}`).toEqual(oldPrint);
      const partial = siblingFor(dest, 'partial');
      expect(siblingsOf(dest), `siblings at ${point}`).toEqual([basename(partial)]);
      // From the manifest on, the new backup is complete under its temporary name.
      if (point === 'manifest-written' || point === 'before-publish') expectBackupConsistent(partial);
      else expect(existsSync(join(partial, 'manifest.json')), `a manifest at ${point}`).toBe(false);
      running.resume();
    }
    await running.reached('after-rename-aside');
    const partial = siblingFor(dest, 'partial');
    const replaced = siblingFor(dest, 'replaced');
    expect(existsSync(dest)).toBe(false);
    expect(fingerprintTree(replaced)).toEqual(oldPrint);
    expectBackupConsistent(partial);
    running.resume();
    await running.reached('published');
    expectBackupConsistent(dest);
    expect(fingerprintTree(replaced)).toEqual(oldPrint);
    expect(siblingsOf(dest)).toEqual([basename(replaced)]);
    running.resume();
    const run = await running.done;
    expect(run.exitCode, run.stderr).toBe(0);
    expectBackupConsistent(dest);
    expect(siblingsOf(dest)).toEqual([]);
  });

  it('a --force run that fails leaves the old backup in place', async (ctx) => {
    const root = tempDir();
    const source = await smallStore(root);
    const { dest } = await oldBackup(root);
    const lease = await holdWriteLease(join(source, 'seeds/a.json'));
    if (lease === null) return ctx.skip('python3 or file leases are not available');
    try {
      const before = fingerprintTree(dest);
      const run = await runCli(['backup', '--force', '--on-file-error', 'abort', source, dest]);
      expect(run.exitCode).toBe(1);
      expectOneLineError(run, 'ERR_FILE_UNREADABLE');
      expect(fingerprintTree(dest)).toEqual(before);
      expect(siblingsOf(dest)).toEqual([]);
    } finally {
      lease.kill();
    }
  });
});

describe('--force replaces only a backup statesnap made at that path', () => {
  /** Runs `backup --force <source> <dest>` and checks it was refused with nothing under `root` changed. */
  async function expectRefused(root: string, source: string, dest: string): Promise<string> {
    const before = fingerprintTree(root);
    const run = await runCli(['backup', '--force', source, dest]);
    expect(run.exitCode, run.stderr).toBe(1);
    expectOneLineError(run, 'ERR_DEST_NOT_REPLACEABLE');
    expect(run.stderr).toContain(dest);
    expect(fingerprintTree(root)).toEqual(before);
    return run.stderr;
  }

  it('the two paths swapped (backup --force <backup> <live store>): refused, the store untouched', async () => {
    const root = tempDir();
    const store = await smallStore(root);
    const backupDir = join(root, 'backup');
    await backup({ source: store, dest: backupDir, sync: false });
    await createTree(store, { 'only-in-the-store.json': file('written after the backup') });
    await expectRefused(root, backupDir, store);
    expect(readFileSync(join(store, 'only-in-the-store.json'), 'utf8')).toBe('written after the backup');
  });

  it('a store that Oxios restored from our backup (manifest.json and .statesnap/ copied in): refused', async () => {
    const root = tempDir();
    const source = await smallStore(root);
    const backupDir = join(root, 'backup');
    await backup({ source, dest: backupDir, sync: false });
    const store = join(root, 'live');
    oxiosCopyDirRecursive(backupDir, store);
    expect(existsSync(join(store, '.statesnap', 'published.json'))).toBe(true);
    const stderr = await expectRefused(root, source, store);
    expect(stderr).toContain('a store restored from');
  });

  it('a backup made by Oxios: refused, saying how to remove it by hand', async () => {
    const root = tempDir();
    const source = await smallStore(root);
    const dest = join(root, 'oxios backup');
    await createTree(dest, { seeds: { 'a.json': file('{}') } });
    writeOxiosManifest(dest, [{ name: 'seeds', entry_count: 1 }]);
    const stderr = await expectRefused(root, source, dest);
    expect(stderr).toContain(`rm -rf -- '${dest}'`);
  });

  it.each(NOT_BACKUPS)('%s: refused', async (_name, make) => {
    const root = tempDir();
    const source = await smallStore(root);
    const dest = join(root, 'backup');
    make(dest);
    await expectRefused(root, source, dest);
  });

  it('a published backup whose record was edited (a key added, a field not digits, not an object): refused', async () => {
    const root = tempDir();
    const source = await smallStore(root);
    const dest = join(root, 'backup');
    await backup({ source, dest, sync: false });
    const recordFile = join(dest, '.statesnap', 'published.json');
    const record = JSON.parse(readFileSync(recordFile, 'utf8')) as Record<string, string>;
    const edits = [
      { ...record, extra: 'x' },
      { ...record, ino: `${record.ino}a` },
      { ...record, birthtime_ns: Number(record.birthtime_ns) },
      { path: record.path, ino: record.ino },
      [record],
      null,
    ];
    for (const edited of edits) {
      writeFileSync(recordFile, JSON.stringify(edited));
      expect(await expectRefused(root, source, dest), JSON.stringify(edited)).toContain('is not a record');
    }
    // The record as written is accepted again: the refusals above were the edits'.
    writeFileSync(recordFile, JSON.stringify(record));
    expect((await backup({ source, dest, force: true, sync: false })).replacedExisting).toBe(true);
  });

  it('a symlink to a backup statesnap made: refused (the link is not the backup)', async () => {
    const root = tempDir();
    const source = await smallStore(root);
    await backup({ source, dest: join(root, 'backup'), sync: false });
    symlinkSync(join(root, 'backup'), join(root, 'link'));
    await expectRefused(root, source, join(root, 'link'));
  });

  it('a copy of a backup statesnap made (cp -a), or one moved there from elsewhere (mv): refused', async () => {
    const root = tempDir();
    const source = await smallStore(root);
    await backup({ source, dest: join(root, 'made-here'), sync: false });
    expect(spawnSync('cp', ['-a', join(root, 'made-here'), join(root, 'copy')]).status).toBe(0);
    expect(await expectRefused(root, source, join(root, 'copy'))).toContain('published it at');
    renameSync(join(root, 'made-here'), join(root, 'moved'));
    expect(await expectRefused(root, source, join(root, 'moved'))).toContain(
      `published it at ${join(root, 'made-here')} (it was moved or copied here`,
    );
    // Moved back to where statesnap published it, it is that backup again.
    renameSync(join(root, 'moved'), join(root, 'made-here'));
    expect((await backup({ source, dest: join(root, 'made-here'), force: true })).replacedExisting).toBe(
      true,
    );
  });

  it('a store swapped in at dest while the run copies: refused at publish, the store untouched', async () => {
    const root = tempDir();
    const source = await smallStore(root);
    const dest = join(root, 'backup');
    await backup({ source: await smallStore(join(root, 'old')), dest, sync: false });
    const running = startPausedCli(['backup', '--force', '--no-sync', source, dest], ['copying']);
    await running.reached('copying');
    // Someone moves the old backup away and puts a live store, with a copy of its record, in its place.
    renameSync(dest, join(root, 'moved-away'));
    await createTree(dest, { 'live.json': file('live'), '.statesnap': {} });
    writeFileSync(
      join(dest, '.statesnap', 'published.json'),
      readFileSync(join(root, 'moved-away', '.statesnap', 'published.json')),
    );
    const live = fingerprintTree(dest);
    running.resume();
    const run = await running.done;
    expect(run.exitCode, run.stderr).toBe(1);
    expectOneLineError(run, 'ERR_DEST_NOT_REPLACEABLE');
    expect(fingerprintTree(dest)).toEqual(live);
    expect(siblingsOf(dest)).toEqual([]);
  });
});

describe('a killed backup', () => {
  // A store of small files copied in more than one batch, made once; no test changes it.
  const store = { source: '', files: 0 };
  beforeAll(async () => {
    store.source = join(fixtureDir(), 'src');
    const generated = await generateStore(store.source, { profile: 'tiny-files', scale: 0.0006 });
    store.files = generated.files - generated.tempFiles;
  }, 60_000);

  it('the fixture is copied in more than one batch', () => {
    expect(store.files).toBeGreaterThan(2 * 256);
  });
  afterAll(cleanupFixtures);

  const halfTheFiles = () => Math.floor(store.files / 2);
  /** Regular files of the store in a partial tree (its own index and manifest left out). */
  const storeFilesIn = (partial: string) =>
    Object.entries(fingerprintTree(partial, { mtimes: false })).filter(
      ([rel, entry]) => entry.kind === 'file' && rel !== 'manifest.json' && !rel.startsWith('.statesnap/'),
    ).length;

  // Where each run is killed, and what its partial tree holds there: never a manifest beside the final name.
  const points: Record<string, { point: () => string; atPause(partial: string): void }> = {
    'partial-created: an empty partial tree': {
      point: () => 'partial-created',
      atPause(partial) {
        expect(storeFilesIn(partial)).toBe(0);
        expect(existsSync(join(partial, 'manifest.json'))).toBe(false);
      },
    },
    'copying, half the files done': {
      point: () => `copying:${halfTheFiles()}`,
      atPause(partial) {
        expect(storeFilesIn(partial)).toBeGreaterThanOrEqual(halfTheFiles());
        expect(existsSync(join(partial, 'manifest.json'))).toBe(false);
      },
    },
    'index-sealed: every file and the whole index, no manifest': {
      point: () => 'index-sealed',
      atPause(partial) {
        expect(storeFilesIn(partial)).toBe(store.files);
        expect(readBackupIndex(partial).filter((entry) => entry.type === 'file')).toHaveLength(store.files);
        expect(existsSync(join(partial, 'manifest.json'))).toBe(false);
      },
    },
    'manifest-written: a complete backup, but only under its temporary name': {
      point: () => 'manifest-written',
      atPause(partial) {
        expect(expectBackupConsistent(partial).filter((entry) => entry.type === 'file')).toHaveLength(
          store.files,
        );
      },
    },
    'before-publish: complete and flushed, not yet renamed': {
      point: () => 'before-publish',
      atPause: expectBackupConsistent,
    },
  };

  for (const [title, kill] of Object.entries(points)) {
    it(`kill -9 at ${title}: no dest; the next run removes the stale partial and succeeds`, async () => {
      const root = tempDir();
      const dest = join(root, 'backup');
      const point = kill.point();
      const running = startPausedCli(['backup', store.source, dest], [point]);
      await running.reached(point);
      const partial = siblingFor(dest, 'partial');
      expect(basename(partial)).toMatch(new RegExp(`^backup\\.partial-${running.child.pid}-.+-[0-9a-f]{8}$`));
      expect(existsSync(dest)).toBe(false);
      kill.atPause(partial);
      expect((await running.kill()).signal).toBe('SIGKILL');
      expect(existsSync(dest)).toBe(false);
      expect(siblingsOf(dest)).toEqual([basename(partial)]);

      // A sibling owned by a live process (this one) is not stale and must be left alone.
      const live = basename(siblingPath(dest, 'partial'));
      mkdirSync(join(root, live));
      const result = await backup({ source: store.source, dest, sync: false });
      expect(siblingsOf(dest)).toEqual([live]);
      expectBackupConsistent(dest);
      expect(result.files).toBe(store.files);
    });
  }

  /** A backup --force over an old backup, killed (kill -9) at `point`. */
  async function forceKilledAt(
    point: string,
  ): Promise<{ source: string; dest: string; oldPrint: TreePrint }> {
    const root = tempDir();
    const source = await smallStore(root);
    const { dest, print: oldPrint } = await oldBackup(root);
    const running = startPausedCli(['backup', '--force', source, dest], [point]);
    await running.reached(point);
    expect((await running.kill()).signal).toBe('SIGKILL');
    return { source, dest, oldPrint };
  }

  it('kill -9 of --force after the old backup was renamed aside: the next run puts it back', async () => {
    const { source, dest, oldPrint } = await forceKilledAt('after-rename-aside');
    expect(existsSync(dest)).toBe(false);
    expect(fingerprintTree(siblingFor(dest, 'replaced'))).toEqual(oldPrint);
    expectBackupConsistent(siblingFor(dest, 'partial'));

    // Without --force the recovered backup is an existing dest: refused, but put back and cleaned.
    const run = await runCli(['backup', source, dest]);
    expect(run.exitCode).toBe(1);
    expectOneLineError(run, 'ERR_DEST_EXISTS');
    expect(fingerprintTree(dest)).toEqual(oldPrint);
    expect(siblingsOf(dest)).toEqual([]);
  });

  it('kill -9 of --force once the new backup is in place: the next run removes the old one', async () => {
    const { source, dest, oldPrint } = await forceKilledAt('published');
    const published = fingerprintTree(dest);
    expectBackupConsistent(dest);
    expect(fingerprintTree(siblingFor(dest, 'replaced'))).toEqual(oldPrint);

    const run = await runCli(['backup', source, dest]);
    expect(run.exitCode).toBe(1);
    expectOneLineError(run, 'ERR_DEST_EXISTS');
    expect(fingerprintTree(dest)).toEqual(published);
    expect(siblingsOf(dest)).toEqual([]);
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

  it('leftovers whose owner’s pid now belongs to another process are cleaned; a container’s are kept', async () => {
    const root = tempDir();
    const source = await smallStore(root);
    const dest = join(root, 'backup');
    const me = thisProcess();
    // pid 1 runs, but not since the start time recorded: the killed run had pid 1 in another life.
    const reused = formatOwner({ ...me, pid: 1, start: '1' });
    const aside = `${dest}.replaced-${reused}-0123abcd`;
    await backup({ source: await smallStore(join(root, 'old')), dest, sync: false });
    renameSync(dest, aside);
    const stalePartial = `${dest}.partial-${reused}-89abcdef`;
    await createTree(stalePartial, { 'half.json': file('half') });
    // Another pid namespace of this boot (a container sharing the folder) cannot be judged from here.
    const elsewhere = `${dest}.partial-${formatOwner({ ...me, pidNs: '1' })}-01234567`;
    mkdirSync(elsewhere);

    const run = await runCli(['backup', '--json', '--force', source, dest]);
    expect(run.exitCode, run.stderr).toBe(3);
    const result = JSON.parse(run.stdout);
    expect(result.replacedExisting).toBe(true); // the backup put back was replaced: it was made there
    expect(result.warnings.list).toEqual([
      { path: elsewhere, problem: 'leftover-kept', message: expect.stringContaining('another container') },
    ]);
    expect(siblingsOf(dest)).toEqual([basename(elsewhere)]);
    expectBackupConsistent(dest);
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
