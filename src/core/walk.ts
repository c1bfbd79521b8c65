// Walks a tree with lstat, never following a symlink, and reports every entry in canonical order (index-order.ts:
// a directory before its contents, each directory's entries by name, directories in preorder): backup plans its copy with it, and verify, inspect and the Oxios backup reader list trees with it.
// Names that are not valid UTF-8 are kept byte for byte (protocol.ts says how such paths travel as strings).
// Synchronous readdir/lstat in bounded slices: an awaited fs.promises.lstat costs ~60 µs per entry, a
// synchronous one ~5 µs (docs/performance.md); the walk yields to the event loop between slices.

import {
  type BigIntStats,
  closeSync,
  constants,
  type Dirent,
  lstatSync,
  openSync,
  readdirSync,
  readlinkSync,
} from 'node:fs';
import {
  abortError,
  assert,
  describeCause,
  outOfResourcesAt,
  StatesnapError,
  systemErrorCode,
} from './errors.js';
import { compareNames, orderedPath } from './index-order.js';
import { CAN_LOCATE_FDS } from './paths.js';
import {
  clampTimestampNs,
  type EntryKind,
  type FileOp,
  fsPath,
  nameFromBytes,
  type SkippedKind,
} from './protocol.js';

export interface PlannedDir {
  /** '' for the root itself. */
  rel: string;
  mode: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  /** The owner, where known (a walk's lstat, a format-2 index): a restore run as root gives it back. */
  uid?: number;
  gid?: number;
}

export type WalkProblem = 'vanished' | 'unreadable' | 'unsupported-name' | 'escaped';

/** Why an entry is not copied: its own kind, an exclude pattern, or a name reserved for a backup's own files. */
export type SkipKind = SkippedKind | 'excluded' | 'reserved';

/** Receives a tree's entries in order: a directory before anything inside it. */
export interface EntrySink {
  dir(dir: PlannedDir): void;
  /**
   * May return a promise to apply backpressure: the stream waits for it. A walk passes the lstat it planned
   * the file from (what a snapshot's change rule compares).
   */
  file(op: FileOp, stats?: BigIntStats): undefined | Promise<void>;
  skip(rel: string, kind: SkipKind): void;
  problem(rel: string, problem: WalkProblem, message: string): void;
}

export interface WalkOptions {
  /** What the walked tree is, for the error that says it cannot be read. */
  tree: 'source' | 'backup';
  /** Whether the entry at this relative POSIX path is left out (a directory: with everything below it). */
  isExcluded: (rel: string, isDirectory: boolean) => boolean;
  /** Names directly under the root that belong to statesnap's own backup layout. */
  reservedRootNames: ReadonlySet<string>;
  signal: AbortSignal;
  /**
   * false: a file readdir reports as regular is planned by name, without an lstat (its size is 0 in the op,
   * unknown until a worker reads it): whoever opens it stats the descriptor it opened. Entries of unknown
   * type and directories are still lstat'ed. @default true
   */
  statFiles?: boolean;
  /** Sees each directory's listing before its entries are visited, with their names (null: the entries' own). */
  listed?: (
    dirRel: string,
    entries: readonly (Dirent | Dirent<Buffer>)[],
    names: readonly string[] | null,
  ) => void;
}

// How many entries are handled between two yields to the event loop, so pool results keep flowing.
const ENTRIES_PER_SLICE = 2048;

/**
 * The kind of a readdir entry or an lstat result (both answer the same is…() questions). Undefined only for
 * a Dirent of type DT_UNKNOWN: some filesystems do not report types in readdir, and lstat must tell.
 */
function kindOf(entry: Dirent | Dirent<Buffer> | BigIntStats): EntryKind | undefined {
  if (entry.isFile()) return 'file';
  if (entry.isDirectory()) return 'dir';
  if (entry.isSymbolicLink()) return 'symlink';
  if (entry.isFIFO()) return 'fifo';
  if (entry.isSocket()) return 'socket';
  if (entry.isCharacterDevice()) return 'char-device';
  if (entry.isBlockDevice()) return 'block-device';
  return undefined;
}

function plannedDir(rel: string, stats: BigIntStats): PlannedDir {
  return {
    rel,
    mode: Number(stats.mode) & 0o7777,
    atimeNs: clampTimestampNs(stats.atimeNs),
    mtimeNs: clampTimestampNs(stats.mtimeNs),
    uid: Number(stats.uid),
    gid: Number(stats.gid),
  };
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolveYield) => setImmediate(resolveYield));
}

