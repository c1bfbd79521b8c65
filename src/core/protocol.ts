// The plain-data protocol between the main thread and the file workers, the entry kinds both sides name, and
// the two conversions both sides apply: paths with names that are not UTF-8, and timestamps for utimes.
// Only strings, numbers, bigints, arrays and plain objects cross the thread boundary (plus the one shared stop
// flag, and an unpack task's downloaded bytes and part stream, moved): an Error posted from a worker arrives without its `code`, `syscall` and `path`, and Stats without their
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
  /** The owner the index records (format 2), given to the copy where the write spec says `owners`. */
  uid?: number;
  gid?: number;
  /** Expected content hash (restore, verify): a mismatch is reported as `corrupt`. */
  hash?: string;
  /**
   * A snapshot into object storage: the walk's lstat found the file (possibly) unchanged since the previous
   * snapshot, whose copy of the content may be reused instead of uploading it again.
   */
  link?: LinkPlan;
  /**
   * A backup with a link source whose workers apply the change rule: the previous backup's index entry at
   * this path (a regular file there), which the worker compares with its own lstat of the source.
   */
  previous?: RecordedFile;
  /** Where the content lies in object storage (restoring a snapshot from there). */
  stored?: StoredContent;
}

/** How a file the change rule found (possibly) unchanged is taken from the previous backup. */
export interface LinkPlan {
  /** `link`: linked without reading it; `hash-then-link`: read and hashed, linked only on an equal hash. */
  action: 'link' | 'hash-then-link';
  /** What the previous backup's file must be (checked on the new link): its recorded size and permission bits. */
  size: number;
  mode: number;
  /** The previous index's content hash; undefined when it records none (the previous file is hashed then). */
  sha256: string | undefined;
  /** The source file as the lstat that planned the link saw it: what the index records about a file linked unread. */
  source: { mtimeNs: bigint; ctimeNs: bigint; ino: bigint; uid: number; gid: number };
  /** In object storage: where the previous snapshot's copy of the content lies (the new index points there). */
  stored?: StoredContent;
}

/** A regular file as the previous backup's index records it (identity fields absent in older indexes). */
export interface RecordedFile {
  size: number;
  /** Permission bits. */
  mode: number;
  mtimeNs: bigint | undefined;
  ctimeNs: bigint | undefined;
  ino: bigint | undefined;
  sha256: string | undefined;
}

/** The change rule's settings for one backup (core/change-rule.ts applies them). */
export interface ChangeRuleOptions {
  /**
   * When the previous backup started (ns since the epoch); undefined when its manifest does not say, which
   * makes every file racy.
   */
  previousStartNs: bigint | undefined;
  /** Files changed this close before the previous start may have changed again within one timestamp tick. */
  racyMarginNs: bigint;
  /** Leave the inode number out of the comparison (the store was restored or moved). */
  ignoreInode: boolean;
  /** Leave the ctime out of the comparison (the store was restored or moved). */
  ignoreCtime: boolean;
  /** Hash every file whose size and mode are unchanged and link only on an equal hash. */
  checksum: boolean;
}

/** Where a file's content lies in object storage: `size` bytes from `offset` of the data object `object`. */
export interface StoredContent {
  object: string;
  offset: number;
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
  /** Give each copy the owner its op records (a restore run as root); false: it belongs to whoever writes it. */
  owners: boolean;
  /** The permission bits a copy may get: all of them (0o7777), or all but setuid/setgid (a restore). */
  modeMask: number;
}

/** The setuid and setgid bits, which a restore drops unless asked to keep them. */
export const SETID_BITS = 0o6000;

/** Permission bits as people read them: `0755`, `4755`. */
export function formatMode(mode: number): string {
  return mode.toString(8).padStart(4, '0');
}

/** Read each file, hash it and write it to `to`. */
export interface CopyTask {
  kind: 'copy';
  files: FileOp[];
  from: ReadSpec;
  to: WriteSpec;
  /**
   * A batch planned without sizes: a file found to be at least this many bytes is handed back unread
   * (`TaskResult.handedBack`), to be sent as a task of its own, so one thread does not copy every large file
   * of a folder while the others run out of work.
   */
  handBackFrom?: number;
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
  /** A file whose permission bits differ from the op's `mode` is reported (`mode`): what verify checks. */
  compareMode: boolean;
}

