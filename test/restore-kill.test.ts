// A restore killed at any point leaves the old tree or the new tree, never a mix, and the next run (or
// `statesnap recover`) cleans up. The swap's journal states are built by hand so every one of them is
// covered, including broken ones; real runs are killed (kill -9) at each of their named points (the test-only
// pause points stop a run exactly there), checking what the disk holds there and after recovery.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { formatOwner, type Owner, thisProcess } from '../dist/src/core/owner.js';
import { siblingPath } from '../dist/src/core/siblings.js';
import { generateStore } from '../dist/src/demo/generator.js';
import { backup, recover, restore } from '../dist/src/index.js';
import { startPausedCli } from './helpers/pause.js';
import { deadPid, restoreSiblings } from './helpers/restore.js';
import {
  cleanup,
  cleanupFixtures,
  createTree,
  file,
  fingerprintTree,
  fixtureDir,
  runCli,
  type TreePrint,
  tempDir,
} from './helpers/tree.js';

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  cleanup();
});

/** A process that is not statesnap, and its start time (field 22 of /proc/<pid>/stat). */
function otherProcess(): { pid: number; start: string } {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  children.push(child);
  const stat = readFileSync(`/proc/${child.pid}/stat`, 'latin1');
  return { pid: child.pid!, start: stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]! };
}

/** An owner record as this statesnap writes it: this process, with `change` applied. */
function owner(change: Partial<Owner>): string {
  return formatOwner({ ...thisProcess(), ...change });
}

interface Swap {
  root: string;
  target: string;
  staging: string;
  rollback: string;
  journal: string;
  oldPrint: TreePrint;
  newPrint: TreePrint;
}

/**
 * The trees a replace restore has beside its target while it swaps: the old target, a complete staging tree,
 * and the journal naming both (as `restore` writes it), owned by `owner` (a token as owner.ts writes it; by
 * default a process that has exited), or by `pid` alone as statesnap 0.1 wrote it. `stage` moves them to
 * where a kill would have left them.
 */
async function swapState(
  stage: 'journal-written' | 'target-moved-aside' | 'staging-moved-in',
  options: { owner?: string; pid?: number; keep?: boolean } = {},
): Promise<Swap> {
  const root = tempDir();
  const target = join(root, 'target');
  const pid = options.pid ?? deadPid();
  const recordedOwner =
    options.pid === undefined ? { version: 2, owner: options.owner ?? owner({ pid }) } : { version: 1, pid };
  const staging = join(root, `target.staging-${pid}-0123abcd`);
  const rollback = join(root, 'target.pre-restore-2026-11-23T10-00-00.000Z');
  await createTree(target, { 'old.json': file('old state'), sub: { 'o.md': file('o') } });
  await createTree(staging, { 'new.json': file('new state'), sub: { 'n.md': file('n') } });
  const oldPrint = fingerprintTree(target);
  const newPrint = fingerprintTree(staging);
  const journal = join(root, 'target.restore-journal');
  writeFileSync(
    journal,
    `${JSON.stringify({
      tool: 'statesnap',
      ...recordedOwner,
      staging: `target.staging-${pid}-0123abcd`,
      rollback: 'target.pre-restore-2026-11-23T10-00-00.000Z',
      keep: options.keep ?? true,
    })}\n`,
  );
  if (stage !== 'journal-written') renameSync(target, rollback);
  if (stage === 'staging-moved-in') renameSync(staging, target);
  return { root, target, staging, rollback, journal, oldPrint, newPrint };
}

