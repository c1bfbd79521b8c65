// Where an operation's two trees are, checked before any I/O: real paths resolved once, and a tree that is
// written refused when it overlaps the tree that is read. And how a path is written in a printed command.

import { type BigIntStats, existsSync, lstatSync, mkdirSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describeCause, type ErrorCode, StatesnapError, systemErrorCode } from './errors.js';

/** Whether the kernel tells where an open descriptor lives (/proc/self/fd, Linux): the containment checks need it. */
export const CAN_LOCATE_FDS = existsSync('/proc/self/fd');

export function isWithin(parent: string, child: string): boolean {
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

interface WritePath {
  /** Absolute, its existing parents' symlinks resolved, the rest kept as given. */
  write: string;
  /** Directories above `write` that do not exist yet, outermost first. */
  missingParents: string[];
}

function parentUnusable(path: string, roles: Pick<PathRoles, 'write' | 'unusable'>, error: unknown) {
  return new StatesnapError(
    roles.unusable,
    `cannot use ${roles.write} ${path}: its parent directory is not usable (${describeCause(error)})`,
    { path, cause: error },
  );
}

/** Where `path` will be written, and which of its parent directories are missing. */
function locateWritePath(path: string, roles: Pick<PathRoles, 'write' | 'unusable'>): WritePath {
  const absolute = resolve(path);
  const missing: string[] = [];
  for (let parent = dirname(absolute); ; parent = dirname(parent)) {
    try {
      const real = realpathSync(parent);
      if (!statSync(real).isDirectory()) {
        throw Object.assign(new Error(`ENOTDIR: ${parent} is not a directory`), { code: 'ENOTDIR' });
      }
      const below = relative(parent, absolute);
      return {
        write: join(real, below),
        missingParents: missing.map((dir) => join(real, relative(parent, dir))),
      };
    } catch (error) {
      if (systemErrorCode(error) !== 'ENOENT' || dirname(parent) === parent)
        throw parentUnusable(path, roles, error);
      missing.unshift(parent);
    }
  }
}

/**
 * A path to write, as statesnap uses it: absolute, its parent's symlinks resolved, the name itself kept. Its
 * parent must be a directory and the path must be reachable (`lstat` answers), so what cannot be used is
 * refused here, naming the path, before any run starts.
 */
export function resolveWritePath(path: string, roles: Pick<PathRoles, 'write' | 'unusable'>): string {
  const located = locateWritePath(path, roles);
  if (located.missingParents.length > 0) throw missingParent(path, located.missingParents, roles);
  refuseUnreachable(located.write, path, roles);
  return located.write;
}

/** Refuses a path to write that `lstat` cannot answer for (EACCES on a parent, ELOOP, ENAMETOOLONG, ...). */
function refuseUnreachable(
  written: string,
  path: string,
  roles: Pick<PathRoles, 'write' | 'unusable'>,
): void {
  try {
    lstatSync(written, { throwIfNoEntry: false });
  } catch (error) {
    throw new StatesnapError(roles.unusable, `cannot use ${roles.write} ${path}: ${describeCause(error)}`, {
      path,
      cause: error,
    });
  }
}

function missingParent(
  path: string,
  missing: readonly string[],
  roles: Pick<PathRoles, 'write' | 'unusable'>,
) {
  return new StatesnapError(
    roles.unusable,
    `cannot use ${roles.write} ${path}: its parent directory ${missing.at(-1)} does not exist (use --mkpath to create it)`,
    { path },
  );
}

/** Makes the directories `resolvePaths` found missing (`--mkpath`), outermost first. */
export function makeParents(missingParents: readonly string[], roles: Pick<PathRoles, 'unusable'>): void {
  const innermost = missingParents.at(-1);
  if (innermost === undefined) return;
  try {
    mkdirSync(innermost, { recursive: true });
  } catch (error) {
    throw new StatesnapError(
      roles.unusable,
      `cannot create the parent directory ${innermost}: ${describeCause(error)}`,
      { path: innermost, cause: error },
    );
  }
}

export interface ResolvedPaths {
  /** Real path of the directory that is read (symlinks in the given path resolved once, here). */
  read: string;
  /** The path that is written (see resolveWritePath). */
  write: string;
  /** Directories above `write` that do not exist yet (only with `mkpath`), outermost first: see makeParents. */
  missingParents: string[];
}

/** The directory that is read, as a real path, and its stat; refused when unreadable or not a directory. */
export function resolveReadPath(
  read: string,
  roles: Pick<PathRoles, 'read'>,
): { real: string; stats: BigIntStats } {
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
  return { real: readReal, stats: readStats };
}

/**
 * The written tree's half of `resolvePaths`, alone: for a tree read from elsewhere than the filesystem (object
 * storage), which nothing written here can overlap.
 */
export function resolveWriteTree(
  write: string,
  roles: PathRoles,
  options: { mkpath: boolean },
): Omit<ResolvedPaths, 'read'> {
  const { write: writeReal, missingParents } = locateWritePath(write, roles);
  if (missingParents.length > 0 && !options.mkpath) throw missingParent(write, missingParents, roles);
  if (missingParents.length === 0) refuseUnreachable(writeReal, write, roles);
  return { write: writeReal, missingParents };
}

/**
 * Refuses a written tree equal to, inside, or containing the tree that is read, comparing resolved path
 * segments and the dev+ino of every ancestor (as Node's fs.cp does), so bind mounts and symlinked parents are
 * caught too. Missing parents of the written tree are refused, or with `mkpath` listed for the caller to make
 * once every other check has passed (nothing is created inside the tree that is read).
 */
export function resolvePaths(
  read: string,
  write: string,
  roles: PathRoles,
  options: { mkpath: boolean } = { mkpath: false },
): ResolvedPaths {
  const { real: readReal, stats: readStats } = resolveReadPath(read, roles);
  const { write: writeReal, missingParents } = resolveWriteTree(write, roles, options);
  const overlap = (how: string) =>
    new StatesnapError(roles.overlap, `${roles.write} ${write} ${how} ${roles.read} ${read}`, {
      path: write,
    });
  if (writeReal === readReal) throw overlap('is the same directory as');
  if (isWithin(readReal, writeReal)) throw overlap('is inside');
  if (isWithin(writeReal, readReal)) throw overlap('contains');
  for (const ancestor of ancestors(dirname(missingParents[0] ?? writeReal))) {
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
  return { read: readReal, write: writeReal, missingParents };
}

function statIfExists(path: string): BigIntStats | undefined {
  try {
    return statSync(path, { bigint: true });
  } catch {
    return undefined;
  }
}

/** Quotes an argument for a POSIX shell only when it needs it, so printed commands stay readable. */
export function shellQuote(arg: string): string {
  if (/^[\w@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}
