// A restore killed at any point leaves the old tree or the new tree, never a mix, and the next run (or
// `statesnap recover`) cleans up. The swap's journal states are built by hand so every one of them is
// covered; real `kill -9`s at several points of real runs check the whole.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatOwner, type Owner, thisProcess } from '../dist/src/core/owner.js';
import { siblingPath } from '../dist/src/core/siblings.js';
import { generateStore } from '../dist/src/demo/generator.js';
import { backup, recover, restore } from '../dist/src/index.js';
import { sleep, startCli, waitFor } from './helpers/backup.js';
import { deadPid, fingerprint, restoreSiblings } from './helpers/restore.js';
import { cleanup, createTree, file, runCli, tempDir } from './helpers/tree.js';

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
  oldPrint: string[];
  newPrint: string[];
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
  const oldPrint = fingerprint(target);
  const newPrint = fingerprint(staging);
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
    expect(fingerprint(swap.target)).toEqual(swap.newPrint);
    expect(fingerprint(swap.rollback)).toEqual(swap.oldPrint);
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
    expect(fingerprint(swap.target)).toEqual(swap.newPrint);
    expect(fingerprint(swap.rollback)).toEqual(swap.oldPrint);
  });

  it('killed after both renames with --no-keep: the rollback copy and the journal are removed', async () => {
    const swap = await swapState('staging-moved-in', { keep: false });
    const result = await recover({ target: swap.target });
    expect(result.actions).toEqual([{ action: 'removed-rollback', path: swap.rollback }]);
    expect(fingerprint(swap.target)).toEqual(swap.newPrint);
    expect(restoreSiblings(swap.target)).toEqual([]);
  });

  it('staging tree gone and no target: the rollback copy is put back', async () => {
    const swap = await swapState('target-moved-aside');
    rmSync(swap.staging, { recursive: true });
    const result = await recover({ target: swap.target });
    expect(result.actions).toEqual([{ action: 'put-back-rollback', path: swap.target }]);
    expect(fingerprint(swap.target)).toEqual(swap.oldPrint);
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
    const before = fingerprint(swap.root);
    await expect(recover({ target: swap.target })).rejects.toMatchObject({ code: 'ERR_TARGET_BUSY' });
    await expect(restore({ backup: backupDir, target: swap.target })).rejects.toMatchObject({
      code: 'ERR_TARGET_BUSY',
    });
    expect(fingerprint(swap.root)).toEqual(before);
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
      const before = fingerprint(swap.root);
      const run = await runCli(['recover', swap.target]);
      expect(run).toMatchObject({ exitCode: 1, stdout: '' });
      expect(run.stderr).toContain('[ERR_RECOVERY_NEEDED]');
      expect(run.stderr).toContain('statesnap recover');
      expect(fingerprint(swap.root)).toEqual(before);
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
    expect(fingerprint(swap.target)).toEqual(swap.newPrint);
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
      expect(fingerprint(swap.target)).toEqual(swap.newPrint);
      expect(restoreSiblings(swap.target)).toEqual([basename(swap.rollback)]);
    },
  );

  it('the owner runs (its pid and its start time): ERR_TARGET_BUSY naming it and the way on, nothing touched', async () => {
    const running = otherProcess();
    const swap = await swapState('target-moved-aside', { owner: owner(running) });
    const before = fingerprint(swap.root);
    const run = await runCli(['recover', swap.target]);
    expect(run).toMatchObject({ exitCode: 1, stdout: '' });
    expect(run.stderr).toContain('[ERR_TARGET_BUSY]');
    expect(run.stderr).toContain(`pid ${running.pid} (started `);
    expect(run.stderr).toContain(`statesnap recover ${swap.target}`);
    // --break-lock never overrides an owner shown to be running.
    await expect(recover({ target: swap.target, breakLock: true })).rejects.toMatchObject({
      code: 'ERR_TARGET_BUSY',
    });
    expect(fingerprint(swap.root)).toEqual(before);
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
      const before = fingerprint(swap.root);
      const refused = await runCli(['recover', swap.target]);
      expect(refused).toMatchObject({ exitCode: 1, stdout: '' });
      expect(refused.stderr).toContain('[ERR_TARGET_BUSY]');
      expect(refused.stderr).toContain(where);
      expect(refused.stderr).toContain(`statesnap recover --break-lock ${swap.target}`);
      await expect(restore({ backup: backupDir, target: swap.target })).rejects.toMatchObject({
        code: 'ERR_TARGET_BUSY',
      });
      expect(fingerprint(swap.root)).toEqual(before);
      const broken = await runCli(['recover', '--break-lock', '--json', swap.target]);
      expect(broken.exitCode, broken.stderr).toBe(0);
      expect(JSON.parse(broken.stdout).actions).toEqual([{ action: 'swapped-in', path: swap.target }]);
      expect(fingerprint(swap.target)).toEqual(swap.newPrint);
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

describe('kill -9 of real restores', () => {
  it('at several points: the target is the old tree or the new tree, never a mix; the next run cleans up', async () => {
    const root = tempDir();
    const backups: Record<'A' | 'B', string> = { A: join(root, 'bA'), B: join(root, 'bB') };
    const prints: Record<'A' | 'B', string[]> = { A: [], B: [] };
    for (const [name, seed] of [
      ['A', 1],
      ['B', 2],
    ] as const) {
      await generateStore(join(root, `store${name}`), { profile: 'oxios', scale: 0.02, seed });
      await backup({ source: join(root, `store${name}`), dest: backups[name] });
      await restore({ backup: backups[name], target: join(root, `reference${name}`) });
      prints[name] = fingerprint(join(root, `reference${name}`));
      rmSync(join(root, `store${name}`), { recursive: true });
    }
    expect(prints.A).not.toEqual(prints.B);
    const target = join(root, 'target');
    await restore({ backup: backups.A, target });
    let current: 'A' | 'B' = 'A';
    const has = (part: string) => () => restoreSiblings(target).some((name) => name.includes(part));
    // Where each kill lands: early in the copy, later in the copy, during the flush and swap.
    const points: Array<{ name: string; when: () => Promise<void>; args?: string[] }> = [
      { name: 'staging created', when: () => waitFor(has('.staging-'), 20_000, 'staging') },
      {
        name: '150 ms into the copy',
        when: async () => {
          await waitFor(has('.staging-'), 20_000, 'staging');
          await sleep(150);
        },
      },
      {
        name: '500 ms into the copy',
        when: async () => {
          await waitFor(has('.staging-'), 20_000, 'staging');
          await sleep(500);
        },
      },
      { name: 'journal written', when: () => waitFor(has('.restore-journal'), 30_000, 'journal') },
      {
        name: 'journal written, --no-keep',
        when: () => waitFor(has('.restore-journal'), 30_000, 'journal'),
        args: ['--no-keep'],
      },
      { name: 'rollback copy made', when: () => waitFor(has('.pre-restore-'), 30_000, 'rollback') },
    ];
    for (const [i, point] of points.entries()) {
      const next: 'A' | 'B' = current === 'A' ? 'B' : 'A';
      const running = startCli(['restore', ...(point.args ?? []), backups[next], target]);
      try {
        await point.when();
      } catch {
        // The run finished before the point was seen: a kill now hits a finished process, which is fine too.
      }
      running.child.kill('SIGKILL');
      await running.done;
      // Right after the kill the target may be missing only while a journal says how to finish the swap.
      const now = restoreSiblings(target);
      const state = (() => {
        try {
          return fingerprint(target);
        } catch {
          return null;
        }
      })();
      if (state === null) expect(now).toContain('target.restore-journal');
      else expect([prints.A, prints.B], `after the kill at "${point.name}"`).toContainEqual(state);
      // Recover with the command, or with the next restore (which then restores the other backup fully).
      if (i % 2 === 0) {
        const run = await runCli(['recover', target]);
        expect(run.exitCode, run.stderr).toBe(0);
        const recovered = fingerprint(target);
        expect([prints.A, prints.B], `after recovering "${point.name}"`).toContainEqual(recovered);
        current = JSON.stringify(recovered) === JSON.stringify(prints.A) ? 'A' : 'B';
      } else {
        const run = await runCli(['restore', backups[next], target]);
        expect(run.exitCode, run.stderr).toBe(0);
        expect(fingerprint(target)).toEqual(prints[next]);
        current = next;
      }
      const left = restoreSiblings(target);
      expect(
        left.filter((name) => !name.includes('.pre-restore-')),
        `debris after "${point.name}"`,
      ).toEqual([]);
      for (const name of left) rmSync(join(root, name), { recursive: true });
    }
  }, 240_000);
});
