// A restore killed at any point leaves the old tree or the new tree, never a mix, and the next run (or
// `statesnap recover`) cleans up. The swap's journal states are built by hand so every one of them is
// covered; real `kill -9`s at several points of real runs check the whole.

import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { generateStore } from '../dist/src/demo/generator.js';
import { backup, recover, restore } from '../dist/src/index.js';
import { sleep, startCli, waitFor } from './helpers/backup.js';
import { deadPid, fingerprint, restoreSiblings } from './helpers/restore.js';
import { cleanup, createTree, file, runCli, tempDir } from './helpers/tree.js';

afterEach(cleanup);

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
 * and the journal naming both (as `restore` writes it), owned by `pid`. `stage` moves them to where a kill
 * would have left them.
 */
async function swapState(
  stage: 'journal-written' | 'target-moved-aside' | 'staging-moved-in',
  options: { pid?: number; keep?: boolean } = {},
): Promise<Swap> {
  const root = tempDir();
  const target = join(root, 'target');
  const pid = options.pid ?? deadPid();
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
      version: 1,
      pid,
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
    const swap = await swapState('target-moved-aside', { pid: process.pid });
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
    const dead = join(root, `target.staging-${deadPid()}-00000000`);
    const live = join(root, `target.staging-${process.pid}-11111111`);
    await createTree(dead, { 'x.json': file('x') });
    await createTree(live, { 'y.json': file('y') });
    const result = await recover({ target });
    expect(result.actions).toEqual([{ action: 'removed-stale', path: dead }]);
    expect(restoreSiblings(target)).toEqual([`target.staging-${process.pid}-11111111`]);
    const nothing = await runCli(['recover', join(root, 'elsewhere')]);
    expect(nothing).toMatchObject({ exitCode: 0 });
    expect(nothing.stdout).toContain('nothing to recover');
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
    // The journal is there for the whole run (it is the target's lock); it names the staging tree for the swap.
    const swapping = () => {
      try {
        return readFileSync(`${target}.restore-journal`, 'utf8').includes('"staging"');
      } catch {
        return false;
      }
    };
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
      { name: 'journal written', when: () => waitFor(swapping, 30_000, 'journal') },
      {
        name: 'journal written, --no-keep',
        when: () => waitFor(swapping, 30_000, 'journal'),
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
