// Runs inside a piscina worker thread: performs one batch of per-file operations the main thread decided
// (copy or hash), looked up by the task's kind.
// Synchronous fs calls on purpose: async fs would queue every thread on libuv's 4-thread pool, while sync calls
// let each worker thread really run in parallel (docs/performance.md). Imports only node:* and the protocol.

import { createHash, hash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  ftruncateSync,
  futimesSync,
  openSync,
  readlinkSync,
  readSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { threadId } from 'node:worker_threads';
import type {
  CopyTask,
  FileOp,
  FileOutcome,
  FileProblem,
  HashTask,
  PlainError,
  TaskResult,
  WorkerRequest,
  WorkerTask,
} from '../src/core/protocol.js';
import { utimeSeconds } from '../src/core/protocol.js';

// Files up to this size are read in one call into a reused buffer and hashed in one shot: measured here,
// read+write costs about half the kernel time of copyFileSync for small files, and crypto.hash() on a whole
// buffer is ~1.5x faster than createHash().update().digest() for 1 KiB inputs.
const WHOLE_FILE_LIMIT = 1 << 20;
const CHUNK_SIZE = 1 << 20;
// One extra byte so a file that grew while being read is noticed without a second stat.
const buffer = Buffer.allocUnsafe(WHOLE_FILE_LIMIT + 1);
// In the copy of a sparse file, a block of zeros becomes a hole: 4 KiB is the block (and page) size of the
// common Linux filesystems, the smallest hole most of them can make.
const HOLE_BLOCK = 4096;
const ZERO_BLOCK = Buffer.alloc(HOLE_BLOCK);

// O_NONBLOCK: a file swapped for a FIFO between planning and opening must not hang the worker on open().
const OPEN_SOURCE = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
// O_EXCL: a copy never writes into a file that was there before (a failed attempt removes what it made).
const OPEN_DEST = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

let tempCounter = 0;

class FileFailure extends Error {
  constructor(
    readonly problem: FileProblem,
    message: string,
    readonly plain: PlainError | undefined = undefined,
  ) {
    super(message);
  }
}

/** The main thread raised the stop flag: ends the batch, never becomes a file's outcome. */
class RunStopped extends Error {}

function throwIfStopped(stop: Int32Array): void {
  if (Atomics.load(stop, 0) !== 0) throw new RunStopped('the run is stopping');
}

function toPlainError(error: unknown): PlainError {
  const e = error as NodeJS.ErrnoException;
  return { code: e.code, message: e.message, syscall: e.syscall, path: e.path };
}

/** Where the kernel says an open fd really lives, so a parent directory swapped for a symlink is caught. */
function assertConfined(fd: number, root: string | null, what: string): void {
  if (root === null) return;
  const actual = readlinkSync(`/proc/self/fd/${fd}`);
  if (!actual.startsWith(root === '/' ? '/' : `${root}/`)) {
    throw new FileFailure(
      'escaped',
      `${what} resolved outside ${root} (to ${actual}): a path component was swapped`,
    );
  }
}

function openSource(path: string): number {
  try {
    return openSync(path, OPEN_SOURCE);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR')
      throw new FileFailure('vanished', 'vanished before it was read');
    if (code === 'ELOOP') throw new FileFailure('not-regular', 'was replaced by a symlink; not followed');
    if (code === 'ENXIO') throw new FileFailure('not-regular', 'was replaced by a special file');
    throw new FileFailure('unreadable', `cannot open: ${(error as Error).message}`, toPlainError(error));
  }
}

function sameContentState(a: BigIntStats, b: BigIntStats): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.ino === b.ino;
}

/** What a copy gets and what its index entry records: from the opened source (backup) or the index (restore). */
interface CopyAttributes {
  mode: number;
  mtimeNs: bigint;
  atimeNs: bigint;
}

