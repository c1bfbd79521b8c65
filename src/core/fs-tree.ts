// Helpers for the trees statesnap makes and changes: whether an entry exists, removing a tree, creating
// directories inside a live tree without leaving it, and giving directories their recorded attributes after
// their contents are written.

import {
  closeSync,
  constants,
  fchmodSync,
  futimesSync,
  lstatSync,
  mkdirSync,
  openSync,
  readlinkSync,
  rmSync,
} from 'node:fs';
import { join } from 'node:path';
import { utimeSeconds } from './protocol.js';
import type { PlannedDir } from './walk.js';

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
 * Opens directory `path` without following a symlink as its last component and, with `confineTo` (a real
 * path), refuses one that resolves outside it: an earlier component swapped for a symlink. What is then done
 * through the descriptor concerns that one directory, wherever the path points meanwhile.
 */
function openDirectoryWithin(path: string, confineTo: string | null): number {
  const fd = openSync(path, OPEN_DIR);
  if (confineTo === null) return fd;
  const actual = readlinkSync(`/proc/self/fd/${fd}`);
  if (actual !== confineTo && !actual.startsWith(`${confineTo}/`)) {
    closeSync(fd);
    throw new Error(`${path} resolves outside ${confineTo} (to ${actual}): a path component was swapped`);
  }
  return fd;
}

/**
 * Creates directory `name` in `parent`. With `confineTo`, through the parent's confined descriptor
 * (`/proc/self/fd/<n>/<name>` resolves in the opened directory itself, as mkdirat would), so a parent swapped
 * for a symlink never makes a directory appear outside `confineTo`.
 */
export function makeDirectoryWithin(
  parent: string,
  name: string,
  mode: number,
  confineTo: string | null,
): void {
  if (confineTo === null) {
    mkdirSync(join(parent, name), { mode });
    return;
  }
  const fd = openDirectoryWithin(parent, confineTo);
  try {
    mkdirSync(`/proc/self/fd/${fd}/${name}`, { mode });
  } finally {
    closeSync(fd);
  }
}

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
    const fd = openDirectoryWithin(dir.rel === '' ? root : join(root, dir.rel), confineTo);
    try {
      fchmodSync(fd, dir.mode);
      futimesSync(fd, utimeSeconds(dir.atimeNs), utimeSeconds(dir.mtimeNs));
    } finally {
      closeSync(fd);
    }
  }
}

/** Removes a tree statesnap made (a partial backup, a staging tree, a replaced backup); gone already is fine. */
export function removeTree(path: string): void {
  rmSync(path, { recursive: true, force: true, maxRetries: 2 });
}
