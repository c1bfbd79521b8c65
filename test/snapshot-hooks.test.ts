// The quiescing hooks of a snapshot: both run with the snapshot's environment, a failing before-hook stops
// the snapshot before anything is written, the after-hook runs after a failure and an interruption too, its
// own failure is a warning after a success, and a hook that outlives its timeout is stopped.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { list, snapshot } from '../dist/src/index.js';
import { cleanup, createTree, dir, file, runCli, tempDir } from './helpers/tree.js';

afterEach(cleanup);

async function setup(): Promise<{ root: string; store: string; repo: string }> {
  const root = tempDir('statesnap-hooks-');
  const store = join(root, 'store');
  await createTree(store, { seeds: dir({ 'a.md': file('# a\n'), 'b.md': file('# b\n') }) });
  return { root, store, repo: join(root, 'snaps') };
}

const read = (path: string) => readFileSync(path, 'utf8').trim();

describe('snapshot hooks', () => {
  it('run before and after the snapshot, with its source, repository, id and status', async () => {
    const { root, store, repo } = await setup();
    const result = await snapshot({
      source: store,
      repository: repo,
      sync: false,
      execBefore: `echo "$STATESNAP_SOURCE $STATESNAP_REPOSITORY $STATESNAP_SNAPSHOT_ID" > ${root}/before; ls ${repo} > ${root}/seen`,
      execAfter: `echo "$STATESNAP_STATUS $STATESNAP_SNAPSHOT_ID" > ${root}/after; ls ${repo} >> ${root}/seen`,
    });
    expect(read(join(root, 'before'))).toBe(`${store} ${repo} ${result.id}`);
    expect(read(join(root, 'after'))).toBe(`success ${result.id}`);
    // Before: no snapshot yet; after: the snapshot is published.
    expect(read(join(root, 'seen')).split('\n')).toEqual([result.id, 'latest']);
    expect(result.hooks.map((hook) => hook.ok)).toEqual([true, true]);
    expect(result.exitCode).toBe(0);
  }, 30_000);

  it('a failing before-hook stops the snapshot before anything is written; the after-hook still runs', async () => {
    const { root, store, repo } = await setup();
    const run = await runCli([
      'snapshot',
      '--json',
      '--exec-before',
      'exit 7',
      '--exec-after',
      `echo "$STATESNAP_STATUS" > ${root}/after`,
      store,
      repo,
    ]);
    expect(run.exitCode).toBe(1);
    expect(JSON.parse(run.stdout).error.code).toBe('ERR_HOOK_FAILED');
    expect(run.stderr).toContain('exit 7');
    expect(read(join(root, 'after'))).toBe('failure');
    expect((await list({ repository: repo })).snapshots).toEqual([]);
    expect(readdirSync(repo).filter((name) => name.startsWith('.partial-'))).toEqual([]);
  }, 30_000);

  it('runs the after-hook, told of the failure, when the snapshot itself fails after the before-hook', async () => {
    const { root, store, repo } = await setup();
    // The before-hook takes the source away: the walk fails after the hook succeeded.
    const run = await runCli([
      'snapshot',
      '--json',
      '--exec-before',
      `mv ${store} ${root}/moved`,
      '--exec-after',
      `echo "$STATESNAP_STATUS $STATESNAP_SNAPSHOT_ID" > ${root}/after`,
      store,
      repo,
    ]);
    expect(run.exitCode, run.stdout).toBe(1);
    expect(JSON.parse(run.stdout).error.code).not.toBe('ERR_HOOK_FAILED');
    expect(read(join(root, 'after'))).toMatch(/^failure \d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z$/);
    expect((await list({ repository: repo })).snapshots).toEqual([]);
    expect(readdirSync(repo).filter((name) => name.startsWith('.partial-'))).toEqual([]);
  }, 30_000);

  it('runs the after-hook when the snapshot is interrupted', async () => {
    const { root, store, repo } = await setup();
    const controller = new AbortController();
    const running = snapshot({
      source: store,
      repository: repo,
      signal: controller.signal,
      execBefore: 'sleep 0.5',
      execAfter: `echo "$STATESNAP_STATUS" > ${root}/after`,
    });
    setTimeout(() => controller.abort(), 100);
    await expect(running).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    expect(read(join(root, 'after'))).toBe('interrupted');
    expect((await list({ repository: repo })).snapshots).toEqual([]);
  }, 30_000);

  it('a failing after-hook after a successful snapshot is a warning (exit 3); a hook past its timeout is stopped', async () => {
    const { store, repo } = await setup();
    const warned = await runCli(['snapshot', '--json', '--exec-after', 'exit 4', store, repo]);
    expect(warned.exitCode).toBe(3);
    expect(JSON.parse(warned.stdout).hooks).toEqual([{ command: 'exit 4', ok: false, status: 'exit 4' }]);
    const started = Date.now();
    const timedOut = await runCli([
      'snapshot',
      '--json',
      '--exec-before',
      'sleep 30',
      '--exec-timeout',
      '300ms',
      store,
      repo,
    ]);
    expect(timedOut.exitCode).toBe(1);
    expect(JSON.parse(timedOut.stdout).error.message).toContain('killed by SIGTERM after');
    expect(Date.now() - started).toBeLessThan(20_000);
    expect((await list({ repository: repo })).snapshots).toHaveLength(1);
  }, 60_000);
});