function attributesFor(task: CopyTask, stat: BigIntStats, op: FileOp): CopyAttributes {
  if (task.from.attributesFrom === 'op' && op.mtimeNs !== undefined) {
    const mtimeNs = BigInt(op.mtimeNs);
    return { mode: (op.mode ?? 0o644) & 0o7777, mtimeNs, atimeNs: mtimeNs };
  }
  return { mode: Number(stat.mode) & 0o7777, mtimeNs: stat.mtimeNs, atimeNs: stat.atimeNs };
}

// A new file created with the wanted mode needs no fchmod unless the umask strips some of its bits:
// one syscall less per file on the hot path.
const umask = process.umask();

/** A failed read (EIO, a stale network file) is the source's problem, never the destination's. */
function readSource(fd: number, offset: number, length: number): number {
  try {
    return readSync(fd, buffer, offset, length, null);
  } catch (error) {
    throw new FileFailure('unreadable', `cannot read: ${(error as Error).message}`, toPlainError(error));
  }
}

function readWhole(fd: number, size: number): number {
  let total = 0;
  for (;;) {
    const n = readSource(fd, total, size + 1 - total);
    total += n;
    if (n === 0 || total >= size) return total;
  }
}

function writeAll(fd: number, data: Buffer, offset: number, length: number, position: number): void {
  let written = 0;
  while (written < length) {
    written += writeSync(fd, data, offset + written, length - written, position + written);
  }
}

interface OpenDest {
  fd: number;
  /** False from the moment the descriptor is handed to close(): it is never closed twice (see closeDest). */
  open: boolean;
  /** The file this open created: the destination itself, or a temp file beside it (`replace`). */
  createdPath: string;
  tempPath: string | null;
  /** The umask left the wanted mode intact, so no fchmod is needed. */
  modeSet: boolean;
  /** The source is sparse: blocks of zeros are left as holes, and the size is set at the end. */
  sparse: boolean;
  /** Where the next bytes go. */
  position: number;
}

/** Opens a destination for writing; `replace` goes through a temp file beside it so nothing is ever torn. */
function openDest(task: CopyTask, destPath: string, mode: number, sparse: boolean): OpenDest {
  const tempPath =
    task.to.writeMode === 'replace'
      ? join(
          dirname(destPath),
          `.${basename(destPath)}.statesnap-${process.pid}-${threadId}-${tempCounter++}.tmp`,
        )
      : null;
  let fd: number;
  try {
    fd = openSync(tempPath ?? destPath, OPEN_DEST, mode);
  } catch (error) {
    throw new FileFailure('dest-failed', `cannot create: ${(error as Error).message}`, toPlainError(error));
  }
  try {
    assertConfined(fd, task.to.confineTo, 'destination');
  } catch (error) {
    closeSync(fd);
    unlinkSync(tempPath ?? destPath);
    throw error instanceof FileFailure ? new FileFailure('dest-failed', error.message) : error;
  }
  return {
    fd,
    open: true,
    createdPath: tempPath ?? destPath,
    tempPath,
    modeSet: (mode & ~umask) === mode,
    sparse,
    position: 0,
  };
}

function isZeroBlock(data: Buffer, start: number, end: number): boolean {
  return data.compare(ZERO_BLOCK, 0, end - start, start, end) === 0;
}

/** Appends `data[0, length)` to the copy; in a sparse copy, whole blocks of zeros are skipped as holes. */
function writeContent(dest: OpenDest, data: Buffer, length: number): void {
  if (!dest.sparse) {
    writeAll(dest.fd, data, 0, length, dest.position);
  } else {
    // `pending` is where the run of data blocks not yet written starts.
    let pending = 0;
    for (let block = 0; block < length; block += HOLE_BLOCK) {
      const end = Math.min(block + HOLE_BLOCK, length);
      if (!isZeroBlock(data, block, end)) continue;
      if (pending < block) writeAll(dest.fd, data, pending, block - pending, dest.position + pending);
      pending = end;
    }
    if (pending < length) writeAll(dest.fd, data, pending, length - pending, dest.position + pending);
  }
  dest.position += length;
}

