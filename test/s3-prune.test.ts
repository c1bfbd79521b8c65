// `statesnap prune s3://…` against the real server, through the built CLI: after a prune every remaining
// snapshot's objects exist and every file's bytes hash to its index line; packs only forgotten snapshots used
// are deleted, and so are unfinished snapshot directories; every remaining snapshot restores to the store as
// it was; a killed sweep is finished by the next prune; a
// snapshot committed while a sweep is stopped keeps every object; a manifest that cannot be read stops the
// collection before anything is deleted.

import { createHash } from 'node:crypto';
import { appendFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, type TestContext } from 'vitest';
import { manifestKey, parseS3Manifest, readS3Index } from '../dist/src/format/s3-index.js';
import { compareSnapshotIds, parseSnapshotId } from '../dist/src/format/snapshot-id.js';
import { S3Storage } from '../dist/src/s3/client.js';
import { parseS3Location } from '../dist/src/s3/location.js';
import { requireDependency } from './helpers/dependencies.js';
import { startPausedCli } from './helpers/pause.js';
import { useTestBucket } from './helpers/s3.js';
import {
  type CliRun,
  cleanup,
  createTree,
  dir,
  file,
  fingerprintTree,
  runCli,
  type TreePrint,
  tempDir,
} from './helpers/tree.js';

const testBucket = useTestBucket();
const { name: bucket, unavailable } = testBucket;
let repositories = 0;

afterEach(cleanup);

interface Repo {
  url: string;
  storage: S3Storage;
  store: string;
  /** What the store looked like when each snapshot was taken, by id. */
  prints: Map<string, TreePrint>;
}

/** A test on a fresh repository prefix with a small store to snapshot into it. */
function s3it(name: string, run: (repo: Repo) => Promise<void>, timeout = 60_000): void {
  it(
    name,
    async (ctx: TestContext) => {
      requireDependency(ctx, unavailable);
      const url = `s3://${bucket}/prune-${++repositories}`;
      const store = join(tempDir('statesnap-s3-prune-'), 'store');
      await createTree(store, {
        facts: dir(
          Object.fromEntries(
            Array.from({ length: 40 }, (_, i) => [`fact-${i}.json`, file(`{"fact": ${i}}\n`)]),
          ),
        ),
        'notes.md': file('# notes\n'),
      });
      const storage = await S3Storage.open(parseS3Location(url));
      try {
        await run({ url, storage, store, prints: new Map() });
      } finally {
        storage.close();
      }
    },
    timeout,
  );
}

function expectOk(run: CliRun): void {
  expect(run.stderr).toBe('');
  expect(run.exitCode).toBe(0);
}

async function snapshot(repo: Repo): Promise<string> {
  const print = fingerprintTree(repo.store);
  const run = await runCli(['snapshot', '--json', repo.store, repo.url]);
  expectOk(run);
  const { id } = JSON.parse(run.stdout) as { id: string };
  repo.prints.set(id, print);
  return id;
}

/** Restores each snapshot into a fresh directory and compares it with the store as it was snapshotted. */
async function expectRestores(repo: Repo, ids: readonly string[]): Promise<void> {
  for (const id of ids) {
    const target = join(tempDir('statesnap-s3-prune-restore-'), 'target');
    expectOk(await runCli(['restore', `${repo.url}/${id}`, target]));
    expect(fingerprintTree(target), id).toEqual(repo.prints.get(id));
  }
}

/** Changes one file and adds one, so the next snapshot uploads a pack of its own and reuses the rest. */
function change(repo: Repo, step: number): void {
  appendFileSync(join(repo.store, 'notes.md'), `step ${step}\n`);
  writeFileSync(join(repo.store, 'facts', `new-${step}.json`), `{"new": ${step}}\n`);
}

/** Rewrites every file, so no pack of an earlier snapshot is used by the next one. */
function rewriteAll(repo: Repo, step: number): void {
  for (const name of readdirSync(join(repo.store, 'facts'))) {
    writeFileSync(join(repo.store, 'facts', name), `{"rewritten": ${step}, "name": "${name}"}\n`);
  }
  writeFileSync(join(repo.store, 'notes.md'), `# notes, step ${step}\n`);
}

