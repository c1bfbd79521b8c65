// Leftovers with read-only folders never wedge backup, restore or recover for a user who is not root: a
// backup keeps the source's folder modes (0555), and so do a partial tree killed after its attributes were
// set, a staging tree, and a rollback copy. Root removes those without a second look, so every run here is
// the built CLI as uid 65534 without capabilities (`setpriv` when the tests run as root).

import { spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { generateStore } from '../dist/src/demo/generator.js';
import { expectBackupConsistent, expectOneLineError, siblingsOf, sleep, waitFor } from './helpers/backup.js';
import { deadPid, fingerprint, restoreSiblings } from './helpers/restore.js';
import {
  cleanup,
  createTree,
  dir,
  file,
  giveToUnprivileged,
  isRoot,
  runCliUnprivileged,
  startCliUnprivileged,
  tempDir,
} from './helpers/tree.js';

afterEach(cleanup);

/** A temporary directory the unprivileged user owns (and so may write in). */
function unprivilegedRoot(): string {
  const root = tempDir();
  giveToUnprivileged(root);
  return root;
}

/** Gives every folder below `root` (and `root` itself) `mode`, as a backup does with the source's modes. */
function chmodFolders(root: string, mode: number): void {
  const run = spawnSync('find', [root, '-type', 'd', '-exec', 'chmod', mode.toString(8), '{}', '+']);
  expect(run.status, String(run.stderr)).toBe(0);
}

async function readOnlyStore(root: string): Promise<string> {
  const source = join(root, 'src');
  await createTree(source, {
    seeds: dir({ 'a.json': file('{"a":1}') }, { mode: 0o555 }),
    memory: { facts: dir({ 'f.json': file('{"f":true}') }, { mode: 0o555 }) },
    empty: dir({}, { mode: 0o555 }),
  });
  giveToUnprivileged(root);
  return source;
}

/** 10,000 tiny files in read-only folders: long enough to copy that a kill lands mid-run. */
async function bigReadOnlyStore(root: string): Promise<string> {
  const source = join(root, 'src');
  await generateStore(source, { profile: 'tiny-files', scale: 0.01 });
  chmodFolders(source, 0o555);
  giveToUnprivileged(root);
  return source;
}

describe('leftovers with read-only folders, as an unprivileged user', () => {
  it('backup --force replaces a backup with read-only folders, again and again', async () => {
    const root = unprivilegedRoot();
    const source = await readOnlyStore(root);
    const dest = join(root, 'backup');
    const first = await runCliUnprivileged(['backup', '--no-sync', source, dest]);
    expect(first.exitCode, first.stderr).toBe(0);
    expect(lstatSync(join(dest, 'seeds')).mode & 0o777).toBe(0o555);
    for (const round of [1, 2]) {
      const again = await runCliUnprivileged(['backup', '--force', '--json', '--no-sync', source, dest]);
      expect(again.exitCode, `round ${round}: ${again.stderr}`).toBe(0);
      expect(JSON.parse(again.stdout).replacedExisting).toBe(true);
      expect(siblingsOf(dest)).toEqual([]);
    }
    const refused = await runCliUnprivileged(['backup', '--no-sync', source, dest]);
    expect(refused.exitCode).toBe(1);
    expectOneLineError(refused, 'ERR_DEST_EXISTS');
    expectBackupConsistent(dest);
  });

  it('a killed backup’s partial tree with read-only folders is removed by the next run', async () => {
    const root = unprivilegedRoot();
    const source = await bigReadOnlyStore(root);
    const dest = join(root, 'backup');
    const running = startCliUnprivileged(['backup', '--threads', '1', '--no-sync', source, dest]);
    await waitFor(() => siblingsOf(dest).length > 0, 20_000, 'the partial');
    await sleep(150);
    running.child.kill('SIGKILL');
    expect((await running.done).signal).toBe('SIGKILL');
    const [partial] = siblingsOf(dest);
    // As if the kill had landed after the folders got their modes, just before the publishing rename.
    chmodFolders(join(root, partial!), 0o555);

    const next = await runCliUnprivileged(['backup', '--json', '--no-sync', source, dest]);
    expect(next.exitCode, next.stderr).toBe(0);
    expect(JSON.parse(next.stdout).warnings.count).toBe(0);
    expect(siblingsOf(dest)).toEqual([]);
    expectBackupConsistent(dest);
  });

  it('a killed restore’s staging tree with read-only folders is removed by recover', async () => {
    const root = unprivilegedRoot();
    const source = await bigReadOnlyStore(root);
    const backupDir = join(root, 'backup');
    expect((await runCliUnprivileged(['backup', '--no-sync', source, backupDir])).exitCode).toBe(0);
    const target = join(root, 'target');
    const running = startCliUnprivileged(['restore', '--threads', '1', '--no-sync', backupDir, target]);
    const staging = () => restoreSiblings(target).filter((name) => name.includes('.staging-'));
    await waitFor(() => staging().length > 0, 20_000, 'the staging tree');
    await sleep(150);
    running.child.kill('SIGKILL');
    await running.done;
    const [left] = staging();
    chmodFolders(join(root, left!), 0o555);

    const recovered = await runCliUnprivileged(['recover', '--json', target]);
    expect(recovered.exitCode, recovered.stderr).toBe(0);
    // The killed run's lock (its journal) goes too; nothing else is done.
    const { actions } = JSON.parse(recovered.stdout);
    expect(actions).toContainEqual({ action: 'removed-stale', path: join(root, left!) });
    expect(actions).toContainEqual({ action: 'removed-stale', path: `${target}.restore-journal` });
    for (const action of actions) expect(action.action).toBe('removed-stale');
    expect(restoreSiblings(target)).toEqual([]);
    const restored = await runCliUnprivileged(['restore', '--no-sync', backupDir, target]);
    expect(restored.exitCode, restored.stderr).toBe(0);
    expect(fingerprint(target, { mtimes: false })).toEqual(fingerprint(source, { mtimes: false }));
  }, 120_000);

  it('restore --no-keep removes a rollback copy with read-only folders', async () => {
    const root = unprivilegedRoot();
    const source = await readOnlyStore(root);
    const backupDir = join(root, 'backup');
    const target = join(root, 'target');
    expect((await runCliUnprivileged(['backup', '--no-sync', source, backupDir])).exitCode).toBe(0);
    expect((await runCliUnprivileged(['restore', '--no-sync', backupDir, target])).exitCode).toBe(0);
    expect(lstatSync(join(target, 'memory/facts')).mode & 0o777).toBe(0o555);

    const again = await runCliUnprivileged([
      'restore',
      '--no-keep',
      '--json',
      '--no-sync',
      backupDir,
      target,
    ]);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ rollback: null, warnings: { count: 0 } });
    expect(restoreSiblings(target)).toEqual([]);
  });

  it.skipIf(!isRoot)(
    'a leftover it cannot remove (root’s files inside) is a warning, never an internal error (needs root to make)',
    async () => {
      const root = unprivilegedRoot();
      const source = await readOnlyStore(root);
      const dest = join(root, 'backup');
      const partial = join(root, `backup.partial-${deadPid()}-0123abcd`);
      const staging = join(root, `target.staging-${deadPid()}-0123abcd`);
      for (const left of [partial, staging]) {
        mkdirSync(join(left, 'locked'), { recursive: true });
        writeFileSync(join(left, 'locked', 'x.json'), 'x');
        spawnSync('chown', [`${65534}:${65534}`, left]); // the tree is the user's, `locked/` stays root's
      }

      const backedUp = await runCliUnprivileged(['backup', '--json', '--no-sync', source, dest]);
      expect(backedUp.exitCode, backedUp.stderr).toBe(3);
      expect(JSON.parse(backedUp.stdout).warnings).toMatchObject({
        count: 1,
        byProblem: { 'leftover-kept': 1 },
        list: [{ path: partial, problem: 'leftover-kept', message: expect.stringContaining('EACCES') }],
      });
      expect(backedUp.stderr).not.toContain('internal error');
      expectBackupConsistent(dest);

      const recovered = await runCliUnprivileged(['recover', '--json', join(root, 'target')]);
      expect(recovered.exitCode, recovered.stderr).toBe(3);
      expect(JSON.parse(recovered.stdout).warnings.list).toEqual([
        { path: staging, problem: 'leftover-kept', message: expect.stringContaining('EACCES') },
      ]);
      expect(recovered.stderr).not.toContain('internal error');
    },
  );
});

describe('a backup folder that may be searched but not read (0311), as an unprivileged user', () => {
  it('restores its files (opened by path and checked one by one: its descriptor cannot be opened)', async () => {
    const root = unprivilegedRoot();
    const source = join(root, 'src');
    await createTree(source, { locked: { 'a.json': file('{"a":1}') } });
    giveToUnprivileged(root);
    const backupDir = join(root, 'backup');
    expect((await runCliUnprivileged(['backup', '--no-sync', '-q', source, backupDir])).exitCode).toBe(0);
    chmodFolders(join(backupDir, 'locked'), 0o311);
    const target = join(root, 'target');
    const run = await runCliUnprivileged(['restore', '--no-sync', '--json', backupDir, target]);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ files: 1, warnings: { count: 0 } });
    expect(readFileSync(join(target, 'locked', 'a.json'), 'utf8')).toBe('{"a":1}');
  });
});