/**
 * Copy each file, or hard-link it from the previous backup at `linkFrom` (its real path) where the change rule,
 * applied by the worker to its own lstat of the file against the file's `previous` entry, allows.
 */
export interface LinkTask extends Omit<CopyTask, 'kind'> {
  kind: 'link';
  /** The change rule the worker applies to each file that carries its `previous` entry. */
  rule: ChangeRuleOptions;
  linkFrom: {
    root: string;
    /** Check each directory linked from is exactly where the previous backup has it (null: the OS cannot tell). */
    confined: boolean;
  };
}

/** A file of an `unpack` task: its content is `size` bytes at `at` in the task's data. */
export type UnpackedFile = FileOp & { at: number };

/**
 * Write (or only check) the files held in one downloaded range of an object: each file's content is hashed
 * and compared with its op's `hash` before its name appears at `to`. `to` null: only hash them (verify).
 */
export interface UnpackTask {
  kind: 'unpack';
  /** The downloaded bytes, moved (not copied) to the worker. */
  data: ArrayBuffer;
  /** How messages name where the bytes came from: the object and the range of it `data` holds. */
  origin: string;
  files: UnpackedFile[];
  to: WriteSpec | null;
  /** One file larger than a download: `data` is its first part, the others arrive in order through here. */
  stream?: PartStream;
}

/**
 * The later parts of a file that is downloaded in parts. The main thread posts `PartMessage`s on `port`; the
 * counters (an Int32Array over `counters`, indexed by `PART_COUNTER`) let the worker wait for a part without
 * an event loop, and the main thread stay at most a few parts ahead (bounded memory for any file size).
 */
export interface PartStream {
  /** node:worker_threads' MessagePort (Node's global of that name), named without an import. */
  port: InstanceType<typeof MessagePort>;
  counters: SharedArrayBuffer;
  /** Parts of the file, the first (the task's `data`) included. */
  parts: number;
}

export const PART_COUNTER = { posted: 0, taken: 1, done: 2 } as const;

/** A part of a streamed file, moved to the worker; or why the rest of the file cannot be downloaded. */
export type PartMessage =
  | { data: ArrayBuffer }
  | { failed: { problem: Extract<FileProblem, 'corrupt' | 'unreadable'>; message: string } };

/**
 * Read, check and hash each file (as `copy` does) and append it as a tar member to a pack being built in
 * shared memory, for object storage. A file with a `link` plan is not read (its outcome comes from the
 * plan); one with a `hash-then-link` plan is read and hashed, and appended only when its hash or mode
 * differs from the plan's. A file that grew past the room the slot has left is reported `changed`.
 */
export interface PackTask {
  kind: 'pack';
  files: FileOp[];
  from: ReadSpec;
  /** The data object the pack becomes, echoed in the result. */
  key: string;
  /** The pack's bytes are written from its start; null when no file of the batch is to be read. */
  slot: SharedArrayBuffer | null;
}

/**
 * Stream one large file out as a one-member tar, through a ring of `RING_SLOTS` shared part slots: the worker
 * fills slot `n % RING_SLOTS` with part `n` (every part `partBytes` long but the last), sets its state to
 * `PART_FULL` with its length, and waits while the next slot is not `PART_EMPTY`; after the last part it sets
 * the next slot's state to `PARTS_END`. The main thread empties a slot (and notifies) once its part is
 * uploaded, and raises `RING_ABORT` when the upload failed, which ends the task with a `dest-failed` outcome.
 */
export interface StreamOutTask {
  kind: 'stream-out';
  files: FileOp[];
  from: ReadSpec;
  key: string;
  partBytes: number;
  ring: SharedArrayBuffer;
  /** Int32Array: per slot its state, then per slot its length, the abort flag, then per slot its part number. */
  states: SharedArrayBuffer;
}

