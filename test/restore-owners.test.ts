// What a restore gives back besides content: the numeric owners the index records (as root, like
// `tar --numeric-owner`; an unprivileged restore leaves everything to its user), never setuid/setgid unless
// asked (`--keep-setid`), and verify reporting permission bits that differ from the index.

import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, lstatSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, type TestContext } from 'vitest';
import { backup, restore, verify } from '../dist/src/index.js';
import { readBackupIndex, tryMount, unmountAll } from './helpers/backup.js';
import { writeHandBackup } from './helpers/restore.js';
import { CLI, cleanup, createTree, dir, file, isRoot, runCli, tempDir } from './helpers/tree.js';

afterEach(() => {
  unmountAll();
  cleanup();
});

function owner(path: string): { uid: number; gid: number; mode: string } {
  const stats = lstatSync(path);
  return { uid: stats.uid, gid: stats.gid, mode: (stats.mode & 0o7777).toString(8) };
}

function requireRoot(context: TestContext): void {
  if (!isRoot) context.skip('only root can give files to other users (the unprivileged case runs below)');
}

/**
 * A store owned by service users, with setuid/setgid files and a setgid directory, backed up by root. Modes
 * are set after the owners: a change of owner clears setuid/setgid.
 */
async function serviceStoreBackup(): Promise<{ root: string; store: string; dest: string }> {
  const root = tempDir();
  const store = join(root, 'store');
  await createTree(store, {
    'a.json': file('{"a":1}'),
    svc: { 'b.json': file('{"b":2}') },
    shared: dir({ 'c.json': file('{"c":3}') }),
    tool: file('#!/bin/sh\n'),
    gtool: file('#!/bin/sh\n'),
  });
  const owned: Array<[string, number, number, number]> = [
    ['', 23456, 23457, 0o750],
    ['a.json', 12345, 12345, 0o640],
    ['svc', 12346, 12347, 0o750],
    ['svc/b.json', 12345, 12345, 0o600],
    ['shared', 0, 12347, 0o2775],
    ['shared/c.json', 12345, 12347, 0o664],
    ['tool', 12345, 12345, 0o4755],
    ['gtool', 0, 12347, 0o2755],
  ];
  for (const [rel, uid, gid, mode] of owned) {
    chownSync(join(store, rel), uid, gid);
    chmodSync(join(store, rel), mode);
  }
  const dest = join(root, 'backup');
  await backup({ source: store, dest, sync: false });
  return { root, store, dest };
}

/** A backup by root of two files: one of root's group, one of group 12347. */
async function rootAndGroupBackup(): Promise<{ root: string; dest: string }> {
  const root = tempDir();
  const store = join(root, 'store');
  await createTree(store, { 'mine.json': file('{"a":1}'), 'group.json': file('{"b":2}') });
  chownSync(join(store, 'group.json'), 0, 12347);
  const dest = join(root, 'backup');
  await backup({ source: store, dest, sync: false });
  return { root, dest };
}

/** Restores `rootAndGroupBackup`'s backup to `target`: each file must get the group its index records. */
async function expectRecordedGroups(dest: string, target: string): Promise<void> {
  await restore({ backup: dest, target, sync: false });
  expect(owner(join(target, 'mine.json'))).toMatchObject({ uid: 0, gid: 0 });
  expect(owner(join(target, 'group.json'))).toMatchObject({ uid: 0, gid: 12347 });
}