async function keys(storage: S3Storage, under: string): Promise<string[]> {
  const found: string[] = [];
  for await (const object of storage.listObjects(under)) found.push(object.key);
  return found;
}

async function snapshotIds(storage: S3Storage): Promise<string[]> {
  const manifests = (await keys(storage, 'snapshots/')).filter((key) => key.endsWith('/manifest.json'));
  // In time order: the server lists `<second>Z-01/` before `<second>Z/` ('-' sorts before '/').
  return manifests
    .map((key) => parseSnapshotId(key.split('/')[1]!)!)
    .sort(compareSnapshotIds)
    .map(({ id }) => id);
}

/**
 * Proves snapshot `id` whole from the server: its manifest and index validate, every object of its table
 * exists with the recorded size, and every file's bytes, read where its index line says, hash to its line.
 * Returns the data objects it references.
 */
async function expectIntact(storage: S3Storage, id: string): Promise<string[]> {
  const where = storage.describe(manifestKey(id));
  const manifest = parseS3Manifest(await storage.getObject(manifestKey(id)), where, id);
  const { s3 } = manifest.statesnap;
  for (const record of s3.objects) {
    expect((await storage.headObject(record.key))?.size, record.key).toBe(record.size);
  }
  const index = await storage.getObject(s3.index.key);
  let files = 0;
  for await (const entry of readS3Index([index], s3, storage.describe(s3.index.key), {
    refuseCaseCollisions: false,
  })) {
    if (entry.type !== 'file') continue;
    const bytes = await storage.getRange(entry.object, entry.offset, entry.size);
    expect(createHash('sha256').update(bytes).digest('hex'), `${id}: ${entry.path}`).toBe(entry.sha256);
    files++;
  }
  expect(files).toBeGreaterThan(0);
  return s3.objects.map((record) => record.key);
}

interface PruneJson {
  repack: { repacked: string[]; written: string[]; rewritten: string[] } | null;
  kept: string[];
  removed: string[];
  garbage: { objects: number; bytes: number; unfinished: string[]; finishedPlans: string[] };
}

async function prune(repo: Repo, ...args: string[]): Promise<PruneJson> {
  const run = await runCli(['prune', '--json', ...args, repo.url]);
  expectOk(run);
  return JSON.parse(run.stdout) as PruneJson;
}

