// Prune on an S3 repository: forget the snapshots a retention policy does not keep, mark what the others
// reference, plan the deletion of everything else under `data/` and `snapshots/`, and sweep it.
//
// Why a snapshot never loses an object: forget, mark and plan run under the writer lock, and the sweep, which
// runs after the lock is released, deletes only keys of its plan. Every object a snapshot references was
// either uploaded by its own run, under a fresh random name, while that run held the lock (so no plan made
// before its commit can name it, and a plan made after sees it in the run's manifest), or is referenced by its
// base, the newest complete snapshot when the run took the lock, which could not be forgotten while the run
// held it (so every plan made before the commit saw it live, and every plan after sees the new manifest).
// Names are never reused, so a plan stays right however late it is swept, by this run or the next prune; and
// no plan names a manifest, the one key a later run could write again. A writer's lock can be broken only
// after 30 min without a refresh, and a writer refuses to commit once its last refresh is 15 min old, so a
// prune never plans under a lock it broke from a run that could still commit. A manifest that cannot be read
// stops the collection before anything is deleted: its snapshot's objects could not be told from garbage.

import { randomBytes } from 'node:crypto';
import { assert, describeCause, StatesnapError, throwIfAborted } from '../core/errors.js';
import { booleanOption, clockOption, integerOption, requirePath, signalOption } from '../core/options.js';
import { pauseAt } from '../core/test-hooks.js';
import { z } from '../core/zod.js';
import { DATA_PREFIX, manifestKey, type S3Manifest, SNAPSHOTS_PREFIX } from '../format/s3-index.js';
import type { S3Storage } from '../s3/client.js';
import type { PruneOptions, PruneResult } from './prune-options.js';
import { decideRetention, type PruneDecision, policyProblem, type RetentionPolicy } from './retention.js';
import { withS3Lock } from './s3-lock.js';
import { type RepackResult, type RepackSnapshot, repack } from './s3-repack.js';
import { checkS3Repository, openS3Storage, readS3Repository } from './s3-repository.js';

/** Where deletion plans live, and how many keys one delete request (and one sweep step) takes. */
const PLAN_DIR = 'gc/';
const SWEEP_BATCH_KEYS = 1_000;
const PLAN_VERSION = 1;
/** A plan may name only what prune collects: data objects and objects of snapshot directories. */
const COLLECTABLE_KEY = /^(?:data\/[^/]+|snapshots\/[^/]+\/[^/]+)$/;
const MANIFEST_NAME = 'manifest.json';
const COLLECTED_PREFIXES = [DATA_PREFIX, SNAPSHOTS_PREFIX];

/** What mark needs of a complete snapshot: its id and time (for the policy) and the keys it keeps alive. */
export interface GcSnapshot {
  id: string;
  timeMs: number;
  /** The index object, relative to the repository's prefix. */
  indexKey: string;
  /** The data objects of its manifest's object table. */
  objects: readonly string[];
}

const PlanSchema = z.strictObject({
  statesnap_gc_plan: z.literal(PLAN_VERSION),
  created_at: z.string(),
  keys: z.array(
    z
      .string()
      .regex(COLLECTABLE_KEY, 'is not a data object or an object of a snapshot directory')
      .refine((key) => !key.endsWith(`/${MANIFEST_NAME}`), 'is a manifest, which no plan deletes'),
  ),
});

/** What mark reads of a complete snapshot's manifest. */
function gcSnapshotOf(id: string, timeMs: number, manifest: S3Manifest): GcSnapshot {
  const { s3 } = manifest.statesnap;
  return { id, timeMs, indexKey: s3.index.key, objects: s3.objects.map((record) => record.key) };
}

/** Every key a set of complete snapshots keeps alive: their manifests, indexes and data objects. */
function liveKeys(snapshots: readonly GcSnapshot[]): Set<string> {
  const live = new Set<string>();
  for (const snapshot of snapshots) {
    live.add(manifestKey(snapshot.id));
    live.add(snapshot.indexKey);
    for (const key of snapshot.objects) live.add(key);
  }
  return live;
}

