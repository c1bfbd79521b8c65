// The read side of a snapshot repository: the marker that makes a directory one, the listing of its complete
// snapshots (proven by name and manifest), and `<repo>/latest` resolved to the newest of them, which every
// function that opens a backup does, so the library takes `<repo>/latest` wherever a backup path goes.

import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { describeCause, StatesnapError } from '../core/errors.js';
import { type Manifest, readManifest } from '../format/manifest-schema.js';
import {
  classifyRepositoryEntry,
  compareSnapshotIds,
  LATEST_LINK,
  REPOSITORY_MARKER,
  type SnapshotId,
} from '../format/snapshot-id.js';

export const MARKER_VERSION = 1;

export interface CompleteSnapshot extends SnapshotId {
  path: string;
  manifest: Manifest;
}

/** An entry left by a run that was killed (or is still running, if its lock is live). */
export interface UnfinishedEntry {
  name: string;
  id: string;
  kind: 'in-progress' | 'being-deleted';
}

/** An entry that is not a complete snapshot: never listed as one, never removed, never a link source. */
export interface ForeignEntry {
  name: string;
  reason: string;
}

export interface RepositoryListing {
  /** The repository's real path. */
  path: string;
  /** Oldest first. */
  snapshots: CompleteSnapshot[];
  unfinished: UnfinishedEntry[];
  foreign: ForeignEntry[];
}

export function invalidRepository(path: string, why: string, cause?: unknown): StatesnapError {
  return new StatesnapError('ERR_REPO_INVALID', `${path} ${why}`, { path, cause });
}

export function checkMarker(repo: string): void {
  const path = join(repo, REPOSITORY_MARKER);
  let marker: unknown;
  try {
    if (!lstatSync(path).isFile()) throw new Error('not a regular file');
    marker = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw invalidRepository(
      repo,
      `has an unreadable repository marker ${path}: ${describeCause(error)}`,
      error,
    );
  }
  const version = (marker as { statesnap_repository?: unknown } | null)?.statesnap_repository;
  if (version === MARKER_VERSION) return;
  const why =
    typeof version === 'number' && version > MARKER_VERSION
      ? `is a repository of a newer statesnap (version ${version}); upgrade statesnap to use it`
      : `has a repository marker ${path} that is not statesnap's`;
  throw invalidRepository(repo, why);
}

/** Why an entry named like a snapshot is not a complete one, or null when it is. */
function whyNotComplete(path: string, id: string): { manifest: Manifest } | { reason: string } {
  const stats = lstatSync(path, { throwIfNoEntry: false });
  if (stats === undefined) return { reason: 'vanished while listed' };
  if (!stats.isDirectory()) return { reason: stats.isSymbolicLink() ? 'a symlink' : 'not a directory' };
  let manifest: Manifest;
  try {
    manifest = readManifest(path);
  } catch (error) {
    return { reason: `no valid manifest: ${describeCause(error)}` };
  }
  const recorded = manifest.statesnap?.snapshot?.id;
  if (recorded !== id) {
    return {
      reason:
        recorded === undefined
          ? 'its manifest is not a snapshot of this repository (no snapshot id)'
          : `its manifest names snapshot ${recorded}`,
    };
  }
  return { manifest };
}

/** Everything in the repository, classified. Reads each snapshot's manifest, never its tree. */
export function readRepository(repo: string): RepositoryListing {
  const listing: RepositoryListing = { path: repo, snapshots: [], unfinished: [], foreign: [] };
  for (const name of readdirSync(repo).sort()) {
    const entry = classifyRepositoryEntry(name);
    if (entry.kind === 'repository') continue;
    if (entry.kind === 'foreign') {
      listing.foreign.push({ name, reason: 'not named like a snapshot' });
    } else if (entry.kind !== 'snapshot') {
      listing.unfinished.push({ name, id: entry.id.id, kind: entry.kind });
    } else {
      const path = join(repo, name);
      const checked = whyNotComplete(path, name);
      if ('reason' in checked) listing.foreign.push({ name, reason: checked.reason });
      else listing.snapshots.push({ ...entry.id, path, manifest: checked.manifest });
    }
  }
  listing.snapshots.sort(compareSnapshotIds);
  return listing;
}

/** The newest complete snapshot, or ERR_SNAPSHOT_NOT_FOUND. */
export function newestSnapshot(listing: RepositoryListing): CompleteSnapshot {
  const newest = listing.snapshots.at(-1);
  if (newest === undefined) {
    throw new StatesnapError(
      'ERR_SNAPSHOT_NOT_FOUND',
      `repository ${listing.path} has no complete snapshot yet`,
      { path: listing.path },
    );
  }
  return newest;
}

/**
 * The backup a path names: `<repo>/latest` is the newest complete snapshot of that repository, found from
 * the listing (never by following the symlink, which may be stale or hand-edited); any other path is itself.
 */
export function resolveBackupPath(path: string): string {
  const absolute = resolve(path);
  if (basename(absolute) !== LATEST_LINK) return path;
  const repo = dirname(absolute);
  if (lstatSync(join(repo, REPOSITORY_MARKER), { throwIfNoEntry: false }) === undefined) return path;
  checkMarker(repo);
  return newestSnapshot(readRepository(repo)).path;
}
