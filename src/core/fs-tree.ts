// Helpers for the trees statesnap makes and changes: whether an entry exists, removing a tree, and giving
// directories their recorded attributes after their contents are written.

import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  futimesSync,
  lstatSync,
  openSync,
  readlinkSync,
  rmSync,
} from 'node:fs';
import { join } from 'node:path';
import { fsPath, utimeSeconds, type WriteSpec } from './protocol.js';
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

/** How directories get their recorded attributes: as the files of the same run get theirs (WriteSpec). */
export interface DirectoryAttributeOptions extends Partial<Pick<WriteSpec, 'owners' | 'modeMask'>> {
  /** A real path every directory must lie under (a live target), or null. @default null */
  confineTo?: string | null;
}

/**
 * Gives every directory its recorded mode and mtime (and, with `owners`, its recorded owner), deepest first:
 * writing into a directory changes its mtime, and a read-only mode set too early would stop its contents from
 * being written (Node's fs.cp does the same in mkDirAndCopy). With `confineTo` (a real path), a directory that
 * resolves outside it (a parent swapped for a symlink) is refused rather than changed.
 */
export function applyDirectoryAttributes(
  root: string,
  dirs: readonly PlannedDir[],
  options: DirectoryAttributeOptions = {},
): void {
  const { confineTo = null, owners = false, modeMask = 0o7777 } = options;
  const ordered = [...dirs].sort((a, b) => depth(b.rel) - depth(a.rel));
  for (const dir of ordered) {
    const path = dir.rel === '' ? root : join(root, dir.rel);
    const fd = openSync(fsPath(path), OPEN_DIR);
    try {
      if (confineTo !== null) {
        const actual = readlinkSync(`/proc/self/fd/${fd}`);
        if (actual !== confineTo && !actual.startsWith(`${confineTo}/`)) {
          throw new Error(
            `${path} resolves outside ${confineTo} (to ${actual}): a path component was swapped`,
          );
        }
      }
      // Owner before mode: a change of owner may clear setgid.
      if (owners && dir.uid !== undefined && dir.gid !== undefined) fchownSync(fd, dir.uid, dir.gid);
      fchmodSync(fd, dir.mode & modeMask);
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
