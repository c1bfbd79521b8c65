// A snapshot repository in object storage (docs/s3-design.md, "Layout"): its marker, the listing of its
// snapshots from their manifests, ids chosen under the writer lock, and `snapshot` into it. Reached only
// through import(): it loads the SDK.

import pLimit from 'p-limit';
import type { LinkSource, PreviousRecord } from '../backup/link-source.js';
import { previousEntryOf } from '../backup/previous-entry.js';
import { backupToS3, type S3BaseSnapshot } from '../backup/s3-writer.js';
import { abortError, describeCause, StatesnapError } from '../core/errors.js';
import { orderedPath } from '../core/index-order.js';
import { booleanOption, clockOption, integerOption, requirePath, signalOption } from '../core/options.js';
import {
  DATA_PREFIX,
  manifestKey,
  REPOSITORY_MARKER_KEY,
  readS3Index,
  type S3Manifest,
  SNAPSHOTS_PREFIX,
  snapshotPrefix,
} from '../format/s3-index.js';
import { compareSnapshotIds, newSnapshotId, parseSnapshotId } from '../format/snapshot-id.js';
import {
  checkS3Marker,
  invalidS3Repository,
  isS3SnapshotName,
  newestS3Snapshot,
  readS3Manifest,
  requireS3Repository,
  S3_MARKER_VERSION,
} from '../read/s3-repository.js';
import type { S3Storage } from '../s3/client.js';
import { parseS3Location } from '../s3/location.js';
import type { S3Options } from '../s3/settings.js';
import { hooksOption, withHooks } from './hooks.js';
import { withS3Lock } from './s3-lock.js';
import type { SnapshotOptions, SnapshotResult } from './snapshot-options.js';

// The previous index is read in ranges of this size, so it is never held whole.
const INDEX_RANGE_BYTES = 8 * 1024 * 1024;
const SECOND_MS = 1000;

/** Connects to `location` (`s3://bucket/prefix`), proving it reachable and listable. */
export async function openS3Storage(location: string, options: S3Options = {}): Promise<S3Storage> {
  const parsed = parseS3Location(location);
  const { S3Storage } = await import('../s3/client.js');
  return S3Storage.open(parsed, options);
}

/**
 * Checks that the storage's prefix is a repository. With `create`, a prefix holding no object becomes one
 * (the marker put only if absent: two first snapshots both succeed); a prefix holding anything else is refused.
 */
export async function checkS3Repository(storage: S3Storage, options: { create: boolean }): Promise<void> {
  if (!options.create) return requireS3Repository(storage);
  if (await checkS3Marker(storage)) return;
  const where = storage.describe();
  for await (const object of storage.listObjects('')) {
    throw invalidS3Repository(
      where,
      `holds objects (${storage.describe(object.key)}) but no .statesnap-repository marker: not a repository; use an empty prefix`,
    );
  }
  const body = { statesnap_repository: S3_MARKER_VERSION, created_at: new Date().toISOString() };
  try {
    await storage.putObject(REPOSITORY_MARKER_KEY, Buffer.from(`${JSON.stringify(body)}\n`), {
      ifAbsent: true,
    });
  } catch (error) {
    if ((error as { code?: string }).code !== 'ERR_S3_EXISTS') throw error;
  }
}

/** A complete snapshot: its manifest exists, validates and names it. */
export interface S3CompleteSnapshot {
  id: string;
  timeMs: number;
  sequence: number;
  manifest: S3Manifest;
}

/** What `snapshots/` holds: complete snapshots oldest first, and ids with objects but no valid manifest. */
export interface S3RepositoryListing {
  snapshots: S3CompleteSnapshot[];
  /** Abandoned or running snapshots: objects under `snapshots/<id>/`, no manifest (or an invalid one). */
  unfinished: { id: string; reason: string }[];
  /** Names under `snapshots/` that are not snapshot ids: never used, never removed here. */
  foreign: string[];
}

