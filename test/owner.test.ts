// Who owns the work statesnap leaves on disk, and the names it leaves it under: a pid reused by another
// process (pid 1, a process this test starts, a process after a reboot) is told apart from the owner; names
// of siblings always fit in NAME_MAX and are found again; removing a tree never follows a link out of it.

import { type ChildProcess, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { removeTree } from '../dist/src/core/fs-tree.js';
import {
  formatOwner,
  legacyOwnerState,
  type Owner,
  ownerState,
  parseOwner,
  thisProcess,
} from '../dist/src/core/owner.js';
import { findSiblings, fixedSiblingPath, isSiblingName, siblingPath } from '../dist/src/core/siblings.js';
import { deadPid } from './helpers/restore.js';
import { cleanup, createTree, dir, file, symlink, tempDir } from './helpers/tree.js';

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  cleanup();
});

const HAS_PROC = existsSync('/proc/self/stat');

/** Field 22 of /proc/<pid>/stat: the process's start time in clock ticks since boot. */
function startOf(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}

function sleeper(): number {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  children.push(child);
  return child.pid!;
}

describe.skipIf(!HAS_PROC)('ownerState: whether the owner a record names still runs', () => {
  const me = () => thisProcess();

  it('this process is running; so is another live process with its own start time', () => {
    expect(ownerState(me())).toBe('running');
    const pid = sleeper();
    expect(ownerState({ ...me(), pid, start: startOf(pid) })).toBe('running');
  });

  it('a pid that is alive but belongs to another process (another start time) is gone', () => {
    expect(ownerState({ ...me(), pid: 1, start: String(Number(startOf(1)) + 1) })).toBe('gone');
    const pid = sleeper();
    expect(ownerState({ ...me(), pid, start: String(Number(startOf(pid)) - 1) })).toBe('gone');
    // Our own pid with another start time: the record was made by an earlier process that had our pid.
    expect(ownerState({ ...me(), start: '1' })).toBe('gone');
  });

  it('a pid that is free is gone', () => {
    expect(ownerState({ ...me(), pid: deadPid() })).toBe('gone');
  });

  it('a record from before a reboot of this machine is gone, even if its pid runs now', () => {
    const otherBoot = me().boot === '00000000' ? '00000001' : '00000000';
    expect(ownerState({ ...me(), boot: otherBoot })).toBe('gone');
    expect(ownerState({ ...me(), pid: 1, start: startOf(1), boot: otherBoot })).toBe('gone');
  });

  it('another machine, or another pid namespace (container) of this boot, cannot be judged: unknown', () => {
    const otherHost = me().host === '00000000' ? '00000001' : '00000000';
    expect(ownerState({ ...me(), host: otherHost, boot: '12345678' })).toBe('unknown');
    expect(ownerState({ ...me(), host: otherHost })).toBe('running'); // same kernel and namespace: judged by pid
    expect(ownerState({ ...me(), pidNs: '1', pid: deadPid() })).toBe('unknown');
  });

  it('a record of an older statesnap (a pid alone): gone when free or taken by a process started later', () => {
    expect(legacyOwnerState(deadPid(), Date.now())).toBe('gone');
    const pid = sleeper();
    expect(legacyOwnerState(pid, Date.now() - 10 * 60_000)).toBe('gone');
    // pid 1 started before the record: it may be the owner (the record cannot say more).
    expect(legacyOwnerState(1, Date.now())).toBe('unknown');
  });

  it('the owner token round-trips, and refuses what is not one', () => {
    const owner: Owner = me();
    expect(parseOwner(formatOwner(owner))).toEqual(owner);
    const unknownParts: Owner = { pid: 7, start: '', boot: '', host: 'abcdef01', pidNs: '' };
    expect(formatOwner(unknownParts)).toBe('7-x-x-abcdef01-x');
    expect(parseOwner('7-x-x-abcdef01-x')).toEqual(unknownParts);
    for (const bad of ['', '7', '7-1-2-3-4', 'a-1-abcdef01-abcdef01-1', '7-1-abcdef01-abcdef01-1-1']) {
      expect(parseOwner(bad), bad).toBeNull();
    }
  });
});