// Every directory is opened without following a symlink and read through its descriptor (/proc/self/fd/N on
// Linux), after checking where the kernel says it lives: a folder swapped for a symlink to outside the source
// mid-walk is never listed into the plan, and its entries are lstat'ed in the directory that was checked.
// The root itself may be given through a symlink (inspect takes any path), so it alone is followed.
const OPEN_ROOT = constants.O_RDONLY | constants.O_DIRECTORY;
const OPEN_DIR = OPEN_ROOT | constants.O_NOFOLLOW;

/** A listing error as the entry's problem; running out of descriptors or memory fails the walk instead. */
function walkProblemOf(error: unknown, path: string): WalkProblem {
  const outOfResources = outOfResourcesAt(path, error);
  if (outOfResources) throw outOfResources;
  const code = systemErrorCode(error);
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP' ? 'vanished' : 'unreadable';
}

/** A directory being listed: where it is as the source names it (`path`) and as it was checked (`base`). */
interface ListedDir {
  rel: string;
  path: string;
  base: string;
}

/**
 * Decides one entry of a listed directory (`name` is its name as a string) and tells the sink. Returns the
 * entry's relative path when it is a directory to walk, or the sink's backpressure promise for a file.
 */
function visit(
  entry: Dirent | Dirent<Buffer>,
  name: string,
  dir: ListedDir,
  options: WalkOptions,
  sink: EntrySink,
): string | Promise<void> | undefined {
  const rel = dir.rel === '' ? name : `${dir.rel}/${name}`;
  const kind = kindOf(entry);
  if (dir.rel === '' && options.reservedRootNames.has(name)) sink.skip(rel, 'reserved');
  else if (kind !== undefined && options.isExcluded(rel, kind === 'dir')) sink.skip(rel, 'excluded');
  else if (name.includes('\\')) {
    sink.problem(rel, 'unsupported-name', 'a backslash in a name cannot be stored in a portable index');
  } else if (kind !== 'file' && kind !== 'dir' && kind !== undefined) sink.skip(rel, kind);
  else if (kind === 'file' && options.statFiles === false) return sink.file({ rel, size: 0 });
  // An entry of unknown type is asked about the excludes once lstat has told whether it is a directory.
  else return visitStatted(rel, name, dir, kind === undefined ? options.isExcluded : null, sink);
  return undefined;
}

/**
 * A directory's entries, and their names as strings when the entries' own are not (null: they are). A string
 * listing shows a name that is not UTF-8 with U+FFFD, which names another file or none; only a directory
 * whose listing shows U+FFFD is listed again as bytes, so the common all-UTF-8 case costs one scan of names.
 */
function listDirectory(path: string): { entries: Dirent[] | Dirent<Buffer>[]; names: string[] | null } {
  const entries = readdirSync(fsPath(path), { withFileTypes: true });
  if (!entries.some((entry) => entry.name.includes('\uFFFD'))) return { entries, names: null };
  const raw = readdirSync(fsPath(path), { withFileTypes: true, encoding: 'buffer' });
  return { entries: raw, names: raw.map((entry) => nameFromBytes(entry.name)) };
}

/**
 * A file or directory is lstat'ed before it is planned; so is an entry of unknown type, then asked about the
 * excludes (`isExcluded`) once its type is known.
 */
function visitStatted(
  rel: string,
  name: string,
  dir: ListedDir,
  isExcluded: WalkOptions['isExcluded'] | null,
  sink: EntrySink,
): string | Promise<void> | undefined {
  let stats: BigIntStats;
  try {
    // Concatenation, not path.join: the name comes from readdir, and join's normalising costs measurable time
    // per entry on a 100k-entry walk. A file is lstat'ed by path (through /proc it costs ~20% more walk time,
    // and what the index records about a file comes from the worker's fstat of its confined descriptor);
    // anything else is lstat'ed again in the checked directory, so a directory's planned mode and mtime never
    // come from outside the source.
    stats = lstatSync(fsPath(`${dir.path}/${name}`), { bigint: true });
    if (dir.base !== dir.path && !stats.isFile()) {
      stats = lstatSync(fsPath(`${dir.base}/${name}`), { bigint: true });
    }
  } catch (error) {
    sink.problem(rel, walkProblemOf(error, `${dir.path}/${name}`), describeCause(error));
    return undefined;
  }
  const kind = kindOf(stats); // the entry may have been swapped since readdir
  assert(kind !== undefined, `lstat of ${rel} reported no file type`);
  if (isExcluded?.(rel, kind === 'dir')) {
    sink.skip(rel, 'excluded');
    return undefined;
  }
  if (kind === 'dir') {
    sink.dir(plannedDir(rel, stats));
    return rel;
  }
  if (kind === 'file')
    return sink.file({ rel, size: Number(stats.size), dev: stats.dev, ino: stats.ino }, stats);
  sink.skip(rel, kind);
  return undefined;
}