function destFailure(error: unknown): FileFailure {
  if (error instanceof FileFailure) return error;
  return new FileFailure('dest-failed', `cannot write: ${(error as Error).message}`, toPlainError(error));
}

/**
 * Copies one open source file into the destination, hashing on the way. Throws `changed` (to be retried)
 * when the file's size, mtime or ctime moved while it was read. Returns the source stat and content hash.
 */
function transfer(
  task: CopyTask,
  fd: number,
  destPath: string,
  op: FileOp,
  stop: Int32Array,
): { stat: BigIntStats; attributes: CopyAttributes; hash: string } {
  const stat = fstatSync(fd, { bigint: true });
  if (!stat.isFile()) throw new FileFailure('not-regular', 'is no longer a regular file');
  const size = Number(stat.size);
  // Fewer blocks than bytes: the file has holes (Node has no SEEK_DATA to find them). A fully allocated file,
  // zeros included, is copied as it is.
  const sparse = stat.blocks * 512n < stat.size;
  if (task.from.expectSize && size !== op.size) {
    throw new FileFailure('corrupt', `size is ${size} bytes, the index says ${op.size}`);
  }
  const attributes = attributesFor(task, stat, op);
  let digest: string;
  let dest: OpenDest | null = null;
  try {
    if (size <= WHOLE_FILE_LIMIT) {
      const length = readWhole(fd, size);
      if (length !== size) throw new FileFailure('changed', 'size changed while it was read');
      const content = buffer.subarray(0, length);
      digest = hash('sha256', content, 'hex');
      if (op.hash !== undefined && digest !== op.hash) {
        throw new FileFailure('corrupt', `content hash ${digest} does not match the index (${op.hash})`);
      }
      dest = openDest(task, destPath, attributes.mode, sparse);
      writeContent(dest, content, length);
    } else {
      dest = openDest(task, destPath, attributes.mode, sparse);
      const hasher = createHash('sha256');
      let total = 0;
      for (;;) {
        throwIfStopped(stop);
        const n = readSource(fd, 0, CHUNK_SIZE);
        if (n === 0) break;
        total += n;
        hasher.update(buffer.subarray(0, n));
        writeContent(dest, buffer, n);
      }
      if (total !== size) throw new FileFailure('changed', 'size changed while it was read');
      digest = hasher.digest('hex');
      if (op.hash !== undefined && digest !== op.hash) {
        throw new FileFailure('corrupt', `content hash ${digest} does not match the index (${op.hash})`);
      }
    }
    const after = fstatSync(fd, { bigint: true });
    if (!sameContentState(stat, after)) throw new FileFailure('changed', 'was modified while it was read');
    finishDest(dest, destPath, attributes);
    dest = null;
    return { stat, attributes, hash: digest };
  } catch (error) {
    if (dest) abandonDest(dest);
    if (error instanceof FileFailure || error instanceof RunStopped) throw error;
    throw destFailure(error);
  }
}

function finishDest(dest: OpenDest, destPath: string, attributes: CopyAttributes): void {
  // Holes at the end were never written: the size is set here.
  if (dest.sparse) ftruncateSync(dest.fd, dest.position);
  if (!dest.modeSet) fchmodSync(dest.fd, attributes.mode);
  futimesSync(dest.fd, utimeSeconds(attributes.atimeNs), utimeSeconds(attributes.mtimeNs));
  closeDest(dest);
  if (dest.tempPath) renameSync(dest.tempPath, destPath);
}

/**
 * Closes the destination's descriptor exactly once, even when close() itself fails (Linux releases the
 * descriptor anyway): every thread of the process shares one descriptor table, so a second close() of the
 * same number could close a file another worker has just opened.
 */
function closeDest(dest: OpenDest): void {
  dest.open = false;
  closeSync(dest.fd);
}

function abandonDest(dest: OpenDest): void {
  try {
    if (dest.open) closeDest(dest);
  } catch {}
  try {
    unlinkSync(dest.createdPath);
  } catch {}
}