describe('sibling names', () => {
  const finals = [
    'backup',
    'a'.repeat(180),
    'b'.repeat(219),
    'c'.repeat(236),
    'd'.repeat(255),
    '€'.repeat(85), // 255 bytes of 3-byte characters
    `${'é'.repeat(100)}x${'€'.repeat(17)}`, // a cut inside a character would make invalid UTF-8
  ];

  it.each(finals.map((name) => [Buffer.byteLength(name), name]))(
    'beside a %d-byte name they fit in 255 bytes, are made for real, and are found again',
    (_bytes, name) => {
      const root = tempDir();
      const final = join(root, name);
      const made = [
        siblingPath(final, 'partial'),
        siblingPath(final, 'replaced'),
        siblingPath(final, 'staging'),
        siblingPath(final, 'journal'),
      ];
      for (const path of made) mkdirSync(path);
      const fixed = [
        fixedSiblingPath(final, '.restore-journal'),
        fixedSiblingPath(final, '.pre-restore-2026-11-23T10-00-00.000Z-4194304'),
      ];
      for (const path of fixed) writeFileSync(path, '');
      for (const entry of readdirSync(root)) {
        expect(Buffer.byteLength(entry)).toBeLessThanOrEqual(255);
        expect(Buffer.from(entry).toString('utf8')).toBe(entry); // valid UTF-8, never half a character
      }
      const found = findSiblings(final, ['partial', 'replaced', 'staging', 'journal']);
      expect(found.map((s) => s.path).sort()).toEqual([...made].sort());
      expect(found.every((s) => s.owner === (HAS_PROC ? 'running' : s.owner))).toBe(true);
      expect(isSiblingName(final, basename(fixed[1]!), '.pre-restore-')).toBe(true);
      // The same final path always gives the same fixed names, and a short name keeps its own.
      expect(fixedSiblingPath(final, '.restore-journal')).toBe(fixed[0]);
      if (Buffer.byteLength(name) + '.restore-journal'.length <= 255) {
        expect(basename(fixed[0]!)).toBe(`${name}.restore-journal`);
      }
    },
  );

  it('the siblings of one name are not the siblings of another that starts the same', () => {
    const root = tempDir();
    const long = 'x'.repeat(240);
    mkdirSync(siblingPath(join(root, `${long}a`), 'partial'));
    expect(findSiblings(join(root, `${long}b`), ['partial'])).toEqual([]);
    expect(findSiblings(join(root, long), ['partial'])).toEqual([]);
  });

  it('names an older statesnap made (`<final>.<purpose>-<pid>-<hex>`) are still found', () => {
    const root = tempDir();
    const final = join(root, 'backup');
    const dead = join(root, `backup.partial-${deadPid()}-0123abcd`);
    mkdirSync(dead);
    const reused = join(root, 'backup.staging-1-89abcdef');
    mkdirSync(reused);
    // Made before this machine booted: pid 1 now is another process.
    utimesSync(reused, 86_400, 86_400);
    const found = findSiblings(final, ['partial', 'staging']);
    expect(
      found
        .map(({ path, purpose, owner }) => ({ path, purpose, owner }))
        .sort((a, b) => a.path.localeCompare(b.path)),
    ).toEqual([
      { path: dead, purpose: 'partial', owner: 'gone' },
      { path: reused, purpose: 'staging', owner: HAS_PROC ? 'gone' : 'running' },
    ]);
  });
});

describe('removeTree (the unprivileged run covers folders root could enter anyway)', () => {
  it('removes a tree with read-only and unreadable folders, and never follows a link out of it', async () => {
    const root = tempDir();
    const outside = join(root, 'outside');
    await createTree(outside, { 'keep.json': file('keep'), sub: { 'deep.json': file('deep') } });
    const tree = join(root, 'tree');
    await createTree(tree, {
      'a.json': file('a', { mode: 0o444 }),
      ro: dir(
        { 'b.json': file('b'), inner: dir({ 'c.json': file('c') }, { mode: 0o555 }), link: symlink(outside) },
        { mode: 0o555 },
      ),
      closed: dir({ 'd.json': file('d') }, { mode: 0o000 }),
      writeOnly: dir({ 'e.json': file('e') }, { mode: 0o300 }),
      'file-link': symlink(join(outside, 'keep.json')),
    });
    removeTree(tree);
    expect(existsSync(tree)).toBe(false);
    expect(readFileSync(join(outside, 'sub', 'deep.json'), 'utf8')).toBe('deep');
    expect(readFileSync(join(outside, 'keep.json'), 'utf8')).toBe('keep');
    removeTree(tree); // gone already is fine
  });

  it('a symlink at the root is removed itself, not what it points to', async () => {
    const root = tempDir();
    await createTree(join(root, 'real'), { 'x.json': file('x') });
    symlinkSync(join(root, 'real'), join(root, 'link'));
    removeTree(join(root, 'link'));
    expect(readdirSync(root)).toEqual(['real']);
    expect(readFileSync(join(root, 'real', 'x.json'), 'utf8')).toBe('x');
  });
});