export interface Garbage {
  /** In key order. */
  keys: string[];
  bytes: number;
  /** The ids of the snapshot directories that hold garbage (unfinished runs, forgotten snapshots, strays). */
  snapshotDirs: string[];
}

/**
 * Lists `data/` and `snapshots/` and returns every object no snapshot of `kept` keeps alive. A manifest that
 * is there but is neither one of `kept` nor in `forgetting` (a dry run's snapshots that forget would remove)
 * stops the collection: unreadable, another id, a newer format, its snapshot's objects cannot be told apart
 * from garbage, and deleting them would lose it.
 */
export async function findGarbage(
  storage: S3Storage,
  kept: readonly GcSnapshot[],
  forgetting: ReadonlySet<string>,
  signal: AbortSignal,
): Promise<Garbage> {
  const live = liveKeys(kept);
  const keys: string[] = [];
  const snapshotDirs = new Set<string>();
  let bytes = 0;
  for (const under of COLLECTED_PREFIXES) {
    for await (const object of storage.listObjects(under, { signal })) {
      if (live.has(object.key)) continue;
      if (object.key.endsWith(`/${MANIFEST_NAME}`) && !forgetting.has(object.key)) {
        throw new StatesnapError(
          'ERR_REPO_INVALID',
          `cannot collect garbage in ${storage.describe()}: ${storage.describe(object.key)} is not a readable manifest of this repository; restore access to it or remove its snapshot directory`,
          { path: storage.describe(object.key) },
        );
      }
      if (!COLLECTABLE_KEY.test(object.key)) continue;
      const id = /^snapshots\/([^/]+)\//.exec(object.key)?.[1];
      if (id !== undefined) snapshotDirs.add(id);
      keys.push(object.key);
      bytes += object.size;
    }
  }
  return { keys, bytes, snapshotDirs: [...snapshotDirs].sort() };
}

function planTime(date: Date): string {
  return date
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replaceAll(':', '-');
}

/** Writes a deletion plan (put-if-absent under a fresh name) and returns its key. */
export async function writePlan(storage: S3Storage, keys: readonly string[], now: Date): Promise<string> {
  const key = `${PLAN_DIR}${planTime(now)}-${randomBytes(8).toString('hex')}.json`;
  const body = { statesnap_gc_plan: PLAN_VERSION, created_at: now.toISOString(), keys };
  await storage.putObject(key, Buffer.from(`${JSON.stringify(body)}\n`), { ifAbsent: true });
  return key;
}

/** The keys of a plan, or a one-line ERR_REPO_INVALID naming it: a damaged plan deletes nothing. */
async function readPlan(storage: S3Storage, planKey: string, signal: AbortSignal): Promise<string[]> {
  const bytes = await storage.getObject(planKey, { signal });
  let data: unknown;
  try {
    data = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw invalidPlan(storage, planKey, `is not JSON: ${describeCause(error)}`, error);
  }
  const parsed = PlanSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw invalidPlan(storage, planKey, `is not a deletion plan: ${issue?.path.join('.')} ${issue?.message}`);
  }
  return parsed.data.keys;
}

function invalidPlan(storage: S3Storage, planKey: string, why: string, cause?: unknown): StatesnapError {
  return new StatesnapError(
    'ERR_REPO_INVALID',
    `deletion plan ${storage.describe(planKey)} ${why}; remove it to let prune go on`,
    { path: storage.describe(planKey), cause },
  );
}

/**
 * Deletes a plan's keys in batches, then the plan itself. Deleting a key twice is harmless, so a sweep cut
 * off anywhere is finished by running it again from the start.
 */
export async function sweep(
  storage: S3Storage,
  planKey: string,
  keys: readonly string[],
  signal: AbortSignal,
): Promise<void> {
  pauseAt?.('sweeping', 0);
  for (let start = 0; start < keys.length; start += SWEEP_BATCH_KEYS) {
    throwIfAborted(signal, storage.describe());
    const end = Math.min(keys.length, start + SWEEP_BATCH_KEYS);
    await storage.deleteObjects(keys.slice(start, end), { signal });
    pauseAt?.('sweeping', end);
  }
  await storage.deleteObjects([planKey], { signal });
}