describe('recover: a swap killed between its steps is finished from the journal', () => {
  it('killed after the journal, before any rename: the new tree is swapped in, the old one kept', async () => {
    const swap = await swapState('journal-written');
    const result = await recover({ target: swap.target });
    expect(result.actions).toEqual([{ action: 'swapped-in', path: swap.target }]);
    expect(fingerprintTree(swap.target)).toEqual(swap.newPrint);
    expect(fingerprintTree(swap.rollback)).toEqual(swap.oldPrint);
    expect(restoreSiblings(swap.target)).toEqual(['target.pre-restore-2026-11-23T10-00-00.000Z']);
  });

  it('killed between the two renames (no target at all): the swap is completed', async () => {
    const swap = await swapState('target-moved-aside');
    const run = await runCli(['recover', '--json', swap.target]);
    expect(run.exitCode).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({
      command: 'recover',
      actions: [{ action: 'swapped-in', path: swap.target }],
      exitCode: 0,
    });
    expect(fingerprintTree(swap.target)).toEqual(swap.newPrint);
    expect(fingerprintTree(swap.rollback)).toEqual(swap.oldPrint);
  });

  it('killed after both renames with --no-keep: the rollback copy and the journal are removed', async () => {
    const swap = await swapState('staging-moved-in', { keep: false });
    const result = await recover({ target: swap.target });
    expect(result.actions).toEqual([{ action: 'removed-rollback', path: swap.rollback }]);
    expect(fingerprintTree(swap.target)).toEqual(swap.newPrint);
    expect(restoreSiblings(swap.target)).toEqual([]);
  });

  it('staging tree gone and no target: the rollback copy is put back', async () => {
    const swap = await swapState('target-moved-aside');
    rmSync(swap.staging, { recursive: true });
    const result = await recover({ target: swap.target });
    expect(result.actions).toEqual([{ action: 'put-back-rollback', path: swap.target }]);
    expect(fingerprintTree(swap.target)).toEqual(swap.oldPrint);
    expect(restoreSiblings(swap.target)).toEqual([]);
  });

  it('the next restore of the target recovers first, then restores', async () => {
    const swap = await swapState('target-moved-aside');
    const backupDir = join(swap.root, 'backup');
    await createTree(join(swap.root, 'store'), { 'third.json': file('third state') });
    await backup({ source: join(swap.root, 'store'), dest: backupDir });
    const result = await restore({ backup: backupDir, target: swap.target, keep: false });
    expect(result.recovered).toEqual([{ action: 'swapped-in', path: swap.target }]);
    expect(readFileSync(join(swap.target, 'third.json'), 'utf8')).toBe('third state');
    expect(restoreSiblings(swap.target)).toEqual(['target.pre-restore-2026-11-23T10-00-00.000Z']);
  });

  it('a journal whose owner is alive: ERR_TARGET_BUSY for recover and restore, nothing touched', async () => {
    const swap = await swapState('target-moved-aside', { owner: owner({}) });
    const backupDir = join(swap.root, 'backup');
    await createTree(join(swap.root, 'store'), { 'third.json': file('third state') });
    await backup({ source: join(swap.root, 'store'), dest: backupDir });
    const before = fingerprintTree(swap.root);
    await expect(recover({ target: swap.target })).rejects.toMatchObject({ code: 'ERR_TARGET_BUSY' });
    await expect(restore({ backup: backupDir, target: swap.target })).rejects.toMatchObject({
      code: 'ERR_TARGET_BUSY',
    });
    expect(fingerprintTree(swap.root)).toEqual(before);
  });

  const broken: Array<[string, (swap: Swap) => void]> = [
    ['a journal that is not JSON', (swap) => writeFileSync(swap.journal, '{"tool":"statesn')],
    [
      'a journal naming a path outside the target’s folder',
      (swap) => {
        const journal = JSON.parse(readFileSync(swap.journal, 'utf8'));
        writeFileSync(
          swap.journal,
          JSON.stringify({ ...journal, staging: 'target.staging-1/../../elsewhere' }),
        );
      },
    ],
    [
      'a target recreated while the old one was aside (target, staging and rollback all exist)',
      (swap) => mkdirSync(join(swap.target, 'recreated'), { recursive: true }),
    ],
  ];
  for (const [name, breakIt] of broken) {
    it(`${name}: ERR_RECOVERY_NEEDED, nothing touched`, async () => {
      const swap = await swapState('target-moved-aside');
      breakIt(swap);
      const before = fingerprintTree(swap.root);
      const run = await runCli(['recover', swap.target]);
      expect(run).toMatchObject({ exitCode: 1, stdout: '' });
      expect(run.stderr).toContain('[ERR_RECOVERY_NEEDED]');
      expect(run.stderr).toContain('statesnap recover');
      expect(fingerprintTree(swap.root)).toEqual(before);
    });
  }

  it('stale staging trees of dead runs are removed, a live run’s staging tree is left alone', async () => {
    const root = tempDir();
    const target = join(root, 'target');
    await createTree(target, { 'a.json': file('a') });
    const dead = join(root, `target.staging-${owner({ pid: deadPid() })}-00000000`);
    const live = siblingPath(target, 'staging');
    // statesnap 0.1's names: a pid that has exited, and pid 1 for a tree made before this machine booted.
    const olderDead = join(root, `target.staging-${deadPid()}-22222222`);
    const olderBeforeBoot = join(root, 'target.staging-1-33333333');
    for (const path of [dead, live, olderDead, olderBeforeBoot])
      await createTree(path, { 'x.json': file('x') });
    utimesSync(olderBeforeBoot, 86_400, 86_400);
    const result = await recover({ target });
    expect(result.actions.sort((a, b) => a.path.localeCompare(b.path))).toEqual(
      [dead, olderDead, olderBeforeBoot].sort().map((path) => ({ action: 'removed-stale', path })),
    );
    expect(result.exitCode).toBe(0);
    expect(restoreSiblings(target)).toEqual([basename(live)]);
    const nothing = await runCli(['recover', join(root, 'elsewhere')]);
    expect(nothing).toMatchObject({ exitCode: 0 });
    expect(nothing.stdout).toContain('nothing to recover');
  });
});