export const RING_SLOTS = 3;
export const PART_EMPTY = 0;
export const PART_FULL = 1;
export const PARTS_END = 2;
/** Index in a stream's states of slot `n`'s part length. */
export const RING_LENGTH = (slot: number) => RING_SLOTS + slot;
/** Index in a stream's states of the abort flag. */
export const RING_ABORT = 2 * RING_SLOTS;
/** Index in a stream's states of the number (from 0) of the part slot `n` holds. */
export const RING_PART = (slot: number) => RING_ABORT + 1 + slot;
export const RING_STATES = RING_ABORT + 1 + RING_SLOTS;

/** What a `pack` or `stream-out` task returns besides the outcomes. */
export interface PackResult extends TaskResult {
  key: string;
  /** Per outcome: where the file's content starts in the object; -1 when nothing was appended. */
  offsets: number[];
  /** Bytes of the object (end blocks included); 0 when nothing was appended. */
  length: number;
  /** Of a pack's bytes (hex, base64); a stream's parts are hashed where they are uploaded. */
  sha256?: string;
  md5?: string;
}

/**
 * A batch of per-file operations of one kind. A new kind (a hard link to a previous backup's copy, a pack of
 * files for object storage) is a new member here and a new entry in the worker's table; the pool carries any.
 */
export type WorkerTask = CopyTask | HashTask | LinkTask | PackTask | StreamOutTask | UnpackTask;

/**
 * A batch's files as they cross the thread boundary: the structured clone of an object per file (with its
 * bigints and link plan) cost more main-thread time than linking the file; a few strings and typed arrays
 * cost almost none. Strings are NUL-terminated (NUL is never part of a name, a hash or a number).
 */
export interface PackedFiles {
  count: number;
  /** Per file: its `rel`, then its `mtimeNs`, `hash` and link plan's `sha256` where the fields say so. */
  strings: string;
  /**
   * Per file, NUMBERS_PER_FILE: size, mode, uid, gid, fields, then the link plan's size, mode, uid, gid and
   * stored offset.
   */
  numbers: Float64Array;
  /** Per file, IDS_PER_FILE: dev, ino, the link plan's source ino. */
  ids: BigUint64Array;
  /** Per file, TIMES_PER_FILE: the link plan's source mtime and ctime (unless they are wider than 64 bits). */
  times: BigInt64Array;
}

const NUMBERS_PER_FILE = 10;
const IDS_PER_FILE = 3;
const TIMES_PER_FILE = 2;
const HAS_MODE = 1;
const HAS_OWNER = 2;
const HAS_IDENTITY = 4;
const HAS_MTIME = 8;
const HAS_HASH = 16;
const HAS_LINK = 32;
const LINK_HASHES_FIRST = 64;
const LINK_HAS_SHA256 = 128;
// A timestamp beyond 64 bits of nanoseconds (after 2262 or before 1677: btrfs and tmpfs can store them)
// travels as a string.
const LINK_WIDE_TIMES = 256;
const LINK_STORED = 512;
// A `previous` entry shares the link plan's slots (an op carries one or the other): size, mode, ino, times.
const HAS_PREVIOUS = 1024;
const PREVIOUS_HAS_MTIME = 2048;
const PREVIOUS_HAS_CTIME = 4096;
const PREVIOUS_HAS_INO = 8192;

function fitsInt64(value: bigint): boolean {
  return BigInt.asIntN(64, value) === value;
}

