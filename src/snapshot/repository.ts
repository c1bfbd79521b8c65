// A snapshot repository on disk: the marker that makes a directory one, the listing of its complete snapshots
// (proven by name and manifest), the cleanup of what killed runs left, the `latest` link for other tools, and
// `<repo>/latest` resolved to the newest complete snapshot for every command that reads a backup.

import { randomBytes } from 'node:crypto';
import {
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { describeCause, StatesnapError, systemErrorCode } from '../core/errors.js';
import { syncDirectory } from '../core/flush.js';
import { removeTree } from '../core/fs-tree.js';
import { type Manifest, readManifest } from '../format/manifest-schema.js';
import {
  classifyRepositoryEntry,
  compareSnapshotIds,
  LATEST_LINK,
  REPOSITORY_MARKER,
  type SnapshotId,
} from './snapshot-id.js';

const MARKER_VERSION = 1;
const MARKER_TEMP_PREFIX = `${REPOSITORY_MARKER}.tmp-`;
const LATEST_LINK_TEMP = '.latest.tmp';

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

function invalidRepository(path: string, why: string, cause?: unknown): StatesnapError {
  return new StatesnapError('ERR_REPO_INVALID', `${path} ${why}`, { path, cause });
}

function checkMarker(repo: string): void {
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

/**
 * Writes the marker into an empty directory. A temporary file linked to the marker's name: two first
 * snapshots racing for one empty directory both succeed, and neither ever sees a half-written marker.
 */
function createMarker(repo: string): void {
  const temp = join(repo, `${MARKER_TEMP_PREFIX}${randomBytes(4).toString('hex')}`);
  const body = { statesnap_repository: MARKER_VERSION, created_at: new Date().toISOString() };
  writeFileSync(temp, `${JSON.stringify(body)}\n`, { flag: 'wx', mode: 0o644 });
  try {
    linkSync(temp, join(repo, REPOSITORY_MARKER));
  } catch (error) {
    if (systemErrorCode(error) !== 'EEXIST') throw error;
  } finally {
    unlinkSync(temp);
  }
  syncDirectory(repo);
}

/**
 * Checks that `path` is a repository and returns its absolute path. With `create`, a missing or empty
 * directory becomes one; a directory holding anything else is refused, so a mistyped path (a home directory)
 * never turns into something prune works on.
 */
export function openRepository(path: string, options: { create: boolean }): string {
  const repo = resolve(path);
  let isDirectory: boolean;
  try {
    isDirectory = statSync(repo).isDirectory();
  } catch (error) {
    if (systemErrorCode(error) !== 'ENOENT' || !options.create) {
      throw invalidRepository(repo, `is not a snapshot repository: ${describeCause(error)}`, error);
    }
    try {
      mkdirSync(repo, { recursive: true });
    } catch (mkdirError) {
      throw invalidRepository(repo, `cannot be created: ${describeCause(mkdirError)}`, mkdirError);
    }
    isDirectory = true;
  }
  if (!isDirectory) throw invalidRepository(repo, 'is not a directory, so not a snapshot repository');
  const names = readdirSync(repo);
  if (names.includes(REPOSITORY_MARKER)) {
    checkMarker(repo);
    return repo;
  }
  if (!options.create) {
    throw invalidRepository(repo, `is not a snapshot repository (it has no ${REPOSITORY_MARKER})`);
  }
  const others = names.filter((name) => !name.startsWith(MARKER_TEMP_PREFIX));
  if (others.length > 0) {
    throw invalidRepository(
      repo,
      `is not empty and not a snapshot repository (no ${REPOSITORY_MARKER}); give an empty or new directory`,
    );
  }
  try {
    createMarker(repo);
  } catch (error) {
    throw invalidRepository(repo, `cannot be made a repository: ${describeCause(error)}`, error);
  }
  checkMarker(repo);
  return repo;
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

/**
 * Removes what killed snapshots and prunes left (`.partial-*`, `.deleting-*`). Only the holder of the
 * repository lock may call it: every writer of those names holds the lock while it works, so holding it
 * proves their owners are gone. Returns the names removed.
 */
export function removeLeftovers(repo: string): string[] {
  const removed: string[] = [];
  for (const name of readdirSync(repo)) {
    const kind = classifyRepositoryEntry(name).kind;
    if (kind !== 'in-progress' && kind !== 'being-deleted') continue;
    try {
      removeTree(join(repo, name));
    } catch (error) {
      throw new StatesnapError(
        'ERR_DEST_WRITE',
        `cannot remove ${join(repo, name)}, left by a killed run: ${describeCause(error)}`,
        { path: join(repo, name), cause: error },
      );
    }
    removed.push(name);
  }
  return removed;
}

/**
 * Points `latest` at the newest complete snapshot (or removes it when there is none), by renaming a new
 * symlink over it. A `latest` that is not a symlink is someone else's and stays as it is.
 */
export function updateLatestLink(listing: RepositoryListing): void {
  const link = join(listing.path, LATEST_LINK);
  const current = lstatSync(link, { throwIfNoEntry: false });
  if (current !== undefined && !current.isSymbolicLink()) return;
  const newest = listing.snapshots.at(-1);
  if (newest === undefined) {
    if (current !== undefined) unlinkSync(link);
    return;
  }
  const temp = join(listing.path, LATEST_LINK_TEMP);
  removeTree(temp);
  symlinkSync(newest.id, temp);
  renameSync(temp, link);
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
  return newestSnapshot(readRepository(openRepository(repo, { create: false }))).path;
}
