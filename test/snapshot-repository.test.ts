// The snapshot repository through the real CLI and the library: layout and `latest`, the refusal of a
// directory that is not a repository, the lock (two snapshots, a prune racing a snapshot), kill -9 during
// snapshot and prune at named pause points, retention with chosen timestamps, and foreign entries.

import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { thisProcess } from '../dist/src/core/owner.js';
import { generateStore } from '../dist/src/demo/generator.js';
import { list, prune, snapshot } from '../dist/src/index.js';
import { startPausedCli } from './helpers/pause.js';
import { cleanup, createTree, dir, file, fingerprintTree, runCli, tempDir } from './helpers/tree.js';

afterEach(cleanup);

const ID = /^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z(-\d{2})?$/;

/** A small store: a few folders of JSON and Markdown files. */
async function makeStore(): Promise<string> {
  const root = tempDir('statesnap-repo-');
  const store = join(root, 'store');
  const facts: Record<string, ReturnType<typeof file>> = {};
  for (let n = 0; n < 40; n++) facts[`fact-${n}.json`] = file(JSON.stringify({ n, text: 'x'.repeat(n * 7) }));
  await createTree(store, {
    seeds: dir({ 'a.md': file('# a\n'), 'b.md': file('# b\n') }),
    memory: dir({ facts: dir(facts) }),
  });
  return store;
}

function newRepo(): string {
  return join(tempDir('statesnap-repo-'), 'snaps');
}

async function cli(args: string[]) {
  const run = await runCli(args);
  const document = args.includes('--json') ? JSON.parse(run.stdout) : null;
  return { ...run, document };
}

/** The names of the repository's complete snapshots, from `list --json`. */
async function listedIds(repo: string): Promise<string[]> {
  const run = await cli(['list', '--json', repo]);
  expect(run.exitCode, run.stderr).toBe(0);
  return run.document.snapshots.map((row: { id: string }) => row.id);
}