export function packFiles(files: readonly FileOp[]): PackedFiles {
  const count = files.length;
  const numbers = new Float64Array(count * NUMBERS_PER_FILE);
  const ids = new BigUint64Array(count * IDS_PER_FILE);
  const times = new BigInt64Array(count * TIMES_PER_FILE);
  let strings = '';
  for (let i = 0; i < count; i++) {
    const op = files[i]!;
    const n = i * NUMBERS_PER_FILE;
    let fields = 0;
    strings += `${op.rel}\0`;
    numbers[n] = op.size;
    if (op.mode !== undefined) {
      fields |= HAS_MODE;
      numbers[n + 1] = op.mode;
    }
    if (op.uid !== undefined && op.gid !== undefined) {
      fields |= HAS_OWNER;
      numbers[n + 2] = op.uid;
      numbers[n + 3] = op.gid;
    }
    if (op.dev !== undefined && op.ino !== undefined) {
      fields |= HAS_IDENTITY;
      ids[i * IDS_PER_FILE] = op.dev;
      ids[i * IDS_PER_FILE + 1] = op.ino;
    }
    if (op.mtimeNs !== undefined) {
      fields |= HAS_MTIME;
      strings += `${op.mtimeNs}\0`;
    }
    if (op.hash !== undefined) {
      fields |= HAS_HASH;
      strings += `${op.hash}\0`;
    }
    const { link } = op;
    if (link !== undefined) {
      fields |= HAS_LINK | (link.action === 'hash-then-link' ? LINK_HASHES_FIRST : 0);
      numbers[n + 5] = link.size;
      numbers[n + 6] = link.mode;
      numbers[n + 7] = link.source.uid;
      numbers[n + 8] = link.source.gid;
      ids[i * IDS_PER_FILE + 2] = link.source.ino;
      const { mtimeNs, ctimeNs } = link.source;
      if (fitsInt64(mtimeNs) && fitsInt64(ctimeNs)) {
        times[i * TIMES_PER_FILE] = mtimeNs;
        times[i * TIMES_PER_FILE + 1] = ctimeNs;
      } else {
        fields |= LINK_WIDE_TIMES;
        strings += `${mtimeNs}\0${ctimeNs}\0`;
      }
      if (link.sha256 !== undefined) {
        fields |= LINK_HAS_SHA256;
        strings += `${link.sha256}\0`;
      }
      if (link.stored !== undefined) {
        fields |= LINK_STORED;
        strings += `${link.stored.object}\0`;
        numbers[n + 9] = link.stored.offset;
      }
    } else if (op.previous !== undefined) {
      const { size, mode, mtimeNs, ctimeNs, ino, sha256 } = op.previous;
      fields |= HAS_PREVIOUS;
      numbers[n + 5] = size;
      numbers[n + 6] = mode;
      if (ino !== undefined) {
        fields |= PREVIOUS_HAS_INO;
        ids[i * IDS_PER_FILE + 2] = ino;
      }
      if (mtimeNs !== undefined) fields |= PREVIOUS_HAS_MTIME;
      if (ctimeNs !== undefined) fields |= PREVIOUS_HAS_CTIME;
      if ((mtimeNs === undefined || fitsInt64(mtimeNs)) && (ctimeNs === undefined || fitsInt64(ctimeNs))) {
        times[i * TIMES_PER_FILE] = mtimeNs ?? 0n;
        times[i * TIMES_PER_FILE + 1] = ctimeNs ?? 0n;
      } else {
        fields |= LINK_WIDE_TIMES;
        strings += `${mtimeNs ?? 0n}\0${ctimeNs ?? 0n}\0`;
      }
      if (sha256 !== undefined) {
        fields |= LINK_HAS_SHA256;
        strings += `${sha256}\0`;
      }
    }
    numbers[n + 4] = fields;
  }
  return { count, strings, numbers, ids, times };
}

/** Reads NUL-terminated strings one after the other: each call returns the next. */
function stringsReader(strings: string): () => string {
  let at = 0;
  return () => {
    const end = strings.indexOf('\0', at);
    const value = strings.slice(at, end);
    at = end + 1;
    return value;
  };
}

