// Helpers for the trees statesnap makes and changes: whether an entry exists, removing a tree, creating
// directories inside a live tree without leaving it, and giving directories their recorded attributes after
// their contents are written.

import {
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fstatSync,
  futimesSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  rmdirSync,
  unlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { systemErrorCode } from './errors.js';
import { CAN_LOCATE_FDS } from './paths.js';
import { fsPath, utimeSeconds, type WriteSpec } from './protocol.js';
import type { PlannedDir } from './walk.js';

/** Whether anything is at `path`, a dangling symlink included (existsSync follows symlinks and says no). */
export function entryExists(path: string): boolean {
  return lstatSync(fsPath(path), { throwIfNoEntry: false }) !== undefined;
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
 * Opens directory `path` without following a symlink as its last component and, with `confineTo` (a real
 * path), refuses one that resolves outside it: an earlier component swapped for a symlink. What is then done
 * through the descriptor concerns that one directory, wherever the path points meanwhile.
 */
function openDirectoryWithin(path: string, confineTo: string | null): number {
  const fd = openSync(fsPath(path), OPEN_DIR);
  if (confineTo === null) return fd;
  try {
    const actual = readlinkSync(`/proc/self/fd/${fd}`);
    if (actual !== confineTo && !actual.startsWith(`${confineTo}/`)) {
      throw new Error(`${path} resolves outside ${confineTo} (to ${actual}): a path component was swapped`);
    }
  } catch (error) {
    closeSync(fd);
    throw error;
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
    mkdirSync(fsPath(join(parent, name)), { mode });
    return;
  }
  const fd = openDirectoryWithin(parent, confineTo);
  try {
    mkdirSync(fsPath(`/proc/self/fd/${fd}/${name}`), { mode });
  } finally {
    closeSync(fd);
  }
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
    const fd = openDirectoryWithin(dir.rel === '' ? root : join(root, dir.rel), confineTo);
    try {
      // Owner before mode: a change of owner may clear setgid.
      if (owners && dir.uid !== undefined && dir.gid !== undefined) fchownSync(fd, dir.uid, dir.gid);
      fchmodSync(fd, dir.mode & modeMask);
      futimesSync(fd, utimeSeconds(dir.atimeNs), utimeSeconds(dir.mtimeNs));
    } finally {
      closeSync(fd);
    }
  }
}

/** A removal failure retold about the path a person knows, not the /proc/self/fd path it was made through. */
class RemovalError extends Error {
  readonly code: string | undefined;
  readonly syscall: string | undefined;
  readonly path: string;

  constructor(error: unknown, shown: string) {
    const { code, syscall } = error as NodeJS.ErrnoException;
    super(`${(error as Error).message.split(', ')[0]}, ${syscall ?? 'remove'} '${shown}'`, { cause: error });
    this.code = code;
    this.syscall = syscall;
    this.path = shown;
  }
}

/**
 * Opens a directory of a tree being removed and makes it ours alone: owner rwx, nothing for anyone else, so
 * its entries can be unlinked even when the backup gave it 0555, and nobody else can swap one while we work.
 * Returns null when it is not a directory (any more).
 */
function openForRemoval(handle: string | Buffer): number | null {
  let fd: number;
  try {
    fd = openSync(handle, OPEN_DIR);
  } catch (error) {
    const code = systemErrorCode(error);
    if (code === 'ENOTDIR' || code === 'ELOOP') return null;
    if (code !== 'EACCES') throw error;
    // No read permission (mode 0300, 0000): only a chmod by name helps. The parent was made ours alone before
    // it was listed, so nobody else can have swapped the name for a link since the open failed on a directory.
    chmodSync(handle, 0o700);
    fd = openSync(handle, OPEN_DIR);
  }
  if ((fstatSync(fd).mode & 0o7777) !== 0o700) {
    try {
      fchmodSync(fd, 0o700);
    } catch (error) {
      // Not ours to change (another user's folder in a rollback copy): remove what its mode allows.
      if (systemErrorCode(error) !== 'EPERM') {
        closeSync(fd);
        throw error;
      }
    }
  }
  return fd;
}

/**
 * Removes whatever is at `handle`: a directory with everything in it, or a file, link or special file. Names
 * are listed as bytes, so a name that is not UTF-8 is removed too.
 */
function removeEntry(handle: string | Buffer, shown: string, isDirectory: boolean): void {
  try {
    if (!isDirectory) {
      try {
        unlinkSync(handle);
        return;
      } catch (error) {
        // Listed as a file but a directory now (or unlink of a directory on macOS): remove it as one.
        if (systemErrorCode(error) !== 'EISDIR' && systemErrorCode(error) !== 'EPERM') throw error;
      }
    }
    const fd = openForRemoval(handle);
    if (fd === null) {
      unlinkSync(handle);
      return;
    }
    try {
      // Entries are reached through the open descriptor, so a directory renamed or swapped for a symlink while
      // we work is never followed out of the tree (the rm -r race). Without /proc the names are all there is.
      const dir = Buffer.concat([
        Buffer.from(CAN_LOCATE_FDS ? `/proc/self/fd/${fd}` : handle),
        Buffer.from('/'),
      ]);
      for (const entry of readdirSync(dir, { withFileTypes: true, encoding: 'buffer' })) {
        removeEntry(Buffer.concat([dir, entry.name]), `${shown}/${entry.name}`, entry.isDirectory());
      }
    } finally {
      closeSync(fd);
    }
    rmdirSync(handle);
  } catch (error) {
    if (error instanceof RemovalError) throw error;
    if (systemErrorCode(error) === 'ENOENT') return;
    throw new RemovalError(error, shown);
  }
}

/**
 * Removes a tree statesnap made or owns (a partial backup, a staging tree, a replaced backup, a rollback copy);
 * gone already is fine. Read-only directories, which a backup or a restore keeps from the source, are made
 * writable on the way down, as `rm -r` run by their non-root owner would not. Throws the first system error
 * that stops it (EPERM for an immutable file, EBUSY for a mount point, ...), naming the path.
 */
export function removeTree(path: string): void {
  const stats = lstatSync(fsPath(path), { throwIfNoEntry: false });
  if (stats !== undefined) removeEntry(fsPath(path), path, stats.isDirectory());
}