describe('snapshot repository (CLI)', () => {
  it('makes the repository, names snapshots by time, keeps latest on the newest, and lists them as JSON', async () => {
    const store = await makeStore();
    const repo = newRepo();
    const first = await cli(['snapshot', '--json', store, repo]);
    expect(first.exitCode, first.stderr).toBe(0);
    const second = await cli(['snapshot', '--json', store, repo]);
    expect(second.exitCode, second.stderr).toBe(0);
    expect(first.document.id).toMatch(ID);
    expect(second.document.id > first.document.id).toBe(true);
    expect(
      JSON.parse(readFileSync(join(repo, second.document.id, 'manifest.json'), 'utf8')).statesnap.snapshot,
    ).toEqual({ id: second.document.id });
    expect(readlinkSync(join(repo, 'latest'))).toBe(second.document.id);
    expect(statSync(join(repo, second.document.id, 'seeds/a.md')).ino).toBe(
      statSync(join(repo, first.document.id, 'seeds/a.md')).ino,
    );
    expect(readdirSync(repo).filter((name) => name.startsWith('.partial-'))).toEqual([]);

    const listed = await cli(['list', '--json', repo]);
    expect(listed.exitCode).toBe(0);
    expect(listed.document.snapshots.map((row: { id: string }) => row.id)).toEqual([
      first.document.id,
      second.document.id,
    ]);
    expect(listed.document.snapshots[0]).toMatchObject({
      files: 42,
      state: 'complete',
      copied: 42,
      linked: 0,
    });
    // The second links every file from the first: the store did not change.
    const row = listed.document.snapshots[1];
    expect(row).toMatchObject({ files: 42, state: 'complete', copied: 0, linked: 42, bytesNew: 0 });
    expect(second.document.linkSource).toMatchObject({ id: first.document.id });
    const full = await cli(['snapshot', '--json', '--full', store, repo]);
    expect(full.document.linkSource).toBeNull();
    expect(full.document.counts).toMatchObject({ linked: 0, copied: 42 });
    expect(row.localTime).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [+-]\d{2}:\d{2}$/);
    expect(listed.document.foreign).toEqual([]);

    // `<repo>/latest` is resolved from the listing, not by following the link: a stale link changes nothing.
    rmSync(join(repo, 'latest'));
    symlinkSync(first.document.id, join(repo, 'latest'));
    const verified = await cli(['verify', '--json', join(repo, 'latest')]);
    expect(verified.exitCode, verified.stderr).toBe(0);
    expect(verified.document.backup).toBe(join(repo, full.document.id));
  }, 60_000);

  it('refuses a non-empty directory that is not a repository, and writes nothing into it', async () => {
    const store = await makeStore();
    const home = tempDir('statesnap-repo-');
    writeFileSync(join(home, 'notes.txt'), 'mine');
    const before = fingerprintTree(home);
    const run = await cli(['snapshot', '--json', store, home]);
    expect(run.exitCode).toBe(1);
    expect(run.document.error.code).toBe('ERR_REPO_INVALID');
    expect(fingerprintTree(home)).toEqual(before);
    for (const command of [['list'], ['prune', '--keep-last', '1']]) {
      const refused = await cli([...command, '--json', home]);
      expect(refused.document.error.code).toBe('ERR_REPO_INVALID');
    }
    expect(fingerprintTree(home)).toEqual(before);
  }, 60_000);

  it('lets one of two racing snapshots run; the other fails with ERR_REPO_BUSY, or waits with --wait', async () => {
    const store = await makeStore();
    const repo = newRepo();
    const holder = startPausedCli(['snapshot', '--json', store, repo], ['lock-acquired']);
    await holder.reached('lock-acquired');

    const refused = await cli(['snapshot', '--json', store, repo]);
    expect(refused.exitCode).toBe(1);
    expect(refused.document.error.code).toBe('ERR_REPO_BUSY');
    expect(refused.stderr).toContain('snapshot by pid');

    const waiting = runCli(['snapshot', '--json', '--wait', '60s', store, repo]);
    await new Promise((wake) => setTimeout(wake, 500));
    holder.resume();
    const [held, waited] = await Promise.all([holder.done, waiting]);
    expect(held.exitCode, held.stderr).toBe(0);
    expect(waited.exitCode, waited.stderr).toBe(0);
    const ids = [JSON.parse(held.stdout).id, JSON.parse(waited.stdout).id];
    expect(new Set(ids).size).toBe(2);
    expect(await listedIds(repo)).toEqual([...ids].sort());
    expect(readdirSync(join(repo, '.locks'))).toEqual([]);
  }, 60_000);

  it('removes a lock whose process is gone, and treats one it cannot judge as live, naming its file', async () => {
    const store = await makeStore();
    const repo = newRepo();
    expect((await cli(['snapshot', store, repo])).exitCode).toBe(0);
    const locks = join(repo, '.locks');
    const me = thisProcess();
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const lockOf = (owner: object) =>
      JSON.stringify({
        statesnap_lock: 1,
        operation: 'snapshot',
        owner,
        created_at: new Date().toISOString(),
      });
    writeFileSync(join(locks, `${me.host}-${dead}-00000000.lock`), lockOf({ ...me, pid: dead, start: '1' }));
    const afterDead = await cli(['snapshot', '--json', store, repo]);
    expect(afterDead.exitCode, afterDead.stderr).toBe(0);
    expect(readdirSync(locks)).toEqual([]);

    const elsewhere = join(locks, 'deadbeef-4242-00000000.lock');
    writeFileSync(
      elsewhere,
      lockOf({ pid: 4242, start: '99', boot: '00000000', host: 'deadbeef', pidNs: '1' }),
    );
    const refused = await cli(['prune', '--json', '--keep-last', '1', repo]);
    expect(refused.document.error.code).toBe('ERR_REPO_BUSY');
    expect(refused.document.error.message).toContain(elsewhere);
    expect(existsSync(elsewhere)).toBe(true);
    expect(await listedIds(repo)).toHaveLength(2);
  }, 60_000);

  it('refuses a prune while a snapshot runs, and the snapshot it would race completes', async () => {
    const store = await makeStore();
    const repo = newRepo();
    expect((await cli(['snapshot', store, repo])).exitCode).toBe(0);
    const running = startPausedCli(['snapshot', '--json', store, repo], ['copying']);
    await running.reached('copying');
    const refused = await cli(['prune', '--json', '--keep-last', '1', repo]);
    expect(refused.exitCode).toBe(1);
    expect(refused.document.error.code).toBe('ERR_REPO_BUSY');
    const listed = await cli(['list', '--json', repo]);
    expect(listed.document.unfinished).toMatchObject([{ state: 'in-progress' }]);
    expect(listed.document.unfinished[0].holder).toContain(`pid ${running.child.pid}`);
    running.resume();
    expect((await running.done).exitCode).toBe(0);
    expect(await listedIds(repo)).toHaveLength(2);
  }, 60_000);

  it('a snapshot killed with -9 leaves nothing that lists as complete; the next run removes the leftovers', async () => {
    const store = await makeStore();
    const repo = newRepo();
    expect((await cli(['snapshot', store, repo])).exitCode).toBe(0);
    const before = await listedIds(repo);
    for (const point of ['partial-created', 'copying', 'manifest-written', 'before-publish']) {
      const killed = startPausedCli(['snapshot', store, repo], [point]);
      await killed.reached(point);
      await killed.kill();
      expect(await listedIds(repo), point).toEqual(before);
      const listed = await cli(['list', '--json', repo]);
      expect(listed.document.unfinished, point).toMatchObject([{ state: 'abandoned' }]);
      expect(readlinkSync(join(repo, 'latest'))).toBe(before.at(-1));
      const next = await cli(['snapshot', '--json', store, repo]);
      expect(next.exitCode, next.stderr).toBe(0);
      expect(next.document.removedLeftovers, point).toEqual([listed.document.unfinished[0].name]);
      before.push(next.document.id);
      expect(await listedIds(repo)).toEqual(before);
      expect(readdirSync(join(repo, '.locks'))).toEqual([]);
    }
    const verified = await cli(['verify', join(repo, 'latest')]);
    expect(verified.exitCode, verified.stdout).toBe(0);
  }, 120_000);

  it('a prune killed with -9 after renaming leaves the kept snapshots intact; the next lock holder finishes it', async () => {
    const store = await makeStore();
    const repo = newRepo();
    for (let n = 0; n < 3; n++) expect((await cli(['snapshot', store, repo])).exitCode).toBe(0);
    const ids = await listedIds(repo);
    const killed = startPausedCli(['prune', '--keep-last', '1', repo], ['prune-renamed']);
    await killed.reached('prune-renamed');
    await killed.kill();
    expect(await listedIds(repo)).toEqual([ids[2]]);
    expect(
      readdirSync(repo)
        .filter((name) => name.startsWith('.deleting-'))
        .sort(),
    ).toEqual([ids[0], ids[1]].map((id) => `.deleting-${id}`));
    expect((await cli(['verify', join(repo, ids[2]!)])).exitCode).toBe(0);
    const next = await cli(['prune', '--json', '--keep-last', '1', repo]);
    expect(next.exitCode, next.stderr).toBe(0);
    expect(next.document.removedLeftovers.sort()).toEqual([ids[0], ids[1]].map((id) => `.deleting-${id}`));
    expect(readdirSync(repo).sort()).toEqual(['.locks', '.statesnap-repository', ids[2], 'latest']);
  }, 90_000);

  it('refuses a prune without a rule (exit 2) and a bad count, changing nothing', async () => {
    const store = await makeStore();
    const repo = newRepo();
    expect((await cli(['snapshot', store, repo])).exitCode).toBe(0);
    for (const args of [[], ['--keep-daily=-1'], ['--keep-within', '3w'], ['--keep-last', '0']]) {
      const run = await cli(['prune', '--json', ...args, repo]);
      expect(run.exitCode, args.join(' ')).toBe(2);
      expect(run.document.error.code).toBe('ERR_INVALID_OPTION');
    }
    expect(await listedIds(repo)).toHaveLength(1);
  }, 60_000);
});