function copyOne(task: CopyTask, op: FileOp, stop: Int32Array): FileOutcome {
  // Plain concatenation: `rel` is already a validated relative path, and path.join's normalising costs
  // measurable time per file.
  const sourcePath = `${task.from.root}/${op.rel}`;
  const destPath = `${task.to.root}/${op.rel}`;
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSource(sourcePath);
      try {
        assertConfined(fd, task.from.confineTo, 'source');
        const { stat, attributes, hash: digest } = transfer(task, fd, destPath, op, stop);
        return {
          ok: true,
          rel: op.rel,
          size: Number(stat.size),
          mode: attributes.mode,
          mtimeNs: attributes.mtimeNs.toString(),
          hash: digest,
          replaced: op.ino !== undefined && (stat.ino !== op.ino || stat.dev !== op.dev),
        };
      } finally {
        closeSync(fd);
      }
    } catch (error) {
      if (!(error instanceof FileFailure)) throw error;
      if (error.problem === 'changed' && attempt < task.from.changedRetries) continue;
      return { ok: false, rel: op.rel, problem: error.problem, message: error.message, cause: error.plain };
    }
  }
}

function hashOne(task: HashTask, op: FileOp, stop: Int32Array): FileOutcome {
  try {
    const fd = openSource(join(task.from.root, op.rel));
    try {
      assertConfined(fd, task.from.confineTo, 'file');
      const stat = fstatSync(fd, { bigint: true });
      if (!stat.isFile()) throw new FileFailure('not-regular', 'is not a regular file');
      const size = Number(stat.size);
      if (size !== op.size)
        throw new FileFailure('corrupt', `size is ${size} bytes, the index says ${op.size}`);
      const mode = Number(stat.mode) & 0o7777;
      const mtimeNs = stat.mtimeNs.toString();
      if (!task.readContent) return { ok: true, rel: op.rel, size, mode, mtimeNs, hash: '', replaced: false };
      const hasher = createHash('sha256');
      let total = 0;
      for (;;) {
        throwIfStopped(stop);
        const n = readSync(fd, buffer, 0, CHUNK_SIZE, null);
        if (n === 0) break;
        total += n;
        hasher.update(buffer.subarray(0, n));
      }
      if (total !== size) throw new FileFailure('corrupt', `read ${total} bytes, the index says ${op.size}`);
      const digest = hasher.digest('hex');
      if (op.hash !== undefined && digest !== op.hash) {
        throw new FileFailure('corrupt', `content hash ${digest} does not match the index (${op.hash})`);
      }
      return { ok: true, rel: op.rel, size, mode, mtimeNs, hash: digest, replaced: false };
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    if (error instanceof RunStopped) throw error;
    if (!(error instanceof FileFailure)) {
      return {
        ok: false,
        rel: op.rel,
        problem: 'unreadable',
        message: (error as Error).message,
        cause: toPlainError(error),
      };
    }
    return { ok: false, rel: op.rel, problem: error.problem, message: error.message, cause: error.plain };
  }
}

type Operation<T extends WorkerTask> = (task: T, op: FileOp, stop: Int32Array) => FileOutcome;

/** The operation of each task kind, applied to every file of a batch. */
const OPERATIONS: { [Kind in WorkerTask['kind']]: Operation<Extract<WorkerTask, { kind: Kind }>> } = {
  copy: copyOne,
  hash: hashOne,
};

export default function runTask({ task, stop }: WorkerRequest): TaskResult {
  const operation = OPERATIONS[task.kind] as Operation<WorkerTask>;
  const outcomes: FileOutcome[] = [];
  let bytes = 0;
  try {
    for (const op of task.files) {
      throwIfStopped(stop);
      const outcome = operation(task, op, stop);
      outcomes.push(outcome);
      if (outcome.ok) bytes += outcome.size;
      // A destination that cannot be written (ENOSPC, EROFS, EIO) dooms the whole run: stop the batch early.
      if (!outcome.ok && outcome.problem === 'dest-failed') break;
    }
  } catch (error) {
    if (!(error instanceof RunStopped)) throw error;
  }
  return { outcomes, bytes };
}
