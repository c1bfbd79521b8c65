// Finishes a backup built under a temporary sibling name: directory modes and mtimes bottom-up after their
// contents, the manifest last, a flush, then one rename that makes the backup visible. Also cleans up what a
// killed run left beside the destination.

import {
  closeSync,
  constants,
  fchmodSync,
  futimesSync,
  lstatSync,
  openSync,
  readlinkSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { describeCause, StatesnapError } from './errors.js';
import type { Flusher } from './flush.js';
import { MANIFEST_FILE, type Manifest, serializeManifest } from './manifest.js';
import type { PlannedDir } from './planner.js';
import { findStaleSiblings, siblingPath } from './siblings.js';
import { utimeSeconds } from './types.js';

/** Whether anything is at `path`, a dangling symlink included (existsSync follows symlinks and says no). */
export function entryExists(path: string): boolean {
  return lstatSync(path, { throwIfNoEntry: false }) !== undefined;
}

function depth(rel: string): number {
  if (rel === '') return 0;
  let slashes = 1;
  for (const char of rel) if (char === '/') slashes++;
  return slashes;
}

// O_NOFOLLOW: a directory swapped for a symlink (a merge restore writes into a live target) is never changed
// through; the attributes are set on the opened descriptor, so the check and the change concern one inode.
const OPEN_DIR = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/**
 * Gives every directory its recorded mode and mtime, deepest first: writing into a directory changes its
 * mtime, and a read-only mode set too early would stop its contents from being written (Node's fs.cp does
 * the same in mkDirAndCopy). With `confineTo` (a real path), a directory that resolves outside it (a parent
 * swapped for a symlink) is refused rather than changed.
 */
export function applyDirectoryAttributes(
  root: string,
  dirs: readonly PlannedDir[],
  confineTo: string | null = null,
): void {
  const ordered = [...dirs].sort((a, b) => depth(b.rel) - depth(a.rel));
  for (const dir of ordered) {
    const path = dir.rel === '' ? root : join(root, dir.rel);
    const fd = openSync(path, OPEN_DIR);
    try {
      if (confineTo !== null) {
        const actual = readlinkSync(`/proc/self/fd/${fd}`);
        if (actual !== confineTo && !actual.startsWith(`${confineTo}/`)) {
          throw new Error(
            `${path} resolves outside ${confineTo} (to ${actual}): a path component was swapped`,
          );
        }
      }
      fchmodSync(fd, dir.mode);
      futimesSync(fd, utimeSeconds(dir.atimeNs), utimeSeconds(dir.mtimeNs));
    } finally {
      closeSync(fd);
    }
  }
}

export function writeManifest(root: string, manifest: Manifest): void {
  writeFileSync(join(root, MANIFEST_FILE), serializeManifest(manifest), { flag: 'wx', mode: 0o644 });
}

/**
 * Flushes the finished tree and renames it to `dest`. With `force`, an existing `dest` is first renamed aside
 * and removed only after the new backup is in place. Without it, a `dest` that appeared since the caller
 * checked (another run finished first) is refused, never replaced. Returns whether a backup was replaced.
 */
export async function publish(
  partial: string,
  dest: string,
  flusher: Flusher,
  force: boolean,
): Promise<boolean> {
  await flusher.finish();
  if (!force && entryExists(dest)) {
    throw new StatesnapError(
      'ERR_DEST_EXISTS',
      `destination ${dest} appeared while the backup ran (use --force to replace it)`,
      { path: dest },
    );
  }
  let replaced: string | null = null;
  try {
    if (force && entryExists(dest)) {
      replaced = siblingPath(dest, 'replaced');
      renameSync(dest, replaced);
    }
    renameSync(partial, dest);
    flusher.syncDirectory(dirname(dest));
  } catch (error) {
    if (replaced !== null && !entryExists(dest)) renameSync(replaced, dest);
    throw new StatesnapError(
      'ERR_DEST_WRITE',
      `cannot move the finished backup to ${dest}: ${describeCause(error)}`,
      {
        path: dest,
        cause: error,
      },
    );
  }
  if (replaced !== null) rmSync(replaced, { recursive: true, force: true });
  return replaced !== null;
}

export function discard(partial: string): void {
  rmSync(partial, { recursive: true, force: true, maxRetries: 2 });
}

/**
 * Cleans what a killed backup left beside `dest`: an unfinished tree is removed; a previous backup that was
 * renamed aside for `--force` is put back if the new one never arrived, removed otherwise.
 */
export function cleanStaleBackupSiblings(dest: string): void {
  for (const sibling of findStaleSiblings(dest, ['partial', 'replaced'])) {
    if (sibling.purpose === 'replaced' && !entryExists(dest)) renameSync(sibling.path, dest);
    else discard(sibling.path);
  }
}