/** Finishes every plan an interrupted prune left in `gc/`; returns their keys. */
export async function finishLeftoverPlans(storage: S3Storage, signal: AbortSignal): Promise<string[]> {
  const plans: string[] = [];
  for await (const object of storage.listObjects(PLAN_DIR, { signal })) plans.push(object.key);
  for (const plan of plans) await sweep(storage, plan, await readPlan(storage, plan, signal), signal);
  return plans;
}

/** What prune on object storage reports besides what every prune does. */
export interface S3PruneResult extends PruneResult {
  /**
   * What the collection deleted (in a dry run: would delete): objects and their bytes, the forgotten
   * manifests and indexes included; the snapshot directories without a manifest among them; and the plans
   * interrupted prunes had left, finished first (none in a dry run).
   */
  garbage: { objects: number; bytes: number; unfinished: string[]; finishedPlans: string[] };
  /**
   * With `maxUnused`: the data objects repacked (deleted, counted in `garbage`), the packs written, and the
   * snapshots whose index and manifest were replaced; null without it and in a dry run.
   */
  repack: { repacked: string[]; written: string[]; rewritten: string[] } | null;
}

/**
 * Removes the snapshots of an S3 repository that `options.policy` does not keep, and deletes every object no
 * remaining snapshot references. Forget, mark and plan run under the writer lock; the sweep after it.
 */
export async function pruneS3(options: PruneOptions): Promise<S3PruneResult> {
  const started = performance.now();
  const location = requirePath('repository', options.repository);
  const policy = options.policy;
  const problem = policyProblem(policy ?? {});
  if (problem !== null) throw new StatesnapError('ERR_INVALID_OPTION', problem.message);
  const dryRun = booleanOption('dryRun', options.dryRun, false);
  const waitMs = integerOption('waitForLockMs', options.waitForLockMs, 0, 0, 2 ** 31 - 1);
  const clock = clockOption('now', options.now);
  const signal = signalOption(options.signal);
  const maxUnused =
    options.maxUnused === undefined ? undefined : integerOption('maxUnused', options.maxUnused, 0, 0, 100);
  const storage = await openS3Storage(location, options.s3);
  const result = (
    collected: Collected,
    finishedPlans: string[],
    repacked: Repacked | null,
  ): S3PruneResult => {
    const { decisions, foreign } = collected;
    const garbage = repacked?.garbage ?? collected.garbage;
    const unfinished = garbage.snapshotDirs.filter((id) => !decisions.some((decision) => decision.id === id));
    return {
      command: 'prune',
      repository: storage.describe(),
      dryRun,
      snapshots: decisions,
      kept: decisions.filter((decision) => decision.keep).map((decision) => decision.id),
      removed: decisions.filter((decision) => !decision.keep).map((decision) => decision.id),
      bytesFreed: dryRun ? null : garbage.bytes,
      removedLeftovers: dryRun ? [] : unfinished.map((id) => `${SNAPSHOTS_PREFIX}${id}/`),
      foreign: foreign.map((name) => ({ name: `${SNAPSHOTS_PREFIX}${name}`, reason: 'not a snapshot id' })),
      garbage: { objects: garbage.keys.length, bytes: garbage.bytes, unfinished, finishedPlans },
      repack: repacked && {
        repacked: repacked.repacked,
        written: repacked.written,
        rewritten: repacked.rewritten,
      },
      durationMs: Math.round(performance.now() - started),
      exitCode: 0,
    };
  };
  try {
    await checkS3Repository(storage, { create: false });
    if (dryRun) return result(await collect(storage, policy, clock(), signal), [], null);
    const planned = await withS3Lock(storage, 'prune', { waitMs, signal }, async () => {
      const finishedPlans = await finishLeftoverPlans(storage, signal);
      for (const under of COLLECTED_PREFIXES) await storage.abortUnfinishedUploads(under, { signal });
      const collected = await collect(storage, policy, clock(), signal);
      const { forgotten, garbage } = collected;
      // The manifests first: deleting one is the moment its snapshot stops existing. Its index, and the data
      // only it used, are garbage from then on, whoever deletes them.
      const manifests = forgotten.map((snapshot) => manifestKey(snapshot.id));
      await storage.deleteObjects(manifests, { signal });
      const indexes = forgotten.map((snapshot) => snapshot.indexKey);
      await storage.deleteObjects(indexes, { signal });
      const forgottenKeys = new Set([...manifests, ...indexes]);
      const repacked =
        maxUnused === undefined ? null : await repackKept(storage, collected, maxUnused, signal);
      const rest = (repacked?.garbage ?? garbage).keys.filter((key) => !forgottenKeys.has(key));
      const plan = rest.length === 0 ? null : await writePlan(storage, rest, new Date(clock()));
      pauseAt?.('gc-planned');
      return { collected, repacked, plan, rest, finishedPlans };
    });
    if (planned.plan !== null) await sweep(storage, planned.plan, planned.rest, signal);
    return result(planned.collected, planned.finishedPlans, planned.repacked);
  } finally {
    storage.close();
  }
}