/** The files of a packed batch, in order: what `packFiles` was given. */
export function unpackFiles(packed: PackedFiles): FileOp[] {
  const { numbers, ids, times } = packed;
  const files: FileOp[] = [];
  const next = stringsReader(packed.strings);
  for (let i = 0; i < packed.count; i++) {
    const n = i * NUMBERS_PER_FILE;
    const fields = numbers[n + 4]!;
    const op: FileOp = { rel: next(), size: numbers[n]! };
    if (fields & HAS_MODE) op.mode = numbers[n + 1]!;
    if (fields & HAS_OWNER) {
      op.uid = numbers[n + 2]!;
      op.gid = numbers[n + 3]!;
    }
    if (fields & HAS_IDENTITY) {
      op.dev = ids[i * IDS_PER_FILE]!;
      op.ino = ids[i * IDS_PER_FILE + 1]!;
    }
    if (fields & HAS_MTIME) op.mtimeNs = next();
    if (fields & HAS_HASH) op.hash = next();
    if (fields & HAS_LINK) {
      const wide = (fields & LINK_WIDE_TIMES) !== 0;
      const mtimeNs = wide ? BigInt(next()) : times[i * TIMES_PER_FILE]!;
      const ctimeNs = wide ? BigInt(next()) : times[i * TIMES_PER_FILE + 1]!;
      op.link = {
        action: fields & LINK_HASHES_FIRST ? 'hash-then-link' : 'link',
        size: numbers[n + 5]!,
        mode: numbers[n + 6]!,
        sha256: fields & LINK_HAS_SHA256 ? next() : undefined,
        source: {
          mtimeNs,
          ctimeNs,
          ino: ids[i * IDS_PER_FILE + 2]!,
          uid: numbers[n + 7]!,
          gid: numbers[n + 8]!,
        },
      };
      if (fields & LINK_STORED) op.link.stored = { object: next(), offset: numbers[n + 9]! };
    } else if (fields & HAS_PREVIOUS) {
      const wide = (fields & LINK_WIDE_TIMES) !== 0;
      const mtimeNs = wide ? BigInt(next()) : times[i * TIMES_PER_FILE]!;
      const ctimeNs = wide ? BigInt(next()) : times[i * TIMES_PER_FILE + 1]!;
      op.previous = {
        size: numbers[n + 5]!,
        mode: numbers[n + 6]!,
        mtimeNs: fields & PREVIOUS_HAS_MTIME ? mtimeNs : undefined,
        ctimeNs: fields & PREVIOUS_HAS_CTIME ? ctimeNs : undefined,
        ino: fields & PREVIOUS_HAS_INO ? ids[i * IDS_PER_FILE + 2]! : undefined,
        sha256: fields & LINK_HAS_SHA256 ? next() : undefined,
      };
    }
    files.push(op);
  }
  return files;
}

// An unpack task travels as it is: its files carry their offsets in the downloaded data (`at`), which the
// packed form has no field for, and its batches are few (one per ranged GET).
type Packed<Task> = Task extends UnpackTask
  ? Task
  : Task extends { files: FileOp[] }
    ? Omit<Task, 'files'> & { files: PackedFiles }
    : Task;

/** A task as the pool posts it: the same, with its files packed. */
export type PostedTask = Packed<WorkerTask>;

export function postedTask(task: WorkerTask): PostedTask {
  if (task.kind === 'unpack') return task;
  return { ...task, files: packFiles(task.files) } as PostedTask;
}

/** The task a worker was posted, with its files unpacked. */
export function receivedTask(posted: PostedTask): WorkerTask {
  if (posted.kind === 'unpack') return posted;
  return { ...posted, files: unpackFiles(posted.files) } as WorkerTask;
}

/**
 * What the pool posts to a worker: the task (its files packed), and the run's stop flag, an Int32Array over a SharedArrayBuffer
 * (shared, not copied, by postMessage) whose element 0 the main thread sets to non-zero when the run stops.
 * The worker checks it between files and between chunks of a large file, removes the file it was writing and
 * returns early: a worker thread is never terminated mid-task, since every thread of the process shares one
 * descriptor table and a terminated thread's open descriptors would leak.
 */
export interface WorkerRequest {
  task: PostedTask;
  stop: Int32Array;
}

/**
 * Why a file was not copied (or did not verify). `dest-failed` (the destination cannot be written) and
 * `no-resources` (the process ran out of open files or memory: EMFILE, ENFILE, ENOMEM, which is no file's
 * fault) fail the whole run; the others are per-file problems.
 */
export type FileProblem =
  | 'vanished'
  | 'changed'
  | 'not-regular'
  | 'escaped'
  | 'unreadable'
  | 'corrupt'
  | 'mode'
  | 'dest-failed'
  | 'no-resources';

/** The problems that fail a whole run rather than one file. */
export type RunFailure = Extract<FileProblem, 'dest-failed' | 'no-resources'>;

/** The errno codes that say the process ran out of a resource rather than that a path is at fault. */
export const OUT_OF_RESOURCES: ReadonlySet<string> = new Set(['EMFILE', 'ENFILE', 'ENOMEM']);