describe('owners and setuid/setgid, restored as root', () => {
  it('the index records every owner; a root restore gives them back and drops setuid/setgid', async (context) => {
    requireRoot(context);
    const { root, store, dest } = await serviceStoreBackup();
    const index = new Map(readBackupIndex(dest).map((line) => [line.path, line]));
    expect(index.get('a.json')).toMatchObject({ uid: 12345, gid: 12345, mode: 0o640 });
    expect(index.get('svc')).toMatchObject({ uid: 12346, gid: 12347 });
    expect(index.get('tool')).toMatchObject({ uid: 12345, mode: 0o4755 });
    for (const mode of ['replace', 'merge'] as const) {
      const target = join(root, `restored-${mode}`);
      if (mode === 'merge') {
        mkdirSync(join(target, 'svc'), { recursive: true });
        writeFileSync(join(target, 'svc', 'b.json'), 'older, owned by root');
      }
      const result = await restore({ backup: dest, target, mode, sync: false });
      expect(result.ownersRestored).toBe(true);
      expect(owner(target)).toEqual({ uid: 23456, gid: 23457, mode: '750' });
      expect(owner(join(target, 'a.json'))).toEqual({ uid: 12345, gid: 12345, mode: '640' });
      expect(owner(join(target, 'svc'))).toEqual({ uid: 12346, gid: 12347, mode: '750' });
      expect(owner(join(target, 'svc', 'b.json'))).toEqual({ uid: 12345, gid: 12345, mode: '600' });
      expect(owner(join(target, 'shared'))).toEqual({ uid: 0, gid: 12347, mode: '775' });
      expect(owner(join(target, 'tool'))).toEqual({ uid: 12345, gid: 12345, mode: '755' });
      expect(owner(join(target, 'gtool'))).toEqual({ uid: 0, gid: 12347, mode: '755' });
    }
    // The backup's own copies keep every bit: a restore decides what to give back.
    expect(owner(join(dest, 'tool')).mode).toBe('4755');
    expect(owner(join(store, 'tool')).mode).toBe('4755');
  });

  it('--keep-setid gives setuid/setgid back, after the owner (which would clear them)', async (context) => {
    requireRoot(context);
    const { root, dest } = await serviceStoreBackup();
    const target = join(root, 'restored');
    const run = await runCli(['restore', '--keep-setid', '--no-sync', dest, target]);
    expect({ exitCode: run.exitCode, stderr: run.stderr }).toEqual({ exitCode: 0, stderr: '' });
    expect(owner(join(target, 'tool'))).toEqual({ uid: 12345, gid: 12345, mode: '4755' });
    expect(owner(join(target, 'gtool'))).toEqual({ uid: 0, gid: 12347, mode: '2755' });
    expect(owner(join(target, 'shared'))).toEqual({ uid: 0, gid: 12347, mode: '2775' });
  });

  it("under a setgid directory of another group, files get the group the index records, not the directory's", async (context) => {
    requireRoot(context);
    const { root, dest } = await rootAndGroupBackup();
    // Everything the restore creates under here starts with group 12347, as the kernel gives it.
    const parent = join(root, 'shared');
    mkdirSync(parent);
    chownSync(parent, 0, 12347);
    chmodSync(parent, 0o2775);
    const target = join(parent, 'restored');
    await expectRecordedGroups(dest, target);
  });

  it("on a filesystem that gives new files their directory's group (ext4 mounted grpid), files get the group the index records", async (context) => {
    requireRoot(context);
    const { root, dest } = await rootAndGroupBackup();
    const image = join(root, 'grpid.img');
    const mountPoint = join(root, 'grpid');
    mkdirSync(mountPoint);
    const made = spawnSync('sh', ['-c', `truncate -s 32M "$1" && mkfs.ext4 -q -F "$1"`, 'sh', image]);
    if (made.status !== 0 || !tryMount(['-o', 'loop,grpid', image], mountPoint))
      context.skip('no loop-mounted ext4 on this machine');
    // No setgid bit anywhere: the mount option alone gives everything created below the group 12347.
    const parent = join(mountPoint, 'shared');
    mkdirSync(parent);
    chownSync(parent, 0, 12347);
    const target = join(parent, 'restored');
    await expectRecordedGroups(dest, target);
  });

  it('an edited index that asks for a setuid file (hash recomputed) restores it without the bit', async (context) => {
    requireRoot(context);
    const root = tempDir();
    const backupDir = join(root, 'backup');
    writeHandBackup(
      backupDir,
      [{ type: 'file', path: 'evil', content: '#!/bin/sh\n', mode: 0o6777, uid: 0, gid: 0 }],
      {
        format: 2,
      },
    );
    const target = join(root, 'target');
    await restore({ backup: backupDir, target, sync: false });
    expect(owner(join(target, 'evil'))).toEqual({ uid: 0, gid: 0, mode: '777' });
    // verify tells the tampering: the file in the backup does not have the mode its index claims.
    const checked = await verify({ backup: backupDir });
    expect(checked.problems.list).toMatchObject([
      { path: join(backupDir, 'evil'), problem: 'mode', message: 'mode is 0644, the index says 6777' },
    ]);
  });
});