/**
 * Lists the repository's snapshots: every key under `snapshots/` (one request per 1,000 keys: a snapshot has
 * two), then the manifests there are (as many requests in flight as the storage's concurrency). Only a
 * snapshot whose manifest exists, validates and names it is complete.
 */
export async function readS3Repository(storage: S3Storage): Promise<S3RepositoryListing> {
  const listing: S3RepositoryListing = { snapshots: [], unfinished: [], foreign: [] };
  const withManifest = new Map<string, boolean>();
  for await (const object of storage.listObjects(SNAPSHOTS_PREFIX)) {
    const rest = object.key.slice(SNAPSHOTS_PREFIX.length);
    const slash = rest.indexOf('/');
    const name = slash === -1 ? rest : rest.slice(0, slash);
    const isManifest = slash !== -1 && object.key === manifestKey(name);
    withManifest.set(name, (withManifest.get(name) ?? false) || isManifest);
  }
  const ids: string[] = [];
  for (const [name, hasManifest] of withManifest) {
    if (!isS3SnapshotName(name)) listing.foreign.push(name);
    else if (hasManifest) ids.push(name);
    else listing.unfinished.push({ id: name, reason: 'no manifest' });
  }
  const limit = pLimit(storage.settings.concurrency);
  const manifests = await Promise.all(
    ids.map((id) =>
      limit(async (): Promise<{ manifest: S3Manifest | null } | { reason: string }> => {
        try {
          return { manifest: await readS3Manifest(storage, id) };
        } catch (error) {
          if ((error as { code?: string }).code?.startsWith('ERR_S3')) throw error;
          return { reason: describeCause(error) };
        }
      }),
    ),
  );
  manifests.forEach((read, i) => {
    const id = ids[i]!;
    if ('reason' in read) listing.unfinished.push({ id, reason: read.reason });
    else if (read.manifest === null) listing.unfinished.push({ id, reason: 'no manifest' });
    else listing.snapshots.push({ ...parseSnapshotId(id)!, manifest: read.manifest });
  });
  listing.snapshots.sort(compareSnapshotIds);
  listing.unfinished.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return listing;
}

/** Every id that has any object under `snapshots/<id>/`: what a new id must not reuse. */
async function idsInUse(storage: S3Storage): Promise<Set<string>> {
  const ids = new Set<string>();
  for await (const name of storage.listChildren(SNAPSHOTS_PREFIX)) ids.add(name);
  return ids;
}

/** A free id for a snapshot starting now (under the writer lock); when the second is full, the next one's. */
async function chooseS3Id(storage: S3Storage, clock: () => number, injected: boolean): Promise<string> {
  for (;;) {
    const taken = await idsInUse(storage);
    const id = newSnapshotId(clock(), (candidate) => taken.has(candidate));
    if (id !== null) return id;
    if (injected) {
      throw new StatesnapError(
        'ERR_REPO_BUSY',
        `repository ${storage.describe()} already has 100 snapshots in that second`,
        {
          path: storage.describe(),
        },
      );
    }
    await new Promise((wake) => setTimeout(wake, SECOND_MS - (Date.now() % SECOND_MS)));
  }
}

const BATCH = 512;

/** A complete snapshot as the base a new one is compared with: its index streamed in canonical order. */
function baseOf(storage: S3Storage, snapshot: { id: string; manifest: S3Manifest }): S3BaseSnapshot {
  const { s3, totals, started_at_ns: startedAtNs } = snapshot.manifest.statesnap;
  const where = storage.describe(s3.index.key);
  async function* entries(signal: AbortSignal): AsyncGenerator<PreviousRecord[]> {
    let batch: PreviousRecord[] = [];
    const body = storage.readInRanges(s3.index.key, s3.index.bytes, INDEX_RANGE_BYTES, { signal });
    for await (const line of readS3Index(body, s3, where, { refuseCaseCollisions: false })) {
      if (signal.aborted) throw abortError(signal, where);
      const entry = previousEntryOf(line);
      if (line.type === 'file') entry.stored = { object: line.object, offset: line.offset };
      batch.push({ path: orderedPath(line.path), entry });
      if (batch.length >= BATCH) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length > 0) yield batch;
  }
  const link: LinkSource = {
    root: storage.describe(snapshotPrefix(snapshot.id).slice(0, -1)),
    given: storage.describe(snapshotPrefix(snapshot.id).slice(0, -1)),
    createdAt: snapshot.manifest.created_at,
    startedAtNs: BigInt(startedAtNs),
    totals: { files: totals.files, bytes: totals.bytes },
    entries,
  };
  return { id: snapshot.id, createdAt: snapshot.manifest.created_at, link, objects: s3.objects };
}