export type FileOutcome =
  | {
      ok: true;
      rel: string;
      size: number;
      mode: number;
      mtimeNs: string;
      hash: string;
      /** What the opened file's fstat said: its owner, and the identity a later snapshot compares. */
      uid: number;
      gid: number;
      ino: string;
      ctimeNs: string;
      /** The path held a different file than planned (renamed over); the new one was copied. */
      replaced: boolean;
      /** What became of a file with a link plan. */
      link?: LinkOutcome;
    }
  | {
      ok: false;
      rel: string;
      problem: FileProblem;
      message: string;
      /** The system error behind the problem (its errno `code`, syscall and path), when there was one. */
      cause: PlainError | undefined;
    };

export interface LinkOutcome {
  /** Hard-linked from the previous backup (else copied). */
  linked: boolean;
  /** The source was read and hashed to decide. */
  hashed: boolean;
  /** The errno of a `link()` that failed in one of the `LINK_FALLBACK_CODES` ways; the file was copied. */
  fallback?: string;
  /** Why the previous backup's file was not the one its index describes; the link was undone, the file copied. */
  mismatch?: string;
}

/** What every task kind returns; a kind may add fields (a pack task: the pack's bytes, moved, not copied). */
export interface TaskResult {
  /**
   * One per file, in the batch's order, but for those handed back. A batch stops early after a `RunFailure`,
   * and when the run stops (the stop flag), without an outcome for the file it was working on.
   */
  outcomes: FileOutcome[];
  /** Bytes of file data written (a hard link writes none). */
  bytes: number;
  /** Files handed back unread (`CopyTask.handBackFrom`), each with the size found: they have no outcome here. */
  handedBack?: FileOp[];
}

/**
 * The `link()` failures after which the file is copied instead (and counted, not warned about): the inode
 * has reached the filesystem's link limit (EMLINK: 65,000 on ext4), the previous backup is on another
 * filesystem (EXDEV), the filesystem or its protections refuse hard links (EPERM, ENOTSUP/EOPNOTSUPP), or
 * the previous file vanished (ENOENT).
 */
export const LINK_FALLBACK_CODES: ReadonlySet<string> = new Set([
  'EMLINK',
  'EXDEV',
  'EPERM',
  'ENOTSUP',
  'EOPNOTSUPP',
  'ENOENT',
]);

/** What the lstat of a freshly made link says about the inode it shares with the previous backup. */
export interface LinkedFileStat {
  isFile: boolean;
  size: number;
  /** Permission bits. */
  mode: number;
}

/**
 * Why the file a new link points to is not the one the previous index describes, or null if it is. The
 * check runs on the new link, after `link()`: whatever was linked is exactly what is checked, with no window
 * for the previous file to be swapped in between (`link()` never follows a symlink at its source, so a
 * symlink planted in the previous backup arrives here as a non-file).
 */
export function linkedFileMismatch(
  linked: LinkedFileStat,
  previous: { size?: number; mode?: number },
): 'not-a-file' | 'size-differs' | 'mode-differs' | null {
  if (!linked.isFile) return 'not-a-file';
  if (linked.size !== previous.size) return 'size-differs';
  if (linked.mode !== previous.mode) return 'mode-differs';
  return null;
}

/**
 * A batch's outcomes as they come back from a worker: like a batch's files (`PackedFiles`), an object per file
 * cost more in the structured clone (the worker's serializing, the main thread's rebuilding and collecting)
 * than a few strings and numbers do. A failed outcome is rare and carries a nested cause: it travels as it is.
 */
export interface PackedOutcomes {
  count: number;
  /** Per copied file: its `rel`, `mtimeNs`, `hash`, `ino`, `ctimeNs`, then the link's fallback and mismatch where the flags say so. */
  strings: string;
  /** Per outcome, NUMBERS_PER_OUTCOME: size, mode, uid, gid, flags. */
  numbers: Float64Array;
  /** The failed outcomes, in order (each marked FAILED in its flags). */
  failed: Extract<FileOutcome, { ok: false }>[];
}

const NUMBERS_PER_OUTCOME = 5;
const FAILED = 1;
const REPLACED = 2;
const HAS_LINK_OUTCOME = 4;
const LINKED = 8;
const HASHED = 16;
const HAS_FALLBACK = 32;
const HAS_MISMATCH = 64;