interface Collected {
  decisions: PruneDecision[];
  /** The snapshots the policy keeps, with their manifests. */
  kept: RepackSnapshot[];
  /** Names under `snapshots/` that are not snapshot ids (never removed: no manifest can make them one). */
  foreign: string[];
  forgotten: GcSnapshot[];
  /** What forget and the sweep delete: the forgotten manifests and indexes included. */
  garbage: Garbage;
}

/**
 * Lists the complete snapshots, applies the policy (the newest is always kept) and finds the garbage as it
 * will be once the others are forgotten. Nothing is deleted yet, so a manifest that stops the collection
 * stops it before any snapshot is forgotten.
 */
async function collect(
  storage: S3Storage,
  policy: RetentionPolicy,
  nowMs: number,
  signal: AbortSignal,
): Promise<Collected> {
  const listing = await readS3Repository(storage);
  const snapshots = listing.snapshots.map((snapshot) =>
    gcSnapshotOf(snapshot.id, snapshot.timeMs, snapshot.manifest),
  );
  const decisions = decideRetention(snapshots, policy, nowMs);
  const keep = new Set(decisions.filter((decision) => decision.keep).map((decision) => decision.id));
  assert(decisions.length === 0 || decisions[0]!.keep, 'a retention policy would remove the newest snapshot');
  const kept = snapshots.filter((snapshot) => keep.has(snapshot.id));
  const forgotten = snapshots.filter((snapshot) => !keep.has(snapshot.id));
  const forgetting = new Set(forgotten.map((snapshot) => manifestKey(snapshot.id)));
  const garbage = await findGarbage(storage, kept, forgetting, signal);
  const keptManifests = listing.snapshots.filter((snapshot) => keep.has(snapshot.id));
  return { decisions, kept: keptManifests, foreign: listing.foreign, forgotten, garbage };
}

interface Repacked extends RepackResult {
  /** The collection's garbage plus the repacked objects and the replaced indexes. */
  garbage: Garbage;
}

/** Repacks what the kept snapshots use; what it replaced joins the garbage, with the sizes it had. */
async function repackKept(
  storage: S3Storage,
  collected: Collected,
  maxUnused: number,
  signal: AbortSignal,
): Promise<Repacked> {
  const made = await repack(storage, collected.kept, maxUnused, signal);
  const sizes = new Map<string, number>();
  for (const { manifest } of collected.kept) {
    const { s3 } = manifest.statesnap;
    for (const record of s3.objects) sizes.set(record.key, record.size);
    sizes.set(s3.index.key, s3.index.bytes);
  }
  const replaced = [...made.repacked, ...made.oldIndexes];
  const { garbage } = collected;
  return {
    ...made,
    garbage: {
      ...garbage,
      keys: [...garbage.keys, ...replaced].sort(),
      bytes: replaced.reduce((sum, key) => sum + (sizes.get(key) ?? 0), garbage.bytes),
    },
  };
}