describe('snapshot repository (library, chosen times)', () => {
  const at = (iso: string) => new Date(iso);

  it('prunes by restic rules on UTC buckets, never removes the newest, and says which rule kept each', async () => {
    const store = await makeStore();
    const repo = newRepo();
    const times = [
      '2026-11-01T10:00:00Z',
      '2026-11-20T10:00:00Z',
      '2026-11-28T09:00:00Z',
      '2026-11-29T08:00:00Z',
      '2026-11-29T20:00:00Z',
      '2026-11-30T02:00:00Z',
    ];
    for (const time of times) await snapshot({ source: store, repository: repo, now: at(time), sync: false });
    const ids = (await list({ repository: repo })).snapshots.map((row) => row.id);
    expect(ids).toEqual(times.map((time) => time.replace(/:/g, '-')));

    const now = at('2026-11-30T03:00:00Z');
    const policy = { daily: 2, monthly: 2 };
    const plan = await prune({ repository: repo, policy, dryRun: true, now });
    expect(plan.kept).toEqual([ids[5], ids[4], ids[0]]);
    expect(plan.snapshots[0]!.reasons.map((reason) => `${reason.rule} ${reason.bucket}`)).toEqual([
      'daily 2026-11-30',
      'monthly 2026-11',
    ]);
    expect(plan.snapshots.at(-1)!.reasons).toEqual([{ rule: 'monthly', bucket: '2026-11', oldest: true }]);
    expect((await list({ repository: repo })).snapshots).toHaveLength(6);

    const done = await prune({ repository: repo, policy, now });
    expect(done.removed).toEqual([ids[3], ids[2], ids[1]]);
    expect((await list({ repository: repo })).snapshots.map((row) => row.id)).toEqual([
      ids[0],
      ids[4],
      ids[5],
    ]);

    // keep-within is relative to the newest snapshot; the newest stays whatever the window.
    const within = await prune({
      repository: repo,
      policy: { within: { years: 0, months: 0, days: 0, hours: 1 } },
      now,
    });
    expect(within.kept).toEqual([ids[5]]);
    expect(readlinkSync(join(repo, 'latest'))).toBe(ids[5]);
  }, 90_000);

  it('prune removes snapshots whose folders are read-only, as an unprivileged user too', async () => {
    const store = await makeStore();
    chmodSync(join(store, 'seeds'), 0o555);
    const repo = newRepo();
    await snapshot({ source: store, repository: repo, now: at('2026-11-29T00:00:00Z'), sync: false });
    await snapshot({ source: store, repository: repo, now: at('2026-11-30T00:00:00Z'), sync: false });
    expect(statSync(join(repo, '2026-11-29T00-00-00Z', 'seeds')).mode & 0o777).toBe(0o555);
    const pruned = await prune({ repository: repo, policy: { last: 1 }, now: at('2026-12-01T00:00:00Z') });
    expect(pruned.removed).toEqual(['2026-11-29T00-00-00Z']);
    expect(readdirSync(repo).sort()).toEqual([
      '.locks',
      '.statesnap-repository',
      '2026-11-30T00-00-00Z',
      'latest',
    ]);
  }, 60_000);

  it("feeds the previous snapshot's totals to progress until the walk has found everything", async () => {
    // Enough files, on one thread, that progress is reported while the walk is still finding them.
    const store = await generateStore(join(tempDir('statesnap-repo-'), 'store'), {
      profile: 'tiny-files',
      scale: 0.003,
    });
    const repo = newRepo();
    const first = await snapshot({ source: store.root, repository: repo, sync: false });
    const early: Array<{ estimate: string | null; filesTotal: number }> = [];
    await snapshot({
      source: store.root,
      repository: repo,
      sync: false,
      threads: 1,
      onProgress: (progress) => {
        if (!progress.totalKnown)
          early.push({ estimate: progress.estimate, filesTotal: progress.filesTotal });
      },
    });
    expect(early.length).toBeGreaterThan(0);
    for (const report of early) expect(report).toEqual({ estimate: 'given', filesTotal: first.files });
  }, 60_000);

  it('gives two snapshots in one second sortable suffixes', async () => {
    const store = await makeStore();
    const repo = newRepo();
    const now = at('2026-11-30T02:47:11.500Z');
    const made = [];
    for (let n = 0; n < 3; n++)
      made.push((await snapshot({ source: store, repository: repo, now, sync: false })).id);
    expect(made).toEqual(['2026-11-30T02-47-11Z', '2026-11-30T02-47-11Z-01', '2026-11-30T02-47-11Z-02']);
  }, 60_000);

  it('never lists, uses or removes foreign entries', async () => {
    const store = await makeStore();
    const repo = newRepo();
    await snapshot({ source: store, repository: repo, now: at('2026-11-29T00:00:00Z'), sync: false });
    await snapshot({ source: store, repository: repo, now: at('2026-11-30T00:00:00Z'), sync: false });
    mkdirSync(join(repo, 'copied-in'));
    mkdirSync(join(repo, '2020-01-01T00-00-00Z'));
    writeFileSync(join(repo, '2020-01-01T00-00-00Z', 'manifest.json'), '{"version":1}');
    symlinkSync(join(repo, '2026-11-29T00-00-00Z'), join(repo, '2019-01-01T00-00-00Z'));
    writeFileSync(join(repo, '2018-01-01T00-00-00Z'), 'a file');
    const listed = await list({ repository: repo });
    expect(listed.snapshots.map((row) => row.id)).toEqual(['2026-11-29T00-00-00Z', '2026-11-30T00-00-00Z']);
    expect(listed.foreign.map((entry) => entry.name).sort()).toEqual([
      '2018-01-01T00-00-00Z',
      '2019-01-01T00-00-00Z',
      '2020-01-01T00-00-00Z',
      'copied-in',
    ]);
    const pruned = await prune({ repository: repo, policy: { last: 1 }, now: at('2026-12-01T00:00:00Z') });
    expect(pruned.removed).toEqual(['2026-11-29T00-00-00Z']);
    for (const name of [
      'copied-in',
      '2020-01-01T00-00-00Z',
      '2019-01-01T00-00-00Z',
      '2018-01-01T00-00-00Z',
    ]) {
      expect(existsSync(join(repo, name)) || readlinkSync(join(repo, name)) !== '', name).toBe(true);
    }
    expect(readFileSync(join(repo, '2020-01-01T00-00-00Z', 'manifest.json'), 'utf8')).toBe('{"version":1}');
  }, 60_000);
});
