// Garbage collection on an S3 repository against the real server: what is garbage (data objects no remaining
// snapshot references, manifest-less snapshot directories) and what never is (live objects, locks, plans,
// the marker, a manifest that cannot be read), plans written and swept in batches, leftover plans finished,
// damaged plans refused without deleting anything.

import { randomBytes } from 'node:crypto';
import pLimit from 'p-limit';
import { describe, expect, it, type TestContext } from 'vitest';
import type { S3Storage } from '../dist/src/s3/client.js';
import {
  findGarbage,
  finishLeftoverPlans,
  type GcSnapshot,
  sweep,
  writePlan,
} from '../dist/src/snapshot/s3-gc.js';
import { requireDependency } from './helpers/dependencies.js';
import { rejectionOf, useTestBucket } from './helpers/s3.js';

const testBucket = useTestBucket();
const { unavailable } = testBucket;
let prefixes = 0;
/** Never aborted: these calls run to their end. */
const signal = new AbortController().signal;
const none = new Set<string>();

/** A test that needs the S3 server, with a storage on a fresh prefix of the file's bucket. */
function s3it(name: string, run: (storage: S3Storage) => Promise<void>, timeout?: number): void {
  it(
    name,
    async (ctx: TestContext) => {
      requireDependency(ctx, unavailable);
      await run(await testBucket.open(`gc-${++prefixes}`));
    },
    timeout,
  );
}

const dataKey = () => `data/${randomBytes(16).toString('hex')}.tar`;

async function putAll(storage: S3Storage, keys: readonly string[]): Promise<void> {
  const limit = pLimit(16);
  await Promise.all(keys.map((key) => limit(() => storage.putObject(key, Buffer.from(key)))));
}

async function keysUnder(storage: S3Storage, under = ''): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of storage.listObjects(under)) keys.push(object.key);
  return keys;
}

/** A complete snapshot `id` whose manifest and index exist and which references `objects`. */
async function completeSnapshot(storage: S3Storage, id: string, objects: string[]): Promise<GcSnapshot> {
  const snapshot = { id, timeMs: 0, indexKey: `snapshots/${id}/index-${'a'.repeat(32)}.jsonl.gz`, objects };
  await putAll(storage, [`snapshots/${id}/manifest.json`, snapshot.indexKey]);
  return snapshot;
}

describe('findGarbage', () => {
  s3it(
    'names unreferenced data objects and manifest-less snapshot directories, nothing else',
    async (storage) => {
      const [shared, onlyNew, orphan] = [dataKey(), dataKey(), dataKey()];
      await putAll(storage, [shared, onlyNew, orphan]);
      const old = await completeSnapshot(storage, '2026-11-30T01-00-00Z', [shared]);
      const current = await completeSnapshot(storage, '2026-11-30T02-00-00Z', [shared, onlyNew]);
      const unfinished = ['snapshots/2026-11-30T03-00-00Z/index-b.jsonl.gz'];
      const strayInComplete = `snapshots/${current.id}/index-${'c'.repeat(32)}.jsonl.gz`;
      const untouchable = ['.statesnap-repository', 'locks/x.json', 'gc/other.json', 'notes.txt'];
      await putAll(storage, [...unfinished, strayInComplete, ...untouchable]);

      const garbage = await findGarbage(storage, [old, current], none, signal);
      expect(garbage.keys).toEqual([orphan, ...unfinished, strayInComplete].sort());
      expect(garbage.bytes).toBe(garbage.keys.reduce((sum, key) => sum + Buffer.byteLength(key), 0));
      expect(garbage.snapshotDirs).toEqual(['2026-11-30T02-00-00Z', '2026-11-30T03-00-00Z']);

      // Without `old`, its manifest is one no remaining snapshot accounts for: refused, not collected.
      const refused = await rejectionOf(findGarbage(storage, [current], none, signal));
      expect(refused.code).toBe('ERR_REPO_INVALID');
      expect(refused.message).toContain(`snapshots/${old.id}/manifest.json`);
      // Unless the caller says that manifest is being forgotten (a dry run's view before forget deletes it).
      const dry = await findGarbage(
        storage,
        [current],
        new Set([`snapshots/${old.id}/manifest.json`]),
        signal,
      );
      expect(dry.keys).toContain(old.indexKey);
      expect(dry.keys).toContain(`snapshots/${old.id}/manifest.json`);
    },
  );
});

describe('plans and the sweep', () => {
  s3it(
    'a plan of 1,001 keys is swept in two batches, then the plan itself; live objects stay',
    async (storage) => {
      const doomed = Array.from({ length: 1_001 }, dataKey).sort();
      const live = dataKey();
      await putAll(storage, [...doomed, live]);
      const plan = await writePlan(storage, doomed, new Date('2026-11-30T03:10:00Z'));
      expect(plan).toMatch(/^gc\/2026-11-30T03-10-00Z-[0-9a-f]{16}\.json$/);
      await sweep(storage, plan, doomed, signal);
      expect(await keysUnder(storage)).toEqual([live]);
    },
    120_000,
  );

  s3it(
    'a plan an interrupted prune left is finished by the next one; deleting twice is harmless',
    async (storage) => {
      const doomed = [dataKey(), dataKey(), 'snapshots/2026-11-30T03-00-00Z/index-x.jsonl.gz'];
      const live = dataKey();
      await putAll(storage, [...doomed, live]);
      const plan = await writePlan(storage, doomed, new Date());
      // As if the sweep had deleted the first key and was then killed.
      await storage.deleteObjects([doomed[0]!]);
      expect(await finishLeftoverPlans(storage, signal)).toEqual([plan]);
      expect(await keysUnder(storage)).toEqual([live]);
      expect(await finishLeftoverPlans(storage, signal)).toEqual([]);
    },
  );

  for (const [what, body] of [
    ['names the repository marker', { keys: ['.statesnap-repository'] }],
    ['names a manifest', { keys: ['snapshots/2026-11-30T01-00-00Z/manifest.json'] }],
    ['names a lock', { keys: ['locks/abc.json'] }],
    ['leaves its prefix', { keys: ['data/../x'] }],
    ['is not JSON', null],
  ] as const) {
    s3it(`a leftover plan that ${what} is refused and deletes nothing`, async (storage) => {
      const victim = dataKey();
      await putAll(storage, [victim, '.statesnap-repository', 'locks/abc.json']);
      const plan = 'gc/2026-11-30T03-10-00Z-0123456789abcdef.json';
      const text =
        body === null
          ? '{"statesnap_gc_plan": 1,'
          : JSON.stringify({
              statesnap_gc_plan: 1,
              created_at: '2026-11-30T03:10:00.000Z',
              keys: [victim, ...body.keys],
            });
      await storage.putObject(plan, Buffer.from(text));
      const refused = await rejectionOf(finishLeftoverPlans(storage, signal));
      expect(refused.code).toBe('ERR_REPO_INVALID');
      expect(refused.message).toContain(plan);
      expect(await keysUnder(storage)).toEqual(
        ['.statesnap-repository', victim, plan, 'locks/abc.json'].sort(),
      );
    });
  }
});
