// `list()`: the snapshots of a repository from their manifests (never their trees), what killed or running
// snapshots and prunes left, and the foreign entries statesnap ignores.

import { throwIfAborted } from '../core/errors.js';
import { invalidOption, requirePath, signalOption } from '../core/options.js';
import type { Manifest } from '../format/manifest.js';
import { isS3Location } from '../s3/location.js';
import type { S3Options } from '../s3/settings.js';
import { describeHolder, readLockHolders } from './lock.js';
import { type CompleteSnapshot, type ForeignEntry, openRepository, readRepository } from './repository.js';

export interface ListOptions {
  /** A repository directory, or `s3://bucket/prefix`. */
  repository: string;
  signal?: AbortSignal;
  /** With an `s3://bucket/prefix` repository: endpoint, region, profile. @default the AWS environment */
  s3?: S3Options;
}

export interface SnapshotRow {
  id: string;
  path: string;
  /** When the snapshot started (its id's second), UTC. */
  time: string;
  /** The same instant in this machine's time zone, with its UTC offset: `2026-11-30 03:47:11 +01:00`. */
  localTime: string;
  files: number;
  dirs: number;
  bytes: number;
  /** Bytes this snapshot added to the disk (copied files); null when its manifest does not say. */
  bytesNew: number | null;
  /** Files linked from the previous snapshot and files copied; null when its manifest does not say. */
  linked: number | null;
  copied: number | null;
  state: 'complete';
}

export interface UnfinishedRow {
  name: string;
  id: string;
  /** `in-progress` / `being-deleted` while the run that holds the lock works on it, else `abandoned`. */
  state: 'in-progress' | 'being-deleted' | 'abandoned';
  /** The run working on it, when there is one. */
  holder: string | null;
}

export interface ListResult {
  command: 'list';
  repository: string;
  /** Oldest first. */
  snapshots: SnapshotRow[];
  unfinished: UnfinishedRow[];
  /** Entries that are not snapshots, with the reason: never used, never removed. */
  foreign: ForeignEntry[];
  exitCode: 0;
}

function pad(value: number): string {
  return String(value).padStart(2, '0');
}

/** `2026-11-30 03:47:11 +01:00`, in the process's time zone. */
export function localTimeWithOffset(timeMs: number): string {
  const date = new Date(timeMs);
  const offset = -date.getTimezoneOffset();
  const sign = offset < 0 ? '-' : '+';
  const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  const time = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  return `${day} ${time} ${sign}${pad(Math.floor(Math.abs(offset) / 60))}:${pad(Math.abs(offset) % 60)}`;
}

/**
 * What a snapshot added and how it was made. A manifest without a link source records a full copy: every file
 * copied. The counts of a linked snapshot come from its manifest's `counts` and `bytes_new`.
 */
function contributionOf(manifest: Manifest): Pick<SnapshotRow, 'bytesNew' | 'linked' | 'copied'> {
  const extras = (manifest.statesnap ?? {}) as Record<string, unknown>;
  const totals = manifest.statesnap?.totals;
  const counts = extras.counts as { linked?: unknown; copied?: unknown } | undefined;
  const number = (value: unknown) => (typeof value === 'number' ? value : null);
  if (extras.link_source === undefined || extras.link_source === null) {
    return { bytesNew: totals?.bytes ?? null, linked: totals ? 0 : null, copied: totals?.files ?? null };
  }
  return {
    bytesNew: number(extras.bytes_new),
    linked: number(counts?.linked),
    copied: number(counts?.copied),
  };
}

function rowOf(snapshot: CompleteSnapshot): SnapshotRow {
  const totals = snapshot.manifest.statesnap?.totals;
  return {
    id: snapshot.id,
    path: snapshot.path,
    time: new Date(snapshot.timeMs).toISOString().replace('.000Z', 'Z'),
    localTime: localTimeWithOffset(snapshot.timeMs),
    files: totals?.files ?? 0,
    dirs: totals?.dirs ?? 0,
    bytes: totals?.bytes ?? 0,
    ...contributionOf(snapshot.manifest),
    state: 'complete',
  };
}

/** Lists the snapshots of `options.repository`, oldest first. */
export async function list(options: ListOptions): Promise<ListResult> {
  if (typeof options.repository === 'string' && isS3Location(options.repository)) {
    throwIfAborted(signalOption(options.signal), options.repository);
    return listS3(options.repository, options);
  }
  if (options.s3 !== undefined)
    throw invalidOption('s3', 'only with an s3:// repository', JSON.stringify(options.s3));
  const repo = openRepository(requirePath('repository', options.repository), { create: false });
  throwIfAborted(signalOption(options.signal), repo);
  const listing = readRepository(repo);
  const live = readLockHolders(repo).filter((holder) => holder.state !== 'gone');
  const unfinished = listing.unfinished.map(({ name, id, kind }): UnfinishedRow => {
    const operation = kind === 'in-progress' ? 'snapshot' : 'prune';
    const holder = live.find((candidate) => candidate.operation === operation);
    return { name, id, state: holder ? kind : 'abandoned', holder: holder ? describeHolder(holder) : null };
  });
  return {
    command: 'list',
    repository: repo,
    snapshots: listing.snapshots.map(rowOf),
    unfinished,
    foreign: listing.foreign,
    exitCode: 0,
  };
}

/** A repository in object storage: rows from its manifests; a snapshot's new bytes are what it uploaded. */
async function listS3(location: string, options: ListOptions): Promise<ListResult> {
  const listing = await (await import('./s3-repository.js')).listS3Repository(location, options);
  return {
    command: 'list',
    repository: listing.repository,
    snapshots: listing.snapshots.map(({ id, timeMs, manifest }) => {
      const { totals, counts, s3 } = manifest.statesnap;
      return {
        id,
        path: listing.pathOf(id),
        time: new Date(timeMs).toISOString().replace('.000Z', 'Z'),
        localTime: localTimeWithOffset(timeMs),
        files: totals.files,
        dirs: totals.dirs,
        bytes: totals.bytes,
        bytesNew: s3.bytes_uploaded,
        linked: counts?.linked ?? null,
        copied: counts?.copied ?? null,
        state: 'complete',
      };
    }),
    // An id with objects but no manifest is no snapshot; the next prune removes what it left.
    unfinished: listing.unfinished.map(({ id }) => ({
      name: `snapshots/${id}/`,
      id,
      state: 'abandoned',
      holder: null,
    })),
    foreign: listing.foreign.map((name) => ({ name: `snapshots/${name}`, reason: 'not a snapshot id' })),
    exitCode: 0,
  };
}
