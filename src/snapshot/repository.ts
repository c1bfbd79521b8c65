// A snapshot repository as its writers see it: made from an empty directory, cleaned of what killed runs left,
// its `latest` link kept on the newest snapshot for other tools. Listing and `<repo>/latest` are read's.

import { randomBytes } from 'node:crypto';
import {
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  renameSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { describeCause, StatesnapError, systemErrorCode } from '../core/errors.js';
import { syncDirectory } from '../core/flush.js';
import { removeTree } from '../core/fs-tree.js';
import { classifyRepositoryEntry, LATEST_LINK, REPOSITORY_MARKER } from '../format/snapshot-id.js';
import {
  checkMarker,
  invalidRepository,
  MARKER_VERSION,
  type RepositoryListing,
} from '../read/repository-listing.js';

const MARKER_TEMP_PREFIX = `${REPOSITORY_MARKER}.tmp-`;
const LATEST_LINK_TEMP = '.latest.tmp';

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
