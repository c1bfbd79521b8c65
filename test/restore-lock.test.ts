// One restore of a target at a time, whatever the modes: a merge holds the same per-target lock (the journal
// beside the target) as a replace, from its first check to its end. A second restore started while the first
// holds it is refused with ERR_TARGET_BUSY and changes nothing, so the target (and a rollback copy) is always
// exactly one backup's doing, never a mix.

import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatOwner, thisProcess } from '../dist/src/core/owner.js';
import { generateStore } from '../dist/src/demo/generator.js';
import { backup, recover, restore } from '../dist/src/index.js';
import { startCli, waitFor } from './helpers/backup.js';
import { deadPid, fingerprint, restoreSiblings } from './helpers/restore.js';
import { cleanup, createTree, file, type Tree, tempDir } from './helpers/tree.js';

// The backups and reference trees are made once for the file, so the temp dirs go when it is done.
afterAll(cleanup);

const LIVE: Tree = { 'live.json': file('live state'), seeds: { 'own.json': file('only in the target') } };

interface Backups {
  A: string;
  B: string;
}

// Fingerprints without mtimes: the live files are written anew for each target.
const print = (path: string) => fingerprint(path, { mtimes: false });

/** Two Oxios-like backups (about 2,000 files each: a restore of one takes a second or more). */
async function makeBackups(root: string): Promise<Backups> {
  const backups = { A: join(root, 'bA'), B: join(root, 'bB') };
  for (const [name, seed] of [
    ['A', 1],
    ['B', 2],
  ] as const) {
    await generateStore(join(root, `store${name}`), { profile: 'oxios', scale: 0.02, seed });
    await backup({ source: join(root, `store${name}`), dest: backups[name], sync: false });
  }
  return backups;
}

let backups: Backups;
/** The live target merged with each backup, and each backup restored alone, one restore at a time. */
const merged = { A: [] as string[], B: [] as string[] };
const replaced = { A: [] as string[], B: [] as string[] };
let live: string[];

beforeAll(async () => {
  const root = tempDir();
  backups = await makeBackups(root);
  for (const name of ['A', 'B'] as const) {
    const mergedRef = join(root, `merged${name}`);
    await createTree(mergedRef, LIVE);
    await restore({ backup: backups[name], target: mergedRef, mode: 'merge', sync: false });
    merged[name] = print(mergedRef);
    await restore({ backup: backups[name], target: join(root, `replaced${name}`), sync: false });
    replaced[name] = print(join(root, `replaced${name}`));
  }
  expect(merged.A).not.toEqual(merged.B);
  live = print(await liveTarget());
}, 180_000);

/** A fresh live target in a folder of its own. */
async function liveTarget(): Promise<string> {
  const target = join(tempDir(), 'target');
  await createTree(target, LIVE);
  return target;
}

/**
 * Starts `statesnap restore <args>` and resolves once it holds the target: its journal exists. (Without a
 * lock, once it has written a file of its backup, so that a second restore then really runs beside it.)
 */
async function startHolding(args: string[], target: string, writes: string) {
  const running = startCli(['restore', '--no-sync', ...args, target]);
  await waitFor(
    () => existsSync(`${target}.restore-journal`) || existsSync(join(target, writes)),
    30_000,
    'the first restore to hold the target',
  );
  return running;
}

/** A file every backup of the arena has and the live target has not. */
const BACKUP_FILE = 'memory/facts';

