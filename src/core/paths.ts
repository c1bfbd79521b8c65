// Where an operation's two trees are, checked before any I/O: real paths resolved once, and a tree that is
// written refused when it overlaps the tree that is read.

import { type BigIntStats, existsSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { describeCause, StatesnapError } from './errors.js';

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

export interface ResolvedPaths {
  /** Real path of the source directory (symlinks in the given path resolved once, here). */
  source: string;
  /** Absolute destination with its parent's symlinks resolved. */
  dest: string;
}

/**
 * Refuses a destination equal to, inside, or containing the source, comparing resolved path segments and
 * the dev+ino of every ancestor (as Node's fs.cp does), so bind mounts and symlinked parents are caught too.
 */
export function resolveBackupPaths(source: string, dest: string): ResolvedPaths {
  let sourceStats: BigIntStats;
  let sourceReal: string;
  try {
    sourceStats = statSync(source, { bigint: true });
    sourceReal = realpathSync(source);
  } catch (error) {
    throw new StatesnapError(
      'ERR_SOURCE_UNREADABLE',
      `cannot read source ${source}: ${describeCause(error)}`,
      {
        path: source,
        cause: error,
      },
    );
  }
  if (!sourceStats.isDirectory()) {
    throw new StatesnapError('ERR_SOURCE_NOT_DIRECTORY', `source ${source} is not a directory`, {
      path: source,
    });
  }
  const destAbsolute = resolve(dest);
  let destParentReal: string;
  try {
    destParentReal = realpathSync(dirname(destAbsolute));
  } catch (error) {
    throw new StatesnapError(
      'ERR_DEST_WRITE',
      `cannot use destination ${dest}: its parent directory is not usable (${describeCause(error)})`,
      { path: dest, cause: error },
    );
  }
  const destReal = join(destParentReal, basename(destAbsolute));
  const overlap = (how: string) =>
    new StatesnapError('ERR_DEST_OVERLAPS_SOURCE', `destination ${dest} ${how} source ${source}`, {
      path: dest,
    });
  if (destReal === sourceReal) throw overlap('is the same directory as');
  if (isWithin(sourceReal, destReal)) throw overlap('is inside');
  if (isWithin(destReal, sourceReal)) throw overlap('contains');
  for (const ancestor of ancestors(destParentReal)) {
    const stats = statSync(ancestor, { bigint: true });
    if (stats.dev === sourceStats.dev && stats.ino === sourceStats.ino) throw overlap('is inside');
  }
  const destStats = statIfExists(destReal);
  if (destStats?.isDirectory()) {
    for (const ancestor of ancestors(sourceReal)) {
      const stats = statSync(ancestor, { bigint: true });
      if (stats.dev === destStats.dev && stats.ino === destStats.ino) throw overlap('contains');
    }
  }
  return { source: sourceReal, dest: destReal };
}

function statIfExists(path: string): BigIntStats | undefined {
  try {
    return statSync(path, { bigint: true });
  } catch {
    return undefined;
  }
}