describe('prune s3://', () => {
  s3it(
    'keeps every object a remaining snapshot needs and deletes the packs only forgotten ones used',
    async (repo) => {
      const ids: string[] = [];
      ids.push(await snapshot(repo));
      rewriteAll(repo, 1);
      ids.push(await snapshot(repo));
      change(repo, 2);
      ids.push(await snapshot(repo));
      const packsBefore = await keys(repo.storage, 'data/');

      const dry = await prune(repo, '--dry-run', '--keep-last', '2');
      expect(dry.removed).toEqual([ids[0]]);
      expect(await snapshotIds(repo.storage)).toEqual(ids);
      expect(await keys(repo.storage, 'data/')).toEqual(packsBefore);

      const done = await prune(repo, '--keep-last', '2');
      expect(done.kept).toEqual([ids[2], ids[1]]);
      expect(done.removed).toEqual([ids[0]]);
      expect(done.garbage).toEqual(dry.garbage);
      expect(await snapshotIds(repo.storage)).toEqual([ids[1], ids[2]]);
      const live = new Set([
        ...(await expectIntact(repo.storage, ids[1]!)),
        ...(await expectIntact(repo.storage, ids[2]!)),
      ]);
      const packsAfter = await keys(repo.storage, 'data/');
      expect(new Set(packsAfter)).toEqual(live);
      // The first snapshot's pack held only contents every later snapshot rewrote: it is gone, the rest stay.
      expect(packsAfter.length).toBe(packsBefore.length - 1);
      expect(packsBefore).toEqual(expect.arrayContaining(packsAfter));
      expect(await keys(repo.storage, `snapshots/${ids[0]}/`)).toEqual([]);
      expect(await keys(repo.storage, 'gc/')).toEqual([]);
      await expectRestores(repo, [ids[1]!, ids[2]!]);
    },
  );

  s3it(
    'deletes the objects of an unfinished snapshot directory and of packs no manifest lists',
    async (repo) => {
      const id = await snapshot(repo);
      const orphanPack = `data/${'0'.repeat(32)}.tar`;
      const unfinished = 'snapshots/2026-11-30T01-00-00Z/index-0123.jsonl.gz';
      await repo.storage.putObject(orphanPack, Buffer.from('orphan'));
      await repo.storage.putObject(unfinished, Buffer.from('unfinished'));
      const done = await prune(repo, '--keep-last', '1');
      expect(done.garbage.unfinished).toEqual(['2026-11-30T01-00-00Z']);
      expect(await keys(repo.storage, 'snapshots/2026-11-30T01-00-00Z/')).toEqual([]);
      expect(await keys(repo.storage, 'data/')).not.toContain(orphanPack);
      await expectIntact(repo.storage, id);
    },
  );

  for (const [point, when] of [
    ['gc-planned', 'holding the lock, its plan written'],
    ['sweeping', 'after releasing the lock, before its first delete'],
  ] as const) {
    s3it(`a prune killed ${when} loses no snapshot; the next prune finishes its plan`, async (repo) => {
      const first = await snapshot(repo);
      rewriteAll(repo, 1);
      const second = await snapshot(repo);
      const secondUses = await expectIntact(repo.storage, second);
      const firstOnly = (await expectIntact(repo.storage, first)).filter((key) => !secondUses.includes(key));
      expect(firstOnly).not.toEqual([]);
      const paused = startPausedCli(['prune', '--keep-last', '1', repo.url], [point]);
      await paused.reached(point);
      const killed = await paused.kill();
      expect(killed.signal).toBe('SIGKILL');
      // The forgotten snapshot's manifest and index are gone, the packs only it used are planned, not deleted;
      // a lock left by a killed run of this host does not block the next one.
      expect(await snapshotIds(repo.storage)).toEqual([second]);
      const plans = await keys(repo.storage, 'gc/');
      expect(plans).toHaveLength(1);
      for (const key of firstOnly) expect(await keys(repo.storage, key)).toEqual([key]);

      const next = await prune(repo, '--keep-last', '1');
      expect(next.garbage.finishedPlans).toEqual(plans);
      expect(await keys(repo.storage, 'gc/')).toEqual([]);
      expect(await keys(repo.storage, `snapshots/${first}/`)).toEqual([]);
      expect(new Set(await keys(repo.storage, 'data/'))).toEqual(
        new Set(await expectIntact(repo.storage, second)),
      );
      await expectRestores(repo, [second]);
    });
  }

  s3it('a snapshot committed while the sweep is stopped keeps every object it references', async (repo) => {
    const first = await snapshot(repo);
    rewriteAll(repo, 1);
    const second = await snapshot(repo);
    const paused = startPausedCli(['prune', '--keep-last', '1', repo.url], ['sweeping']);
    await paused.reached('sweeping');
    // The lock is free: a snapshot runs whole, reusing the second's packs and uploading one of its own.
    change(repo, 2);
    const third = await snapshot(repo);
    paused.resume();
    const pruned = await paused.done;
    expectOk(pruned);
    expect(await snapshotIds(repo.storage)).toEqual([second, third]);
    const live = new Set([
      ...(await expectIntact(repo.storage, second)),
      ...(await expectIntact(repo.storage, third)),
    ]);
    expect(new Set(await keys(repo.storage, 'data/'))).toEqual(live);
    expect(await keys(repo.storage, `snapshots/${first}/`)).toEqual([]);
    await expectRestores(repo, [second, third]);
  });

  s3it(
    '--max-unused repacks a mostly unused pack; the snapshot using it is rewritten and restores',
    async (repo) => {
      const first = await snapshot(repo);
      for (let i = 5; i < 40; i++) rmSync(join(repo.store, 'facts', `fact-${i}.json`));
      // Uses 6 of the first pack's 41 members, uploads nothing.
      const second = await snapshot(repo);
      const packs = await keys(repo.storage, 'data/');
      expect(packs).toHaveLength(1);

      const plain = await prune(repo, '--keep-last', '1');
      expect(plain.removed).toEqual([first]);
      expect(plain.repack).toBeNull();
      expect(await keys(repo.storage, 'data/')).toEqual(packs);

      const repacked = await prune(repo, '--keep-last', '1', '--max-unused', '10');
      expect(repacked.repack?.repacked).toEqual(packs);
      expect(repacked.repack?.rewritten).toEqual([second]);
      expect(repacked.repack?.written).toHaveLength(1);
      expect(await keys(repo.storage, 'data/')).toEqual(repacked.repack?.written);
      expect(await expectIntact(repo.storage, second)).toEqual(repacked.repack?.written);
      expect(
        (await keys(repo.storage, `snapshots/${second}/`)).filter((key) => key.includes('/index-')),
      ).toHaveLength(1);
      await expectRestores(repo, [second]);
      // The new pack holds live files only: nothing more to repack.
      const again = await prune(repo, '--keep-last', '1', '--max-unused', '0');
      expect(again.repack?.repacked).toEqual([]);
    },
  );

  s3it(
    'repack refuses a pack whose live file does not match its index, and replaces no manifest',
    async (repo) => {
      await snapshot(repo);
      for (let i = 5; i < 40; i++) rmSync(join(repo.store, 'facts', `fact-${i}.json`));
      const second = await snapshot(repo);
      const [pack] = await keys(repo.storage, 'data/');
      const bytes = Buffer.from(await repo.storage.getObject(pack!));
      // The first member's content: `{"fact": 0}` in facts/fact-0.json, a file the second snapshot uses.
      const at = bytes.indexOf('{"fact": 0}');
      expect(at).toBeGreaterThan(0);
      bytes[at + 9] = '9'.charCodeAt(0);
      await repo.storage.putObject(pack!, bytes);
      const manifest = await repo.storage.getObject(`snapshots/${second}/manifest.json`);
      const run = await runCli(['prune', '--json', '--keep-last', '1', '--max-unused', '10', repo.url]);
      expect(run.exitCode).toBe(1);
      expect((JSON.parse(run.stdout) as { error: { code: string } }).error.code).toBe('ERR_BACKUP_CORRUPT');
      expect(await repo.storage.getObject(`snapshots/${second}/manifest.json`)).toEqual(manifest);
      expect(await keys(repo.storage, 'data/')).toEqual([pack]);
    },
  );

  s3it('a manifest that cannot be read stops the collection before anything is deleted', async (repo) => {
    const first = await snapshot(repo);
    change(repo, 1);
    await snapshot(repo);
    await repo.storage.putObject(manifestKey(first), Buffer.from('{"version": 1,'));
    const everything = await keys(repo.storage, '');
    const run = await runCli(['prune', '--json', '--keep-last', '1', repo.url]);
    expect(run.exitCode).toBe(1);
    expect((JSON.parse(run.stdout) as { error: { code: string } }).error.code).toBe('ERR_REPO_INVALID');
    expect(await keys(repo.storage, '')).toEqual(everything.filter((key) => !key.startsWith('locks/')));
  });

  it('refuses --endpoint with a local repository, and a malformed s3:// location, as usage errors', async () => {
    const local = await runCli(['prune', '--keep-last', '1', '--endpoint', 'http://127.0.0.1:1', tempDir()]);
    expect(local.exitCode).toBe(2);
    expect(local.stderr.trim().split('\n')).toHaveLength(1);
    const repackLocal = await runCli([
      'prune',
      '--json',
      '--keep-last',
      '1',
      '--max-unused',
      '10',
      tempDir(),
    ]);
    expect(repackLocal.exitCode).toBe(2);
    expect((JSON.parse(repackLocal.stdout) as { error: { code: string } }).error.code).toBe(
      'ERR_INVALID_OPTION',
    );
    const malformed = await runCli(['prune', '--json', '--keep-last', '1', 's3://bucket//x']);
    expect(malformed.exitCode).toBe(2);
    expect((JSON.parse(malformed.stdout) as { error: { code: string } }).error.code).toBe(
      'ERR_S3_LOCATION_INVALID',
    );
  });
});