export function packOutcomes(outcomes: readonly FileOutcome[]): PackedOutcomes {
  const count = outcomes.length;
  const numbers = new Float64Array(count * NUMBERS_PER_OUTCOME);
  const failed: PackedOutcomes['failed'] = [];
  let strings = '';
  for (let i = 0; i < count; i++) {
    const outcome = outcomes[i]!;
    const n = i * NUMBERS_PER_OUTCOME;
    if (!outcome.ok) {
      failed.push(outcome);
      numbers[n + 4] = FAILED;
      continue;
    }
    let flags = outcome.replaced ? REPLACED : 0;
    strings += `${outcome.rel}\0${outcome.mtimeNs}\0${outcome.hash}\0${outcome.ino}\0${outcome.ctimeNs}\0`;
    numbers[n] = outcome.size;
    numbers[n + 1] = outcome.mode;
    numbers[n + 2] = outcome.uid;
    numbers[n + 3] = outcome.gid;
    const { link } = outcome;
    if (link !== undefined) {
      flags |= HAS_LINK_OUTCOME | (link.linked ? LINKED : 0) | (link.hashed ? HASHED : 0);
      if (link.fallback !== undefined) {
        flags |= HAS_FALLBACK;
        strings += `${link.fallback}\0`;
      }
      if (link.mismatch !== undefined) {
        flags |= HAS_MISMATCH;
        strings += `${link.mismatch}\0`;
      }
    }
    numbers[n + 4] = flags;
  }
  return { count, strings, numbers, failed };
}

/** The outcomes of a packed batch, in order: what `packOutcomes` was given. */
export function unpackOutcomes(packed: PackedOutcomes): FileOutcome[] {
  const { numbers } = packed;
  const outcomes: FileOutcome[] = [];
  const next = stringsReader(packed.strings);
  let failedAt = 0;
  for (let i = 0; i < packed.count; i++) {
    const n = i * NUMBERS_PER_OUTCOME;
    const flags = numbers[n + 4]!;
    if (flags & FAILED) {
      outcomes.push(packed.failed[failedAt++]!);
      continue;
    }
    const rel = next();
    const mtimeNs = next();
    const hash = next();
    const ino = next();
    const ctimeNs = next();
    const outcome: FileOutcome = {
      ok: true,
      rel,
      size: numbers[n]!,
      mode: numbers[n + 1]!,
      mtimeNs,
      hash,
      uid: numbers[n + 2]!,
      gid: numbers[n + 3]!,
      ino,
      ctimeNs,
      replaced: (flags & REPLACED) !== 0,
    };
    if (flags & HAS_LINK_OUTCOME) {
      outcome.link = { linked: (flags & LINKED) !== 0, hashed: (flags & HASHED) !== 0 };
      if (flags & HAS_FALLBACK) outcome.link.fallback = next();
      if (flags & HAS_MISMATCH) outcome.link.mismatch = next();
    }
    outcomes.push(outcome);
  }
  return outcomes;
}

/** A task's result as a worker posts it: the same, with its outcomes packed. */
export type PostedResult<Result extends TaskResult = TaskResult> = Omit<Result, 'outcomes'> & {
  outcomes: PackedOutcomes;
};

export function postedResult<Result extends TaskResult>(result: Result): PostedResult<Result> {
  return { ...result, outcomes: packOutcomes(result.outcomes) };
}

/** The result a worker posted, with its outcomes unpacked. */
export function receivedResult<Result extends TaskResult>(posted: PostedResult<Result>): Result {
  return { ...posted, outcomes: unpackOutcomes(posted.outcomes) } as unknown as Result;
}

export const HASH_ALGORITHM = 'sha256';

/**
 * A backup records timestamps within 2^34 s of 1970 (from the year 1425 to 2514), which holds every timestamp
 * ext4, XFS, NTFS, FAT, HFS+ and APFS can store; btrfs and tmpfs can hold more, and such a timestamp is clamped
 * to this range, as ext4 and XFS clamp what they cannot store. Anything beyond it in an index is refused.
 */
export const TIMESTAMP_LIMIT_NS = 17_179_869_184_000_000_000n;