/**
 * Walks `root` depth-first. The root must be a directory (checked by the caller). Entries that cannot be
 * represented in a portable index (a backslash in the name) are reported, not copied.
 */
export async function walk(root: string, options: WalkOptions, sink: EntrySink): Promise<void> {
  const unreadable = (error: unknown) => treeUnreadable(options.tree, root, error);
  let rootStats: BigIntStats;
  try {
    rootStats = lstatSync(fsPath(root), { bigint: true });
  } catch (error) {
    throw unreadable(error); // vanished since the caller checked it
  }
  sink.dir(plannedDir('', rootStats));
  const pending: string[] = [''];
  let within = '';
  let sinceYield = 0;
  while (pending.length > 0) {
    const dirRel = pending.pop()!;
    let fd: number;
    try {
      fd = openSync(fsPath(dirRel === '' ? root : `${root}/${dirRel}`), dirRel === '' ? OPEN_ROOT : OPEN_DIR);
    } catch (error) {
      if (dirRel === '') throw unreadable(error);
      const code = systemErrorCode(error);
      const message =
        code === 'ELOOP' || code === 'ENOTDIR'
          ? 'is no longer a directory (replaced by a symlink or a file); not followed'
          : describeCause(error);
      sink.problem(dirRel, walkProblemOf(error, `${root}/${dirRel}`), message);
      continue;
    }
    try {
      const path = dirRel === '' ? root : `${root}/${dirRel}`;
      let base = path;
      if (CAN_LOCATE_FDS) {
        base = `/proc/self/fd/${fd}`;
        const actual = readlinkSync(base);
        if (dirRel === '') within = actual === '/' ? '/' : `${actual}/`;
        else if (!actual.startsWith(within)) {
          sink.problem(
            dirRel,
            'escaped',
            `resolved outside the source (to ${actual}): a path component was swapped; not read`,
          );
          continue;
        }
      }
      let listing: ReturnType<typeof listDirectory>;
      try {
        listing = listDirectory(base);
      } catch (error) {
        if (dirRel === '') throw unreadable(error);
        sink.problem(dirRel, walkProblemOf(error, `${root}/${dirRel}`), describeCause(error));
        continue;
      }
      const listed: ListedDir = { rel: dirRel, path, base };
      const { entries, names } = listing;
      options.listed?.(dirRel, entries, names);
      const subdirectories: string[] = [];
      for (const i of canonicalOrder(entries, names)) {
        const entry = entries[i]!;
        const next = visit(entry, names?.[i] ?? (entry.name as string), listed, options, sink);
        if (typeof next === 'string') subdirectories.push(next);
        else if (next) await next;
        if (++sinceYield >= ENTRIES_PER_SLICE) {
          sinceYield = 0;
          await yieldToEventLoop();
          if (options.signal.aborted) throw abortError(options.signal, root);
        }
      }
      // Popped in name order: directory blocks follow in preorder, as the canonical order has them.
      for (let i = subdirectories.length - 1; i >= 0; i--) pending.push(subdirectories[i]!);
    } finally {
      closeSync(fd);
    }
  }
}

/**
 * The positions of a directory's entries in canonical order (by the names' bytes). Linux's readdir, as Node
 * returns it, is already in that order (libuv sorts with strcmp): that costs one linear check; anything else
 * is sorted, so the order never depends on libuv.
 */
function canonicalOrder(entries: Dirent[] | Dirent<Buffer>[], names: string[] | null): number[] {
  const keys = entries.map((entry, i) => orderedPath(names?.[i] ?? (entry.name as string)));
  const positions = keys.map((_, i) => i);
  for (let i = 1; i < keys.length; i++) {
    if (compareNames(keys[i - 1]!, keys[i]!) >= 0) {
      return positions.sort((a, b) => compareNames(keys[a]!, keys[b]!));
    }
  }
  return positions;
}

/** The error for a tree whose root cannot be read: the source of a backup, or a backup being read. */
export function treeUnreadable(tree: WalkOptions['tree'], root: string, error: unknown): StatesnapError {
  return (
    outOfResourcesAt(root, error) ??
    new StatesnapError(
      tree === 'source' ? 'ERR_SOURCE_UNREADABLE' : 'ERR_FILE_UNREADABLE',
      `cannot read ${tree} ${root}: ${describeCause(error)}`,
      { path: root, cause: error },
    )
  );
}