describe('concurrent restores of one target', () => {
  it('two merges of different backups: the second gets ERR_TARGET_BUSY, the target is exactly one backup merged', async () => {
    const target = await liveTarget();
    const first = await startHolding(['--mode', 'merge', backups.A], target, BACKUP_FILE);
    await expect(restore({ backup: backups.B, target, mode: 'merge' })).rejects.toMatchObject({
      code: 'ERR_TARGET_BUSY',
      path: target,
    });
    await expect(recover({ target })).rejects.toMatchObject({ code: 'ERR_TARGET_BUSY' });
    const run = await first.done;
    expect(run.exitCode, run.stderr).toBe(0);
    expect(print(target)).toEqual(merged.A);
    expect(restoreSiblings(target)).toEqual([]);
  });

  it('a merge while a replace runs: ERR_TARGET_BUSY; the target is the replaced backup, the rollback copy the old target', async () => {
    const target = await liveTarget();
    const first = await startHolding([backups.B], target, '.never-written');
    await expect(restore({ backup: backups.A, target, mode: 'merge' })).rejects.toMatchObject({
      code: 'ERR_TARGET_BUSY',
    });
    const run = await first.done;
    expect(run.exitCode, run.stderr).toBe(0);
    expect(print(target)).toEqual(replaced.B);
    const [rollback, ...rest] = restoreSiblings(target);
    expect(rest).toEqual([]);
    expect(rollback).toMatch(/^target\.pre-restore-/);
    expect(print(join(dirname(target), rollback!))).toEqual(live);
  });

  it('a replace while a merge runs: ERR_TARGET_BUSY; the target is exactly one backup merged, nothing else left', async () => {
    const target = await liveTarget();
    const first = await startHolding(['--mode', 'merge', backups.A], target, BACKUP_FILE);
    await expect(restore({ backup: backups.B, target })).rejects.toMatchObject({ code: 'ERR_TARGET_BUSY' });
    const run = await first.done;
    expect(run.exitCode, run.stderr).toBe(0);
    expect(print(target)).toEqual(merged.A);
    expect(restoreSiblings(target)).toEqual([]);
  });
});

describe('the lock of a merge', () => {
  /** A target whose lock journal names `owner` (a token as owner.ts writes it) as the merge holding it. */
  async function heldBy(owner: string) {
    const root = tempDir();
    const target = join(root, 'target');
    await createTree(target, LIVE);
    await createTree(join(root, 'store'), { seeds: { 'a.json': file('from the backup') } });
    await backup({ source: join(root, 'store'), dest: join(root, 'backup') });
    const journal = `${target}.restore-journal`;
    writeFileSync(journal, `${JSON.stringify({ tool: 'statesnap', version: 2, owner, holds: 'merge' })}\n`);
    return { root, target, backupDir: join(root, 'backup'), journal };
  }

  it('held by a live process: restore and recover refuse (ERR_TARGET_BUSY), nothing touched', async () => {
    const { root, target, backupDir } = await heldBy(formatOwner(thisProcess()));
    const before = fingerprint(root);
    for (const mode of ['merge', 'replace'] as const) {
      await expect(restore({ backup: backupDir, target, mode })).rejects.toMatchObject({
        code: 'ERR_TARGET_BUSY',
      });
    }
    await expect(recover({ target })).rejects.toMatchObject({ code: 'ERR_TARGET_BUSY' });
    expect(fingerprint(root)).toEqual(before);
  });

  it('a merge killed (-9) while it holds the target: the next restore frees the lock and merges', async () => {
    const target = await liveTarget();
    const first = await startHolding(['--mode', 'merge', backups.A], target, BACKUP_FILE);
    first.child.kill('SIGKILL');
    await first.done;
    const journal = `${target}.restore-journal`;
    expect(existsSync(journal)).toBe(true);
    const result = await restore({ backup: backups.A, target, mode: 'merge', sync: false });
    // The kill may also have left the journal's temp file (linked into place, not yet removed).
    expect(result.recovered).toContainEqual({ action: 'removed-stale', path: journal });
    for (const action of result.recovered) expect(action.action).toBe('removed-stale');
    // A killed merge may leave a temp file per thread (the README says so); the rest is the backup merged.
    const tempFile = /(^|\/)\.statesnap-\d+-\d+-\d+\.tmp /;
    expect(print(target).filter((line) => !tempFile.test(line))).toEqual(merged.A);
    expect(restoreSiblings(target)).toEqual([]);
  });

  it('left by a merge that was killed: the next restore frees it and merges', async () => {
    const { target, backupDir, journal } = await heldBy(formatOwner({ ...thisProcess(), pid: deadPid() }));
    const result = await restore({ backup: backupDir, target, mode: 'merge' });
    expect(result.recovered).toEqual([{ action: 'removed-stale', path: journal }]);
    expect(readdirSync(join(target, 'seeds')).sort()).toEqual(['a.json', 'own.json']);
    expect(restoreSiblings(target)).toEqual([]);
  });
});