export function clampTimestampNs(ns: bigint): bigint {
  if (ns >= TIMESTAMP_LIMIT_NS) return TIMESTAMP_LIMIT_NS - 1n;
  if (ns <= -TIMESTAMP_LIMIT_NS) return 1n - TIMESTAMP_LIMIT_NS;
  return ns;
}

// libuv before 1.52 truncates the fraction of the seconds it is given to the microsecond, towards zero, and
// then normalises a negative fraction; from 1.52 on it keeps what the double holds (uv__fs_to_timespec).
const [uvMajor = 0, uvMinor = 0] = process.versions.uv.split('.').map(Number);
const UV_TRUNCATES_TO_MICROSECONDS = uvMajor === 1 && uvMinor < 52;

/**
 * A nanosecond timestamp as the seconds `fs.utimes`/`futimes` take, aimed at the middle of its microsecond
 * (rounded down in time order): `Number(ns) / 1e9` lands just below the wanted value for most timestamps
 * (1.65e18 ns is past 2^53), a microsecond, or a whole millisecond (…250 ms → …249.999), too early. Whole
 * microseconds are exact in a double, so half a microsecond more survives the division's rounding: a libuv
 * that truncates lands exactly on the microsecond, one that does not lands inside it. Before 1970 a truncating
 * libuv rounds towards zero, so there half a microsecond less does the same. Node turns a negative number of
 * seconds into "now" but passes a numeric string through: times before 1970 travel as strings. This holds
 * within 2^33 s of 1970 (1697 to 2242); beyond, a double's step is 1.9 µs and the time set is within it.
 */
export function utimeSeconds(ns: bigint): number | string {
  const micros = ns / 1000n - (ns % 1000n < 0n ? 1n : 0n);
  if (micros >= 0n) return (Number(micros) + 0.5) / 1e6;
  return String((Number(micros) + (UV_TRUNCATES_TO_MICROSECONDS ? -0.5 : 0.5)) / 1e6);
}

// Names that are not valid UTF-8 (`conv\xe9`, legal on Linux) travel as strings too, losslessly: each byte of
// such a name from 0x80 up becomes the lone surrogate U+DC80–U+DCFF, and ASCII stays itself (Python's
// "surrogateescape"). A valid UTF-8 name never decodes to a lone surrogate, so a well-formed path is exactly
// its UTF-8 bytes and an escaped one can never collide with one. Every fs call on such a path goes through
// `fsPath`: Node would encode a lone surrogate as U+FFFD, which names another file, or none.
const ESCAPE_BASE = 0xdc00;
const FIRST_ESCAPE = ESCAPE_BASE + 0x80;
const LAST_ESCAPE = ESCAPE_BASE + 0xff;

/** One name as read from a directory, as a string: its UTF-8 text, or its bytes escaped when not UTF-8. */
export function nameFromBytes(bytes: Buffer): string {
  const text = bytes.toString('utf8');
  if (!text.includes('\uFFFD') || Buffer.from(text, 'utf8').equals(bytes)) return text;
  let escaped = '';
  for (const byte of bytes) escaped += String.fromCharCode(byte < 0x80 ? byte : ESCAPE_BASE + byte);
  return escaped;
}

/** The bytes a path string stands for: UTF-8, with every escaped byte put back. */
export function pathBytes(path: string): Buffer {
  if (path.isWellFormed()) return Buffer.from(path, 'utf8');
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < path.length; i++) {
    const unit = path.charCodeAt(i);
    if (unit < FIRST_ESCAPE || unit > LAST_ESCAPE) continue;
    // The low half of a real pair (U+1F080 is D83C DC80) in a UTF-8 name elsewhere in the path: not an escape.
    const before = i > 0 ? path.charCodeAt(i - 1) : 0;
    if (before >= 0xd800 && before <= 0xdbff) continue;
    parts.push(Buffer.from(path.slice(start, i), 'utf8'), Buffer.of(unit - ESCAPE_BASE));
    start = i + 1;
  }
  parts.push(Buffer.from(path.slice(start), 'utf8'));
  return Buffer.concat(parts);
}

/** A path as fs calls must be given it: the string itself in the all-UTF-8 case, its bytes otherwise. */
export function fsPath(path: string): string | Buffer {
  return path.isWellFormed() ? path : pathBytes(path);
}