describe('a restore run unprivileged', () => {
  it('leaves every file and directory to the user who runs it (unprivileged, uid 65534)', async () => {
    // The backup records service owners; the user restoring cannot give files away, and does not try.
    const root = tempDir();
    chmodSync(root, 0o755);
    const backupDir = join(root, 'backup');
    writeHandBackup(
      backupDir,
      [
        { type: 'dir', path: 'svc', uid: 12346, gid: 12347 },
        { type: 'file', path: 'svc/a.json', content: '{}', uid: 12345, gid: 12345 },
        { type: 'file', path: 'tool', content: '#!/bin/sh\n', mode: 0o4755, uid: 12345, gid: 12345 },
      ],
      { format: 2 },
    );
    const work = join(root, 'work');
    mkdirSync(work);
    const target = join(work, 'target');
    let user = { uid: process.getuid!(), gid: process.getgid!() };
    if (isRoot) {
      // Root runs the CLI as uid 65534 (no capabilities) into a directory that user owns.
      user = { uid: 65534, gid: 65534 };
      chownSync(work, user.uid, user.gid);
      const run = spawnSync(
        'setpriv',
        [
          `--reuid=${user.uid}`,
          `--regid=${user.gid}`,
          '--clear-groups',
          '--inh-caps=-all',
          process.execPath,
          CLI,
          'restore',
          '--json',
          backupDir,
          target,
        ],
        { encoding: 'utf8' },
      );
      expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });
      expect(JSON.parse(run.stdout)).toMatchObject({ ownersRestored: false, exitCode: 0 });
    } else {
      expect(await restore({ backup: backupDir, target, sync: false })).toMatchObject({
        ownersRestored: false,
      });
    }
    expect(owner(target)).toMatchObject(user);
    expect(owner(join(target, 'svc'))).toMatchObject(user);
    expect(owner(join(target, 'svc', 'a.json'))).toMatchObject(user);
    expect(owner(join(target, 'tool'))).toEqual({ ...user, mode: '755' });
  });
});

describe('verify reports permission bits that differ from the index', () => {
  it('a file and a directory chmod-ed in the backup: two `mode` problems, exit 1', async () => {
    const root = tempDir();
    const store = join(root, 'store');
    await createTree(store, { seeds: { 'a.json': file('{}'), 'b.json': file('{}') }, memory: {} });
    const dest = join(root, 'backup');
    await backup({ source: store, dest, sync: false });
    expect((await verify({ backup: dest })).ok).toBe(true);
    chmodSync(join(dest, 'seeds', 'a.json'), 0o600);
    chmodSync(join(dest, 'memory'), 0o700);
    const run = await runCli(['verify', '--json', dest]);
    expect(run.exitCode).toBe(1);
    const result = JSON.parse(run.stdout);
    expect(result.problems.byProblem).toEqual({ mode: 2 });
    expect(result.problems.list).toEqual(
      expect.arrayContaining([
        {
          path: join(dest, 'seeds', 'a.json'),
          problem: 'mode',
          message: 'mode is 0600, the index says 0644',
        },
        { path: join(dest, 'memory'), problem: 'mode', message: 'mode is 0700, the index says 0755' },
      ]),
    );
    // The file whose mode differs is not counted among the files that matched.
    expect(result.files).toBe(1);
  });
});
