// What every reader of a repository in object storage checks first: its marker (present, small, a version this
// statesnap knows), a snapshot's manifest (bounded, validated, naming its snapshot), and the newest complete
// snapshot. Writers create the marker; everything that reads one agrees here on what it must be.

import { describeCause, isStatesnapError, StatesnapError } from '../core/errors.js';
import {
  isSnapshotId,
  manifestKey,
  parseS3Manifest,
  REPOSITORY_MARKER_KEY,
  type S3Manifest,
  SNAPSHOTS_PREFIX,
} from '../format/s3-index.js';
import { compareSnapshotIds, parseSnapshotId } from '../format/snapshot-id.js';
import type { S3Storage } from '../s3/client.js';

/** The marker's `statesnap_repository` this statesnap writes and reads. */
export const S3_MARKER_VERSION = 1;
const MARKER_SIZE_LIMIT = 64 * 1024;
// A manifest is KiBs (its object table one line per data object); past this it is not one.
const MANIFEST_SIZE_LIMIT = 64 << 20;

export function invalidS3Repository(where: string, why: string, cause?: unknown): StatesnapError {
  return new StatesnapError('ERR_REPO_INVALID', `${where} ${why}`, { path: where, cause });
}

/** A snapshot id statesnap would have chosen: exact form, a real second. */
export function isS3SnapshotName(name: string): boolean {
  return isSnapshotId(name) && parseSnapshotId(name) !== null;
}

/**
 * Checks the repository marker: present, statesnap's, of a version this statesnap reads. False when there is
 * none (the caller decides whether that may become a repository); an unreachable server stays its own error.
 */
export async function checkS3Marker(storage: S3Storage, signal?: AbortSignal): Promise<boolean> {
  const where = storage.describe();
  const head = await storage.headObject(REPOSITORY_MARKER_KEY, { signal });
  if (head === null) return false;
  if (head.size > MARKER_SIZE_LIMIT)
    throw invalidS3Repository(where, "has a repository marker that is not statesnap's");
  let version: unknown;
  try {
    const body = (await storage.getObject(REPOSITORY_MARKER_KEY, { signal })).toString('utf8');
    version = (JSON.parse(body) as { statesnap_repository?: unknown })?.statesnap_repository;
  } catch (error) {
    if ((error as { code?: string }).code?.startsWith('ERR_S3')) throw error;
    throw invalidS3Repository(where, `has an unreadable repository marker: ${describeCause(error)}`, error);
  }
  if (version === S3_MARKER_VERSION) return true;
  throw invalidS3Repository(
    where,
    typeof version === 'number' && version > S3_MARKER_VERSION
      ? `is a repository of a newer statesnap (version ${version}); upgrade statesnap to use it`
      : "has a repository marker that is not statesnap's",
  );
}

/** The marker must be there: a prefix holding other objects is not a statesnap repository. */
export async function requireS3Repository(storage: S3Storage, signal?: AbortSignal): Promise<void> {
  if (await checkS3Marker(storage, signal)) return;
  throw invalidS3Repository(
    storage.describe(),
    `is not a statesnap repository (no ${REPOSITORY_MARKER_KEY} marker)`,
  );
}

/** Snapshot `id`'s manifest, bounded in size and validated; null when it has none (it does not exist). */
export async function readS3Manifest(
  storage: S3Storage,
  id: string,
  signal?: AbortSignal,
): Promise<S3Manifest | null> {
  const key = manifestKey(id);
  const where = storage.describe(key);
  const head = await storage.headObject(key, { signal });
  if (head === null) return null;
  if (head.size > MANIFEST_SIZE_LIMIT)
    throw new StatesnapError('ERR_MANIFEST_INVALID', `manifest ${where} is too large to be one`, {
      path: where,
    });
  let bytes: Buffer;
  try {
    bytes = await storage.getObject(key, { signal });
  } catch (error) {
    // Removed between the HEAD and the GET (a prune): no snapshot, as if the HEAD had found none.
    if (isStatesnapError(error, 'ERR_S3_NOT_FOUND')) return null;
    throw error;
  }
  return parseS3Manifest(bytes, where, id);
}

/**
 * The newest complete snapshot (its manifest exists, validates and names it), or null when there is none. Reads
 * manifests newest first and stops at the first valid one; an invalid manifest is an unfinished snapshot,
 * passed over.
 */
export async function newestS3Snapshot(
  storage: S3Storage,
  signal?: AbortSignal,
): Promise<{ id: string; manifest: S3Manifest } | null> {
  const ids = [];
  for await (const name of storage.listChildren(SNAPSHOTS_PREFIX, { signal })) {
    const id = isSnapshotId(name) ? parseSnapshotId(name) : null;
    if (id !== null) ids.push(id);
  }
  for (const { id } of ids.sort(compareSnapshotIds).reverse()) {
    try {
      const manifest = await readS3Manifest(storage, id, signal);
      if (manifest !== null) return { id, manifest };
    } catch (error) {
      // An invalid manifest is not a complete snapshot; an unreachable server is everyone's problem.
      if (!isStatesnapError(error, 'ERR_MANIFEST_INVALID')) throw error;
    }
  }
  return null;
}