describe('recover: the owner of a journal is its process, not just its pid', () => {
  it('a journal of statesnap 0.1 (pid alone) whose pid is reused after a reboot: the swap is finished', async () => {
    // pid 1 runs, but has run only since this machine booted, long after the journal was written.
    const swap = await swapState('target-moved-aside', { pid: 1 });
    utimesSync(swap.journal, 86_400, 86_400);
    const run = await runCli(['recover', '--json', swap.target]);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).actions).toEqual([{ action: 'swapped-in', path: swap.target }]);
    expect(fingerprintTree(swap.target)).toEqual(swap.newPrint);
  });

  it.each([
    ['pid 1', () => ({ pid: 1, start: '1' })],
    ['a process this test started', () => ({ ...otherProcess(), start: '1' })],
  ])(
    'the pid runs, as %s with another start time: the owner is gone, the swap is finished',
    async (_name, make) => {
      const swap = await swapState('target-moved-aside', { owner: owner(make()) });
      const result = await recover({ target: swap.target });
      expect(result.actions).toEqual([{ action: 'swapped-in', path: swap.target }]);
      expect(fingerprintTree(swap.target)).toEqual(swap.newPrint);
      expect(restoreSiblings(swap.target)).toEqual([basename(swap.rollback)]);
    },
  );

  it('the owner runs (its pid and its start time): ERR_TARGET_BUSY naming it and the way on, nothing touched', async () => {
    const running = otherProcess();
    const swap = await swapState('target-moved-aside', { owner: owner(running) });
    const before = fingerprintTree(swap.root);
    const run = await runCli(['recover', swap.target]);
    expect(run).toMatchObject({ exitCode: 1, stdout: '' });
    expect(run.stderr).toContain('[ERR_TARGET_BUSY]');
    expect(run.stderr).toContain(`pid ${running.pid} (started `);
    expect(run.stderr).toContain(`statesnap recover ${swap.target}`);
    // --break-lock never overrides an owner shown to be running.
    await expect(recover({ target: swap.target, breakLock: true })).rejects.toMatchObject({
      code: 'ERR_TARGET_BUSY',
    });
    expect(fingerprintTree(swap.root)).toEqual(before);
  });

  it.each([
    ['another container (pid namespace) of this boot', { pidNs: '1' }, 'another container'],
    ['another machine', { host: '00000000', boot: '00000000' }, 'another machine'],
  ])(
    '%s cannot be judged: ERR_TARGET_BUSY with --break-lock as the way on, which finishes the swap',
    async (_name, change, where) => {
      const swap = await swapState('target-moved-aside', { owner: owner({ ...change, pid: deadPid() }) });
      const backupDir = join(swap.root, 'backup');
      await createTree(join(swap.root, 'store'), { 'third.json': file('third state') });
      await backup({ source: join(swap.root, 'store'), dest: backupDir });
      const before = fingerprintTree(swap.root);
      const refused = await runCli(['recover', swap.target]);
      expect(refused).toMatchObject({ exitCode: 1, stdout: '' });
      expect(refused.stderr).toContain('[ERR_TARGET_BUSY]');
      expect(refused.stderr).toContain(where);
      expect(refused.stderr).toContain(`statesnap recover --break-lock ${swap.target}`);
      await expect(restore({ backup: backupDir, target: swap.target })).rejects.toMatchObject({
        code: 'ERR_TARGET_BUSY',
      });
      expect(fingerprintTree(swap.root)).toEqual(before);
      const broken = await runCli(['recover', '--break-lock', '--json', swap.target]);
      expect(broken.exitCode, broken.stderr).toBe(0);
      expect(JSON.parse(broken.stdout).actions).toEqual([{ action: 'swapped-in', path: swap.target }]);
      expect(fingerprintTree(swap.target)).toEqual(swap.newPrint);
    },
  );

  it('a staging tree of another container is kept with a warning, and removed with --break-lock', async () => {
    const root = tempDir();
    const target = join(root, 'target');
    const elsewhere = join(root, `target.staging-${owner({ pidNs: '1' })}-44444444`);
    await createTree(elsewhere, { 'x.json': file('x') });
    const kept = await runCli(['recover', '--json', target]);
    expect(kept.exitCode).toBe(3);
    expect(JSON.parse(kept.stdout).warnings.list).toEqual([
      { path: elsewhere, problem: 'leftover-kept', message: expect.stringContaining('--break-lock') },
    ]);
    const removed = await recover({ target, breakLock: true });
    expect(removed.actions).toEqual([{ action: 'removed-stale', path: elsewhere }]);
    expect(restoreSiblings(target)).toEqual([]);
  });
});