/** Makes a new snapshot of `options.source` in the repository at `options.repository` (`s3://bucket/prefix`). */
export async function snapshotToS3(options: SnapshotOptions): Promise<SnapshotResult> {
  const { repository, full, waitForLockMs, now, s3, execBefore, execAfter, execTimeoutMs, ...backupOptions } =
    options;
  const hooks = hooksOption(options);
  const fullCopy = booleanOption('full', full, false);
  const location = requirePath('repository', repository);
  const waitMs = integerOption('waitForLockMs', waitForLockMs, 0, 0, 2 ** 31 - 1);
  const clock = clockOption('now', now);
  const signal = signalOption(options.signal);
  requirePath('source', options.source);
  const storage = await openS3Storage(location, s3);
  try {
    await checkS3Repository(storage, { create: true });
    return await withS3Lock(storage, 'snapshot', { waitMs, signal }, async (lock) => {
      // No other writer runs while we hold the lock: an unfinished upload is a killed run's, never completed.
      await storage.abortUnfinishedUploads(DATA_PREFIX, { signal });
      await storage.abortUnfinishedUploads(SNAPSHOTS_PREFIX, { signal });
      const previous = fullCopy ? null : await newestS3Snapshot(storage, signal);
      const id = await chooseS3Id(storage, clock, now !== undefined);
      const base = previous === null ? null : baseOf(storage, previous);
      const env = {
        STATESNAP_SOURCE: options.source,
        STATESNAP_REPOSITORY: storage.describe(),
        STATESNAP_SNAPSHOT_ID: id,
      };
      const { made, ran } = await withHooks(hooks, env, signal, () =>
        backupToS3(
          {
            ...backupOptions,
            estimate: previous?.manifest.statesnap.totals,
          },
          {
            storage,
            id,
            base,
            guard: {
              beforeCommit: async () => {
                await lock.refresh();
                lock.checkTrusted();
              },
              afterCommit: () => lock.checkTrusted(),
            },
          },
        ),
      );
      const { manifest, base: madeBase, bytesUploaded, objectsUploaded, ...result } = made;
      const index = manifest.statesnap.s3.index;
      return {
        ...result,
        command: 'snapshot',
        repository: storage.describe(),
        id,
        index: { path: storage.describe(index.key), entries: index.entries, sha256: index.sha256 },
        replacedExisting: false,
        linkSource: madeBase && {
          id: madeBase.id,
          path: storage.describe(snapshotPrefix(madeBase.id).slice(0, -1)),
          createdAt: madeBase.createdAt,
        },
        removedLeftovers: [],
        hooks: ran,
        exitCode: ran.some((outcome) => !outcome.ok) ? 3 : result.exitCode,
        uploaded: { bytes: bytesUploaded, objects: objectsUploaded, indexBytes: index.bytes },
      };
    });
  } finally {
    storage.close();
  }
}

/** The repository at `location` (`s3://bucket/prefix`) as `list` shows it. */
export async function listS3Repository(
  location: string,
  options: { s3?: S3Options | undefined },
): Promise<S3RepositoryListing & { repository: string; pathOf: (id: string) => string }> {
  const storage = await openS3Storage(location, options.s3);
  try {
    await checkS3Repository(storage, { create: false });
    const listing = await readS3Repository(storage);
    const repository = storage.describe();
    return { ...listing, repository, pathOf: (id) => `${repository}/${snapshotPrefix(id).slice(0, -1)}` };
  } finally {
    storage.close();
  }
}
