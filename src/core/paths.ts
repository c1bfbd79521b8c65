// Where an operation's two trees are, checked before any I/O: real paths resolved once, and a tree that is
// written refused when it overlaps the tree that is read.

import { type BigIntStats, existsSync, lstatSync, realpathSync, type Stats, statSync } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { describeCause, type ErrorCode, StatesnapError } from './errors.js';

/** Whether the kernel tells where an open descriptor lives (/proc/self/fd, Linux): the containment checks need it. */
export const CAN_LOCATE_FDS = existsSync('/proc/self/fd');

function isWithin(parent: string, child: string): boolean {
  return child === parent || child.startsWith(parent.endsWith(sep) ? parent : parent + sep);
}

/** Every ancestor of `path` (itself included) up to the filesystem root. */
function* ancestors(path: string): Generator<string> {
  let current = path;
  for (;;) {
    yield current;
    const parent = dirname(current);
    if (parent === current) return;
    current = parent;
  }
}

/** How an operation names the tree it reads and the one it writes, and the codes that blame each. */
export interface PathRoles {
  read: string;
  write: string;
  /** The code for a written path that cannot be used (its parent missing, not a directory, not searchable). */
  unusable: ErrorCode;
  /** The code for a written tree that overlaps the tree that is read (a usage error). */
  overlap: ErrorCode;
}

export const SOURCE_AND_DESTINATION: PathRoles = {
  read: 'source',
  write: 'destination',
  unusable: 'ERR_DEST_WRITE',
  overlap: 'ERR_DEST_OVERLAPS_SOURCE',
};

export const BACKUP_AND_TARGET: PathRoles = {
  read: 'backup',
  write: 'target',
  unusable: 'ERR_TARGET_INVALID',
  overlap: 'ERR_TARGET_OVERLAPS_BACKUP',
};

/**
 * A path to write, as statesnap uses it: absolute, its parent's symlinks resolved, the name itself kept. Its
 * parent must be a directory and the path must be reachable (`lstat` answers), so what cannot be used is
 * refused here, naming the path, before any run starts.
 */
export function resolveWritePath(path: string, roles: Pick<PathRoles, 'write' | 'unusable'>): string {
  const unusable = (why: string, cause?: unknown) =>
    new StatesnapError(roles.unusable, `cannot use ${roles.write} ${path}: ${why}`, { path, cause });
  const absolute = resolve(path);
  let parent: string;
  let parentStats: Stats;
  try {
    parent = realpathSync(dirname(absolute));
    parentStats = statSync(parent);
  } catch (error) {
    throw unusable(`its parent directory is not usable (${describeCause(error)})`, error);
  }
  if (!parentStats.isDirectory()) throw unusable(`its parent ${parent} is not a directory`);
  const written = join(parent, basename(absolute));
  try {
    lstatSync(written, { throwIfNoEntry: false });
  } catch (error) {
    throw unusable(describeCause(error), error);
  }
  return written;
}

export interface ResolvedPaths {
  /** Real path of the directory that is read (symlinks in the given path resolved once, here). */
  read: string;
  /** The path that is written (see resolveWritePath). */
  write: string;
}

/**
 * Refuses a written tree equal to, inside, or containing the tree that is read, comparing resolved path
 * segments and the dev+ino of every ancestor (as Node's fs.cp does), so bind mounts and symlinked parents are
 * caught too.
 */
export function resolvePaths(read: string, write: string, roles: PathRoles): ResolvedPaths {
  let readStats: BigIntStats;
  let readReal: string;
  try {
    readStats = statSync(read, { bigint: true });
    readReal = realpathSync(read);
  } catch (error) {
    throw new StatesnapError(
      'ERR_SOURCE_UNREADABLE',
      `cannot read ${roles.read} ${read}: ${describeCause(error)}`,
      { path: read, cause: error },
    );
  }
  if (!readStats.isDirectory()) {
    throw new StatesnapError('ERR_SOURCE_NOT_DIRECTORY', `${roles.read} ${read} is not a directory`, {
      path: read,
    });
  }
  const writeReal = resolveWritePath(write, roles);
  const overlap = (how: string) =>
    new StatesnapError(roles.overlap, `${roles.write} ${write} ${how} ${roles.read} ${read}`, {
      path: write,
    });
  if (writeReal === readReal) throw overlap('is the same directory as');
  if (isWithin(readReal, writeReal)) throw overlap('is inside');
  if (isWithin(writeReal, readReal)) throw overlap('contains');
  for (const ancestor of ancestors(dirname(writeReal))) {
    const stats = statSync(ancestor, { bigint: true });
    if (stats.dev === readStats.dev && stats.ino === readStats.ino) throw overlap('is inside');
  }
  const writeStats = statIfExists(writeReal);
  if (writeStats?.isDirectory()) {
    for (const ancestor of ancestors(readReal)) {
      const stats = statSync(ancestor, { bigint: true });
      if (stats.dev === writeStats.dev && stats.ino === writeStats.ino) throw overlap('contains');
    }
  }
  return { read: readReal, write: writeReal };
}

function statIfExists(path: string): BigIntStats | undefined {
  try {
    return statSync(path, { bigint: true });
  } catch {
    return undefined;
  }
}
