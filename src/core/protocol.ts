// The plain-data protocol between the main thread and the file workers, and the entry kinds both sides name.
// Only strings, numbers, bigints, arrays and plain objects cross the thread boundary (plus the one shared stop
// flag): an Error posted from a worker arrives without its `code`, `syscall` and `path`, and Stats without their
// methods, so failures travel as `PlainError`.

export type EntryKind = 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'char-device' | 'block-device';
export type SkippedKind = Exclude<EntryKind, 'file' | 'dir'>;

export interface PlainError {
  code: string | undefined;
  message: string;
  syscall: string | undefined;
  path: string | undefined;
}

/** One file the main thread has decided to copy. `rel` is the validated relative path (POSIX separators). */
export interface FileOp {
  rel: string;
  size: number;
  /** Identity seen by the planner (bigint lstat); a mismatch at open time means the entry was swapped. */
  dev?: bigint;
  ino?: bigint;
  /** Attributes to give the copy when they come from an index (restore) rather than from the source file. */
  mode?: number;
  mtimeNs?: string;
  /** Expected content hash (restore, verify): a mismatch is reported as `corrupt`. */
  hash?: string;
}

/** Where workers read a batch's files, and what they may trust about them. */
export interface ReadSpec {
  root: string;
  /** Real path every opened file must lie under (checked on the open fd); null where the OS cannot tell. */
  confineTo: string | null;
  /** Copies take mode and mtime from the opened file (a live tree, an Oxios tree) or from the op (an index). */
  attributesFrom: 'source' | 'op';
  /** How often a file that changed while being read is read again before it is reported. */
  changedRetries: number;
  /** The op's `size` is what the file must hold (a backup): another size is `corrupt`, found before reading. */
  expectSize: boolean;
}

/** Where workers write a batch's files. */
export interface WriteSpec {
  root: string;
  /** Real path every written file must lie under (a merge restore into a live target); null: a fresh tree of ours. */
  confineTo: string | null;
  /** `create`: the destination is a fresh tree of ours; `replace`: write a temp file beside it and rename over. */
  writeMode: 'create' | 'replace';
}

/** Read each file, hash it and write it to `to`. */
export interface CopyTask {
  kind: 'copy';
  files: FileOp[];
  from: ReadSpec;
  to: WriteSpec;
}

/** Check each file where it is: opened (never through a link), confined, its type and size, and its hash. */
export interface HashTask {
  kind: 'hash';
  files: FileOp[];
  from: ReadSpec;
  /**
   * false: only open, check confinement, type and size, without reading: the structural checks a restore
   * keeps with `--no-verify`. The outcome's `hash` is then ''.
   */
  readContent: boolean;
}

/**
 * A batch of per-file operations of one kind. A new kind (a hard link to a previous backup's copy, a pack of
 * files for object storage) is a new member here and a new entry in the worker's table; the pool carries any.
 */
export type WorkerTask = CopyTask | HashTask;

/**
 * What the pool posts to a worker: the task, and the run's stop flag, an Int32Array over a SharedArrayBuffer
 * (shared, not copied, by postMessage) whose element 0 the main thread sets to non-zero when the run stops.
 * The worker checks it between files and between chunks of a large file, removes the file it was writing and
 * returns early: a worker thread is never terminated mid-task, since every thread of the process shares one
 * descriptor table and a terminated thread's open descriptors would leak.
 */
export interface WorkerRequest {
  task: WorkerTask;
  stop: Int32Array;
}

/** Why a file was not copied (or did not verify). Everything but `dest-failed` is a per-file problem. */
export type FileProblem =
  | 'vanished'
  | 'changed'
  | 'not-regular'
  | 'escaped'
  | 'unreadable'
  | 'corrupt'
  | 'dest-failed';

export type FileOutcome =
  | {
      ok: true;
      rel: string;
      size: number;
      mode: number;
      mtimeNs: string;
      hash: string;
      /** The path held a different file than planned (renamed over); the new one was copied. */
      replaced: boolean;
    }
  | {
      ok: false;
      rel: string;
      problem: FileProblem;
      message: string;
      /** The system error behind the problem (its errno `code`, syscall and path), when there was one. */
      cause: PlainError | undefined;
    };

/** What every task kind returns; a kind may add fields (a pack task: the pack's bytes, moved, not copied). */
export interface TaskResult {
  /**
   * One per file, in the batch's order. A batch stops early after a `dest-failed`, and when the run stops
   * (the stop flag), without an outcome for the file it was working on.
   */
  outcomes: FileOutcome[];
  /** Bytes of the files done. */
  bytes: number;
}

export const HASH_ALGORITHM = 'sha256';

/**
 * A nanosecond timestamp as the seconds `fs.utimes`/`futimes` take. libuv keeps microseconds and truncates
 * (uv__fs_to_timespec): `Number(ns) / 1e9` lands just below the wanted value for most timestamps (1.65e18 ns
 * is past 2^53), giving mtimes a microsecond, or a whole millisecond (…250 ms → …249.999), too early.
 * Whole microseconds are exact in a double, and half a microsecond more survives the division's rounding
 * (≤ 0.12 µs here), so the truncation lands exactly on the microsecond.
 */
export function utimeSeconds(ns: bigint): number {
  return (Number(ns / 1000n) + 0.5) / 1e6;
}