interface SwapView {
  /** The staging tree, the rollback copy and the journal beside the target, where they exist. */
  staging?: string;
  rollback?: string;
  journal?: { staging: string; rollback: string; keep: boolean; holds?: 'merge' | 'replace' };
}

/** What lies beside `target` mid-restore. */
function swapView(target: string): SwapView {
  const root = dirname(target);
  const view: SwapView = {};
  for (const name of restoreSiblings(target)) {
    if (name.includes('.staging-')) view.staging = join(root, name);
    else if (name.includes('.pre-restore-')) view.rollback = join(root, name);
    else if (name === 'target.restore-journal')
      view.journal = JSON.parse(readFileSync(join(root, name), 'utf8'));
    else throw new Error(`unexpected sibling ${name}`);
  }
  return view;
}

/** How many regular files a fingerprint holds. */
function countFiles(print: TreePrint): number {
  return Object.values(print).filter((entry) => entry.kind === 'file').length;
}

describe('kill -9 of a real restore at each of its points', () => {
  // Two backups of stores with the same names and different contents: A, what the target holds before each
  // restore, and B, the one restored; each restored once into a reference tree. Made once; no test changes them.
  const fixture = {
    backups: { A: '', B: '' },
    references: { A: '', B: '' },
    prints: { A: {}, B: {} } as Record<'A' | 'B', TreePrint>,
  };
  beforeAll(async () => {
    const root = fixtureDir();
    for (const [name, seed] of [
      ['A', 1],
      ['B', 2],
    ] as const) {
      const store = join(root, `store${name}`);
      await generateStore(store, { profile: 'tiny-files', scale: 0.0006, seed });
      fixture.backups[name] = join(root, `backup${name}`);
      await backup({ source: store, dest: fixture.backups[name], sync: false });
      fixture.references[name] = join(root, `reference${name}`);
      await restore({ backup: fixture.backups[name], target: fixture.references[name], sync: false });
      fixture.prints[name] = fingerprintTree(fixture.references[name]);
      rmSync(store, { recursive: true });
    }
  }, 120_000);
  afterAll(cleanupFixtures);

  it('the fixture: two different trees, the one restored in more than one batch', () => {
    expect(fixture.prints.A).not.toEqual(fixture.prints.B);
    expect(countFiles(fixture.prints.B)).toBeGreaterThan(2 * 256);
  });

  /** A new target holding A's tree, as a restore of A made it (cp -a keeps modes and mtimes). */
  function targetHoldingA(): string {
    const target = join(tempDir(), 'target');
    const copy = spawnSync('cp', ['-a', fixture.references.A, target], { encoding: 'utf8' });
    expect(copy.stderr).toBe('');
    expect(fingerprintTree(target)).toEqual(fixture.prints.A);
    return target;
  }

  const halfOfB = () => Math.floor(countFiles(fixture.prints.B) / 2);

  interface KillPoint {
    point: () => string;
    args?: string[];
    /** What the disk holds while the run is stopped at the point. */
    atPause(target: string, view: SwapView): void;
    /** The tree the target holds once the killed run is recovered. */
    recovered: 'A' | 'B';
    /** What `recover` reports doing, given what lay beside the target at the pause. */
    actions(target: string, view: SwapView): Array<{ action: string; path: string }>;
  }

  /** A point before the journal: the target untouched, only a staging tree beside it, holding what `check` expects. */
  const beforeTheJournal = (point: () => string, check: (staging: TreePrint) => void): KillPoint => ({
    point,
    atPause(target, view) {
      expect(fingerprintTree(target)).toEqual(fixture.prints.A);
      // The journal is the target's lock from the first check on; it names no swap yet.
      expect(view).toEqual({
        staging: expect.any(String),
        journal: { tool: 'statesnap', version: 2, owner: expect.any(String), holds: 'replace' },
      });
      check(fingerprintTree(view.staging!));
    },
    recovered: 'A',
    actions: (target, view) => [
      { action: 'removed-stale', path: `${target}.restore-journal` },
      { action: 'removed-stale', path: view.staging! },
    ],
  });
  const points: Record<string, KillPoint> = {
    'staging-created: an empty staging tree beside the untouched target': beforeTheJournal(
      () => 'staging-created',
      (staging) => expect(staging).toEqual({}),
    ),
    'copying, half the files done: a partial staging tree, the target untouched': beforeTheJournal(
      () => `copying:${halfOfB()}`,
      (staging) => expect(countFiles(staging)).toBeGreaterThanOrEqual(halfOfB()),
    ),
    'staging-flushed: the whole new tree in staging, no journal yet, the target untouched': beforeTheJournal(
      () => 'staging-flushed',
      (staging) => expect(staging).toEqual(fixture.prints.B),
    ),
    'journal-written: the journal names the finished staging tree; the target untouched': {
      point: () => 'journal-written',
      atPause(target, view) {
        expect(fingerprintTree(target)).toEqual(fixture.prints.A);
        expect(fingerprintTree(view.staging!)).toEqual(fixture.prints.B);
        expect(view.rollback).toBeUndefined();
        expect(view.journal).toEqual({
          tool: 'statesnap',
          version: 2,
          owner: expect.any(String),
          staging: basename(view.staging!),
          rollback: expect.stringMatching(/^target\.pre-restore-/),
          keep: true,
        });
      },
      recovered: 'B',
      actions: (target) => [{ action: 'swapped-in', path: target }],
    },
    'journal-written with --no-keep: recovery swaps in and removes the old tree': {
      point: () => 'journal-written',
      args: ['--no-keep'],
      atPause(target, view) {
        expect(fingerprintTree(target)).toEqual(fixture.prints.A);
        expect(view.journal?.keep).toBe(false);
      },
      recovered: 'B',
      actions: (target, view) => [
        { action: 'swapped-in', path: target },
        { action: 'removed-rollback', path: join(dirname(target), view.journal!.rollback) },
      ],
    },
    'target-moved-aside: no target at all, the old tree is the rollback copy': {
      point: () => 'target-moved-aside',
      atPause(target, view) {
        expect(existsSync(target)).toBe(false);
        expect(fingerprintTree(view.rollback!)).toEqual(fixture.prints.A);
        expect(fingerprintTree(view.staging!)).toEqual(fixture.prints.B);
        expect(view.journal?.rollback).toBe(basename(view.rollback!));
      },
      recovered: 'B',
      actions: (target) => [{ action: 'swapped-in', path: target }],
    },
    'staging-moved-in: the new tree in place, the journal not yet removed': {
      point: () => 'staging-moved-in',
      atPause(target, view) {
        expect(fingerprintTree(target)).toEqual(fixture.prints.B);
        expect(fingerprintTree(view.rollback!)).toEqual(fixture.prints.A);
        expect(view.staging).toBeUndefined();
        expect(view.journal).toBeDefined();
      },
      recovered: 'B',
      actions: () => [],
    },
    'staging-moved-in with --no-keep: recovery removes the old tree': {
      point: () => 'staging-moved-in',
      args: ['--no-keep'],
      atPause(target, view) {
        expect(fingerprintTree(target)).toEqual(fixture.prints.B);
        expect(view.journal?.keep).toBe(false);
      },
      recovered: 'B',
      actions: (_target, view) => [{ action: 'removed-rollback', path: view.rollback! }],
    },
  };

  for (const [title, kill] of Object.entries(points)) {
    it(`${title}; recover leaves ${kill.recovered === 'A' ? 'the old' : 'the new'} tree`, async () => {
      const target = targetHoldingA();
      const point = kill.point();
      const running = startPausedCli(['restore', ...(kill.args ?? []), fixture.backups.B, target], [point]);
      await running.reached(point);
      const view = swapView(target);
      kill.atPause(target, view);
      expect((await running.kill()).signal).toBe('SIGKILL');

      const recovered = await recover({ target });
      expect(recovered.actions).toEqual(kill.actions(target, view));
      expect(fingerprintTree(target)).toEqual(fixture.prints[kill.recovered]);
      const rollback = kill.recovered === 'B' && view.journal?.keep !== false ? [view.journal!.rollback] : [];
      expect(restoreSiblings(target)).toEqual(rollback);
      if (rollback.length > 0) {
        expect(fingerprintTree(join(dirname(target), rollback[0]!))).toEqual(fixture.prints.A);
      }
    });
  }

  it('killed after the journal: the next restore finishes that swap first, then restores', async () => {
    const target = targetHoldingA();
    const running = startPausedCli(['restore', '--no-keep', fixture.backups.B, target], ['journal-written']);
    await running.reached('journal-written');
    await running.kill();
    const result = await restore({ backup: fixture.backups.A, target, keep: false, sync: false });
    expect(result.recovered).toEqual([
      { action: 'swapped-in', path: target },
      { action: 'removed-rollback', path: expect.stringContaining('target.pre-restore-') },
    ]);
    expect(fingerprintTree(target)).toEqual(fixture.prints.A);
    expect(restoreSiblings(target)).toEqual([]);
  });

  it('a recover killed in the middle of the swap it finishes is finished by the next recover', async () => {
    const target = targetHoldingA();
    const restoring = startPausedCli(['restore', fixture.backups.B, target], ['journal-written']);
    await restoring.reached('journal-written');
    await restoring.kill();
    const recovering = startPausedCli(['recover', target], ['target-moved-aside']);
    await recovering.reached('target-moved-aside');
    expect(existsSync(target)).toBe(false);
    await recovering.kill();
    const run = await runCli(['recover', '--json', target]);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).actions).toEqual([{ action: 'swapped-in', path: target }]);
    expect(fingerprintTree(target)).toEqual(fixture.prints.B);
    expect(restoreSiblings(target)).toEqual([swapView(target).rollback!.slice(dirname(target).length + 1)]);
  });
});
