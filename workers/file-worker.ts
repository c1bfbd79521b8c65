// Runs inside a piscina worker thread: performs one batch of per-file operations the main thread decided
// (copy, hash, or link from a previous backup), looked up by the task's kind.
// Synchronous fs calls on purpose: async fs would queue every thread on libuv's 4-thread pool, while sync calls
// let each worker thread really run in parallel (docs/performance.md). Imports only node:* and the protocol.

import { createHash, hash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fstatSync,
  ftruncateSync,
  futimesSync,
  linkSync,
  lstatSync,
  openSync,
  readlinkSync,
  readSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname } from 'node:path';
import { receiveMessageOnPort, threadId } from 'node:worker_threads';
import { linkPlanFor, sourceStatOf } from '../src/core/change-rule.js';
import type {
  CopyTask,
  FileOp,
  FileOutcome,
  FileProblem,
  HashTask,
  LinkOutcome,
  LinkPlan,
  LinkTask,
  PackResult,
  PackTask,
  PartMessage,
  PartStream,
  PlainError,
  PostedResult,
  ReadSpec,
  RecordedFile,
  StreamOutTask,
  TaskResult,
  UnpackedFile,
  UnpackTask,
  WorkerRequest,
  WorkerTask,
  WriteSpec,
} from '../src/core/protocol.js';
import {
  clampTimestampNs,
  formatMode,
  fsPath,
  LINK_FALLBACK_CODES,
  linkedFileMismatch,
  OUT_OF_RESOURCES,
  PART_COUNTER,
  PART_EMPTY,
  PART_FULL,
  PARTS_END,
  pathBytes,
  postedResult,
  RING_ABORT,
  RING_LENGTH,
  RING_PART,
  RING_SLOTS,
  receivedTask,
  SETID_BITS,
  utimeSeconds,
} from '../src/core/protocol.js';
import { entrySize, paddedSize, TAR_END_BYTES, writeFileHeader } from '../src/format/tar.js';

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

/** What a copy needs of its task: where it reads and where it writes. */
type CopySpec = Pick<CopyTask, 'from' | 'to' | 'handBackFrom'>;

class FileFailure extends Error {
  readonly problem: FileProblem;

  constructor(
    problem: FileProblem,
    message: string,
    readonly plain: PlainError | undefined = undefined,
  ) {
    super(message);
    // Out of descriptors or memory: the process's problem, never the file's (nor the destination's).
    const code = plain?.code;
    this.problem = code !== undefined && OUT_OF_RESOURCES.has(code) ? 'no-resources' : problem;
  }
}

/** The main thread raised the stop flag: ends the batch, never becomes a file's outcome. */
class RunStopped extends Error {}

/** A file of a batch planned without sizes that is large enough to go as a task of its own: not read here. */
class HandedBack extends Error {
  constructor(readonly size: number) {
    super('handed back to go as a task of its own');
  }
}

function handBackIfLarge(task: CopySpec, size: number): void {
  if (task.handBackFrom !== undefined && size >= task.handBackFrom) throw new HandedBack(size);
}

function throwIfStopped(stop: Int32Array): void {
  if (Atomics.load(stop, 0) !== 0) throw new RunStopped('the run is stopping');
}

function toPlainError(error: unknown): PlainError {
  const e = error as NodeJS.ErrnoException;
  // A call given a Buffer path (a name that is not UTF-8) reports that Buffer as its path.
  const path = e.path === undefined ? undefined : String(e.path);
  return { code: e.code, message: e.message, syscall: e.syscall, path };
}

/**
 * Where the kernel says an open fd really lives, so a parent directory swapped for a symlink is caught. A
 * directory may be `root` itself.
 */
function assertConfined(fd: number, root: string | null, what: string): void {
  if (root === null) return;
  const actual = readlinkSync(`/proc/self/fd/${fd}`);
  if (actual !== root && !actual.startsWith(root === '/' ? '/' : `${root}/`)) {
    throw new FileFailure(
      'escaped',
      `${what} resolved outside ${root} (to ${actual}): a path component was swapped`,
    );
  }
}

function openSource(path: string): number {
  try {
    return openSync(fsPath(path), OPEN_SOURCE);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR')
      throw new FileFailure('vanished', 'vanished before it was read');
    if (code === 'ELOOP') throw new FileFailure('not-regular', 'was replaced by a symlink; not followed');
    if (code === 'ENXIO') throw new FileFailure('not-regular', 'was replaced by a special file');
    throw new FileFailure('unreadable', `cannot open: ${(error as Error).message}`, toPlainError(error));
  }
}

/**
 * The source directory whose files a batch is reading, held open. Opened without following a symlink and
 * checked once to lie under the confinement root, its files are opened as `/proc/self/fd/<n>/<name>`: a
 * magic link the kernel does not resolve again, so only `name` is looked up, in the very directory that was
 * checked (as openat would), and a parent swapped for a symlink afterwards cannot redirect an open. Checked
 * again when the batch leaves it: if it was moved out of the source meanwhile, every file read through it
 * is reported `escaped` and its copy removed.
 */
interface SourceDirectory {
  rel: string;
  /**
   * The open directory, or null: when it could not be opened or lies outside, `refusal` says why; without a
   * refusal it may be searched but not read (a restore's `0311` folder), and its files are opened by path and
   * checked each on its own descriptor.
   */
  fd: number | null;
  base: string;
  refusal: FileFailure | null;
  /** The batch's first outcome read through it. */
  firstOutcome: number;
}

let sourceDirectory: SourceDirectory | null = null;

function isWithinRoot(actual: string, root: string): boolean {
  return actual === root || actual.startsWith(root === '/' ? '/' : `${root}/`);
}

function openSourceDirectory(from: ReadSpec, rel: string, firstOutcome: number): SourceDirectory {
  const root = from.confineTo!;
  const path = rel === '' ? from.root : `${from.root}/${rel}`;
  const held: SourceDirectory = { rel, fd: null, base: path, refusal: null, firstOutcome };
  let fd: number;
  try {
    // The root is a real path: only the directories below it must not be symlinks themselves.
    fd = openSync(fsPath(path), rel === '' ? OPEN_ROOT_DIR : OPEN_DIR);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      held.refusal = new FileFailure('vanished', 'vanished before it was read');
    } else if (code === 'ELOOP') {
      held.refusal = new FileFailure('escaped', 'its directory was swapped for a symlink; not followed');
    } else if (code !== 'EACCES') {
      held.refusal = new FileFailure(
        'unreadable',
        `cannot open its directory: ${(error as Error).message}`,
        toPlainError(error),
      );
    }
    return held;
  }
  let actual: string;
  try {
    actual = readlinkSync(`/proc/self/fd/${fd}`);
  } catch (error) {
    closeSync(fd);
    throw error;
  }
  if (!isWithinRoot(actual, root)) {
    closeSync(fd);
    held.refusal = new FileFailure(
      'escaped',
      `source resolved outside ${root} (to ${actual}): a path component was swapped`,
    );
    return held;
  }
  held.fd = fd;
  held.base = `/proc/self/fd/${fd}`;
  return held;
}

/**
 * Ends the batch's run of files in the held source directory: if the directory now lies outside the source
 * (moved while its files were read), the run's files are taken back: their copies removed, their outcomes
 * `escaped`.
 */
function leaveSourceDirectory(task: PerFileTask, outcomes: FileOutcome[]): void {
  const held = sourceDirectory;
  if (held === null) return;
  sourceDirectory = null;
  if (held.fd === null) return;
  let actual: string | null;
  try {
    actual = readlinkSync(held.base);
  } catch {
    actual = null;
  } finally {
    closeSync(held.fd);
  }
  if (actual !== null && isWithinRoot(actual, task.from.confineTo!)) return;
  const message = `its directory was moved outside ${task.from.confineTo} while it was read`;
  for (let i = held.firstOutcome; i < outcomes.length; i++) {
    const outcome = outcomes[i]!;
    if (!outcome.ok) continue;
    if (task.kind !== 'hash') {
      try {
        unlinkSync(fsPath(`${task.to.root}/${outcome.rel}`));
      } catch {}
    }
    outcomes[i] = { ok: false, rel: outcome.rel, problem: 'escaped', message, cause: undefined };
  }
}

/**
 * Whether a batch proves containment once per directory: where the copies it makes can be taken back (a
 * fresh tree of ours) or it makes none. A merge's renames over live files cannot be undone, so there every
 * file is checked on its own descriptor right after it is opened.
 */
function confinesPerDirectory(task: PerFileTask): boolean {
  return task.from.confineTo !== null && (task.kind === 'hash' || task.to.writeMode === 'create');
}

/** Opens the source file `rel` for reading, never through a symlink, proven to lie under the confinement root. */
function openConfinedSource(from: ReadSpec, rel: string): number {
  const held = sourceDirectory;
  if (held?.refusal) throw held.refusal;
  if (held?.fd != null) return openSource(`${held.base}/${rel.slice(rel.lastIndexOf('/') + 1)}`);
  const fd = openSource(`${from.root}/${rel}`);
  try {
    assertConfined(fd, from.confineTo, 'source');
  } catch (error) {
    closeSync(fd);
    throw error;
  }
  return fd;
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

function attributesFor(task: CopySpec, stat: BigIntStats, op: FileOp): CopyAttributes {
  const { modeMask } = task.to;
  if (task.from.attributesFrom === 'op' && op.mtimeNs !== undefined) {
    const mtimeNs = BigInt(op.mtimeNs);
    return { mode: (op.mode ?? 0o644) & modeMask, mtimeNs, atimeNs: mtimeNs };
  }
  return {
    mode: Number(stat.mode) & modeMask,
    mtimeNs: clampTimestampNs(stat.mtimeNs),
    atimeNs: clampTimestampNs(stat.atimeNs),
  };
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
  /** Where the temp file is renamed to (`replace`), or null when the destination was created in place. */
  finalPath: string | null;
  /** The destination's directory, held open while a confined write goes through it (closed: null). */
  dirFd: number | null;
  /** The umask left the wanted mode intact, so no fchmod is needed. */
  modeSet: boolean;
  /** The source is sparse: blocks of zeros are left as holes, and the size is set at the end. */
  sparse: boolean;
  /** Where the next bytes go. */
  position: number;
}

// O_NOFOLLOW on a directory refuses only a symlink as its last component; the kernel's path of the opened
// descriptor tells whether an earlier one was swapped.
const OPEN_ROOT_DIR = constants.O_RDONLY | constants.O_DIRECTORY;
const OPEN_DIR = OPEN_ROOT_DIR | constants.O_NOFOLLOW;

/**
 * Opens the directory a confined write goes into and checks where it really is. The file is then created
 * and renamed through `/proc/self/fd/<n>/` (the opened directory itself, as openat/renameat would), so a
 * directory swapped for a symlink afterwards never makes anything appear outside the target.
 */
function openDestDir(path: string, confineTo: string): number {
  let fd: number;
  try {
    fd = openSync(fsPath(path), OPEN_DIR);
  } catch (error) {
    throw new FileFailure(
      'dest-failed',
      `cannot open directory ${path}: ${(error as Error).message}`,
      toPlainError(error),
    );
  }
  try {
    assertConfined(fd, confineTo, `directory ${path}`);
  } catch (error) {
    closeSync(fd);
    throw error instanceof FileFailure ? new FileFailure('dest-failed', error.message) : error;
  }
  return fd;
}

/** A `replace` write's temp file: short and of bounded length, so it fits wherever the final name fits. */
function tempName(): string {
  return `.statesnap-${process.pid}-${threadId}-${tempCounter++}.tmp`;
}

/** Opens a destination for writing; `replace` goes through a temp file beside it so nothing is ever torn. */
function openDest(task: Pick<CopySpec, 'to'>, destPath: string, mode: number, sparse: boolean): OpenDest {
  const { confineTo, writeMode } = task.to;
  const dirFd = confineTo === null ? null : openDestDir(dirname(destPath), confineTo);
  let createdPath = destPath;
  let finalPath: string | null = null;
  if (dirFd !== null || writeMode === 'replace') {
    const dir = dirFd === null ? dirname(destPath) : `/proc/self/fd/${dirFd}`;
    finalPath = `${dir}/${basename(destPath)}`;
    createdPath = writeMode === 'replace' ? `${dir}/${tempName()}` : finalPath;
    if (createdPath === finalPath) finalPath = null;
  }
  try {
    const fd = openSync(fsPath(createdPath), OPEN_DEST, mode);
    const modeSet = (mode & ~umask) === mode;
    return { fd, open: true, createdPath, finalPath, dirFd, modeSet, sparse, position: 0 };
  } catch (error) {
    if (dirFd !== null) closeSync(dirFd);
    // The main thread names the destination; a `/proc/self/fd/<n>/…` path in the message would only confuse.
    const message = (error as Error).message.replace(/, open '.*'$/, '');
    throw new FileFailure('dest-failed', `cannot create: ${message}`, toPlainError(error));
  }
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
  task: CopySpec,
  fd: number,
  destPath: string,
  op: FileOp,
  stop: Int32Array,
): { stat: BigIntStats; attributes: CopyAttributes; hash: string } {
  const stat = fstatSync(fd, { bigint: true });
  if (!stat.isFile()) throw new FileFailure('not-regular', 'is no longer a regular file');
  const size = Number(stat.size);
  handBackIfLarge(task, size);
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
      const opened = openDest(task, destPath, attributes.mode, sparse);
      dest = opened;
      const read = readAll(fd, stop, (n) => writeContent(opened, buffer, n));
      if (read.total !== size) throw new FileFailure('changed', 'size changed while it was read');
      digest = read.digest;
      if (op.hash !== undefined && digest !== op.hash) {
        throw new FileFailure('corrupt', `content hash ${digest} does not match the index (${op.hash})`);
      }
    }
    // Content that matched its recorded hash is the recorded content, however the file moved meanwhile.
    if (op.hash === undefined) {
      const after = fstatSync(fd, { bigint: true });
      if (!sameContentState(stat, after)) throw new FileFailure('changed', 'was modified while it was read');
    }
    finishDest(task, dest, op, attributes);
    dest = null;
    return { stat, attributes, hash: digest };
  } catch (error) {
    if (dest) abandonDest(dest);
    if (error instanceof FileFailure || error instanceof RunStopped) throw error;
    throw destFailure(error);
  }
}

/** Who owns a file as it is created under each fresh tree of ours (`WriteSpec.root`), by root. */
const ownerOnCreate = new Map<string, { uid: number; gid: number } | null>();

/**
 * The owner a file created in `to` gets by itself, or null when it cannot be known without a stat of the file.
 * In a fresh tree of ours every directory was made by this run and keeps the same ownership rule until the
 * directories get their attributes at the end, so every file created there gets the owner the first one got:
 * that one is asked (`dest.fd`), rather than predicted from the root's setgid bit, which misses the mount
 * options and filesystems that give new files the directory's group anyway.
 */
function createdOwner(to: WriteSpec, fd: number): { uid: number; gid: number } | null {
  if (to.confineTo !== null || to.writeMode !== 'create') return null;
  let owner = ownerOnCreate.get(to.root);
  if (owner === undefined) {
    try {
      const { uid, gid } = fstatSync(fd);
      owner = { uid, gid };
    } catch {
      owner = null;
    }
    ownerOnCreate.set(to.root, owner);
  }
  return owner;
}

function finishDest(
  task: Pick<CopySpec, 'to'>,
  dest: OpenDest,
  op: FileOp,
  attributes: CopyAttributes,
): void {
  // Holes at the end were never written: the size is set here.
  if (dest.sparse) ftruncateSync(dest.fd, dest.position);
  // Owner first: a change of owner clears setuid/setgid, so a mode holding them is set again after it. A file
  // that was created with the recorded owner needs no fchown.
  const created = task.to.owners ? createdOwner(task.to, dest.fd) : null;
  const chown =
    task.to.owners &&
    op.uid !== undefined &&
    op.gid !== undefined &&
    (created === null || created.uid !== op.uid || created.gid !== op.gid);
  if (chown) fchownSync(dest.fd, op.uid!, op.gid!);
  if (!dest.modeSet || (chown && (attributes.mode & SETID_BITS) !== 0)) fchmodSync(dest.fd, attributes.mode);
  futimesSync(dest.fd, utimeSeconds(attributes.atimeNs), utimeSeconds(attributes.mtimeNs));
  closeDest(dest);
  if (dest.finalPath) renameSync(fsPath(dest.createdPath), fsPath(dest.finalPath));
  releaseDir(dest);
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

/** Closes the directory a confined write went through, once. */
function releaseDir(dest: OpenDest): void {
  if (dest.dirFd === null) return;
  const fd = dest.dirFd;
  dest.dirFd = null;
  closeSync(fd);
}

function abandonDest(dest: OpenDest): void {
  try {
    if (dest.open) closeDest(dest);
  } catch {}
  try {
    unlinkSync(fsPath(dest.createdPath));
  } catch {}
  releaseDir(dest);
}

function copyOne(task: CopySpec, op: FileOp, stop: Int32Array): FileOutcome {
  // Plain concatenation: `rel` is already a validated relative path, and path.join's normalising costs
  // measurable time per file.
  const destPath = `${task.to.root}/${op.rel}`;
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openConfinedSource(task.from, op.rel);
      try {
        const { stat, attributes, hash: digest } = transfer(task, fd, destPath, op, stop);
        return {
          ok: true,
          rel: op.rel,
          size: Number(stat.size),
          mode: attributes.mode,
          mtimeNs: attributes.mtimeNs.toString(),
          hash: digest,
          ...identityOf(stat),
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

/** What an index records about the opened file besides its content: owner, inode and ctime. */
function identityOf(stat: BigIntStats): { uid: number; gid: number; ino: string; ctimeNs: string } {
  return {
    uid: Number(stat.uid),
    gid: Number(stat.gid),
    ino: stat.ino.toString(),
    ctimeNs: clampTimestampNs(stat.ctimeNs).toString(),
  };
}

/**
 * Reads an open file to its end in chunks (into the shared buffer), hashing each and handing its length to
 * `onChunk` before the next read; returns the hash and how many bytes there were.
 */
function readAll(
  fd: number,
  stop: Int32Array,
  onChunk?: (length: number) => void,
): { digest: string; total: number } {
  const hasher = createHash('sha256');
  let total = 0;
  for (;;) {
    throwIfStopped(stop);
    const n = readSource(fd, 0, CHUNK_SIZE);
    if (n === 0) break;
    total += n;
    hasher.update(buffer.subarray(0, n));
    onChunk?.(n);
  }
  return { digest: hasher.digest('hex'), total };
}

function readHash(fd: number, op: FileOp, size: number, stop: Int32Array): string {
  const { digest, total } = readAll(fd, stop);
  if (total !== size) throw new FileFailure('corrupt', `read ${total} bytes, the index says ${op.size}`);
  if (op.hash !== undefined && digest !== op.hash) {
    throw new FileFailure('corrupt', `content hash ${digest} does not match the index (${op.hash})`);
  }
  return digest;
}

function hashOne(task: HashTask, op: FileOp, stop: Int32Array): FileOutcome {
  try {
    const fd = openConfinedSource(task.from, op.rel);
    try {
      const stat = fstatSync(fd, { bigint: true });
      if (!stat.isFile()) throw new FileFailure('not-regular', 'is not a regular file');
      const size = Number(stat.size);
      if (size !== op.size)
        throw new FileFailure('corrupt', `size is ${size} bytes, the index says ${op.size}`);
      const digest = task.readContent ? readHash(fd, op, size, stop) : '';
      const mode = Number(stat.mode) & 0o7777;
      if (task.compareMode && op.mode !== undefined && mode !== op.mode) {
        throw new FileFailure('mode', `mode is ${formatMode(mode)}, the index says ${formatMode(op.mode)}`);
      }
      const mtimeNs = stat.mtimeNs.toString();
      return {
        ok: true,
        rel: op.rel,
        size,
        mode,
        mtimeNs,
        hash: digest,
        ...identityOf(stat),
        replaced: false,
      };
    } finally {
      closeSync(fd);
    }
  } catch (caught) {
    if (caught instanceof RunStopped) throw caught;
    const error =
      caught instanceof FileFailure
        ? caught
        : new FileFailure('unreadable', (caught as Error).message, toPlainError(caught));
    return { ok: false, rel: op.rel, problem: error.problem, message: error.message, cause: error.plain };
  }
}

/** A previous backup's directory held open while a batch links from it (a batch's files share few directories). */
let previousDirectory: { rel: string; fd: number; path: string } | null = null;

function closePreviousDirectory(): void {
  if (previousDirectory === null) return;
  const { fd } = previousDirectory;
  previousDirectory = null;
  closeSync(fd);
}

/**
 * The previous backup's directory `rel` as a path to link from. Where the OS can tell, it is opened without
 * following a symlink and must be exactly where the previous backup has it: a directory swapped for a
 * symlink (or moved) can never make the run link a file from elsewhere. Null: that directory is gone.
 */
function previousDirectoryPath(task: LinkTask, rel: string): string | null {
  const { root, confined } = task.linkFrom;
  const path = rel === '' ? root : `${root}/${rel}`;
  if (!confined) return path;
  if (previousDirectory?.rel === rel) return previousDirectory.path;
  closePreviousDirectory();
  let fd: number;
  try {
    fd = openSync(fsPath(path), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ELOOP' || code === 'ENOTDIR') throw new FileFailure('escaped', 'is no longer a directory');
    throw error;
  }
  const opened = `/proc/self/fd/${fd}`;
  let where: Buffer;
  try {
    where = readlinkSync(opened, { encoding: 'buffer' });
  } catch (error) {
    closeSync(fd);
    throw error;
  }
  if (!where.equals(pathBytes(path))) {
    // Not kept for the next file of this directory: each one must be refused the same way.
    closeSync(fd);
    throw new FileFailure('escaped', 'resolves elsewhere: a path component was swapped');
  }
  previousDirectory = { rel, fd, path: opened };
  return opened;
}

function splitRel(rel: string): { dir: string; name: string } {
  const slash = rel.lastIndexOf('/');
  return slash === -1 ? { dir: '', name: rel } : { dir: rel.slice(0, slash), name: rel.slice(slash + 1) };
}

/**
 * Hard-links `op`'s file from the previous backup, then checks the new link (never the name linked from:
 * whatever was linked is exactly what is checked). Returns null when linked, or why the file must be copied.
 */
function linkFromPrevious(
  task: LinkTask,
  op: FileOp,
  plan: LinkPlan,
): Omit<LinkOutcome, 'linked' | 'hashed'> | null {
  const { dir, name } = splitRel(op.rel);
  const target = `${task.to.root}/${op.rel}`;
  try {
    const from = previousDirectoryPath(task, dir);
    if (from === null) return { fallback: 'ENOENT' };
    linkSync(fsPath(`${from}/${name}`), fsPath(target));
  } catch (error) {
    if (error instanceof FileFailure) return { mismatch: 'escaped' };
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== undefined && LINK_FALLBACK_CODES.has(code)) return { fallback: code };
    throw new FileFailure('dest-failed', `cannot link: ${(error as Error).message}`, toPlainError(error));
  }
  const stat = lstatSync(fsPath(target));
  const mismatch = linkedFileMismatch(
    { isFile: stat.isFile(), size: stat.size, mode: stat.mode & 0o7777 },
    plan,
  );
  if (mismatch === null) return null;
  unlinkSync(fsPath(target));
  return { mismatch };
}

/** The content hash of an open regular file read to its end, or null if it is not `size` bytes long. */
function hashOpenFile(fd: number, size: number, stop: Int32Array): string | null {
  const { digest, total } = readAll(fd, stop);
  return total === size ? digest : null;
}

/**
 * Reads and hashes the source file: its fstat and hash, or null when it cannot be read as one unchanging
 * regular file (the copy that follows then meets the problem and reports or retries it as any copy does).
 */
function hashSource(
  task: LinkTask,
  op: FileOp,
  stop: Int32Array,
): { stat: BigIntStats; hash: string } | null {
  let fd: number;
  try {
    fd = openConfinedSource(task.from, op.rel);
  } catch (error) {
    if (error instanceof FileFailure) return null;
    throw error;
  }
  try {
    const stat = fstatSync(fd, { bigint: true });
    if (!stat.isFile()) return null;
    const digest = hashOpenFile(fd, Number(stat.size), stop);
    const after = fstatSync(fd, { bigint: true });
    return digest !== null && sameContentState(stat, after) ? { stat, hash: digest } : null;
  } catch (error) {
    if (error instanceof FileFailure) return null;
    throw error;
  } finally {
    closeSync(fd);
  }
}

/** The hash of the previous backup's file (its index recorded none), or null if it is not the expected file. */
function hashPrevious(task: LinkTask, op: FileOp, plan: LinkPlan, stop: Int32Array): string | null {
  const { dir, name } = splitRel(op.rel);
  let fd: number;
  try {
    const from = previousDirectoryPath(task, dir);
    if (from === null) return null;
    fd = openSync(fsPath(`${from}/${name}`), OPEN_SOURCE);
  } catch (error) {
    if (error instanceof FileFailure || (error as NodeJS.ErrnoException).code !== undefined) return null;
    throw error;
  }
  try {
    const stat = fstatSync(fd, { bigint: true });
    if (!stat.isFile() || Number(stat.size) !== plan.size) return null;
    return hashOpenFile(fd, plan.size, stop);
  } catch (error) {
    if (error instanceof FileFailure) return null;
    throw error;
  } finally {
    closeSync(fd);
  }
}

/**
 * One file of a backup with a link source: copied, unless the change rule, applied here, plans a link. A link
 * that does not hold (the hashes differ, link() fails with a fallback code, the new link is not the indexed
 * file) becomes a copy, and the outcome says why.
 */
function linkOne(task: LinkTask, op: FileOp, stop: Int32Array): FileOutcome {
  const plan = op.previous && plannedHere(task, op, op.previous);
  if (plan === undefined) return copyOne(task, op, stop);
  let linked: Extract<FileOutcome, { ok: true }>;
  let hashed = false;
  if (plan.action === 'hash-then-link') {
    handBackIfLarge(task, op.size); // before it is read to decide
    const read = hashSource(task, op, stop);
    hashed = read !== null;
    const expected = read === null ? null : (plan.sha256 ?? hashPrevious(task, op, plan, stop));
    // A mode changed since the walk: the previous file's mode is no longer the source's.
    const sameMode = read !== null && (Number(read.stat.mode) & 0o7777) === plan.mode;
    if (read === null || !sameMode || expected !== read.hash)
      return copiedInstead(task, op, stop, { hashed });
    linked = {
      ok: true,
      rel: op.rel,
      size: Number(read.stat.size),
      mode: Number(read.stat.mode) & 0o7777,
      mtimeNs: clampTimestampNs(read.stat.mtimeNs).toString(),
      hash: read.hash,
      ...identityOf(read.stat),
      replaced: read.stat.ino !== op.ino || read.stat.dev !== op.dev,
    };
  } else {
    const hash = plan.sha256;
    if (hash === undefined) return copiedInstead(task, op, stop, { hashed });
    linked = {
      ok: true,
      rel: op.rel,
      size: op.size,
      mode: plan.mode,
      hash,
      ...plannedIdentity(plan),
      replaced: false,
    };
  }
  let refused: ReturnType<typeof linkFromPrevious>;
  try {
    refused = linkFromPrevious(task, op, plan);
  } catch (error) {
    if (!(error instanceof FileFailure)) throw error;
    return { ok: false, rel: op.rel, problem: error.problem, message: error.message, cause: error.plain };
  }
  if (refused !== null) return copiedInstead(task, op, stop, { hashed, ...refused });
  return { ...linked, link: { linked: true, hashed } };
}

/**
 * The change rule applied here, to this worker's lstat of the source file (never following a symlink; in the
 * held, checked directory where there is one): how to link it, or undefined to copy it. A file that cannot be
 * lstat'ed or is no longer a regular file is copied: the copy meets what became of it and reports it.
 */
function plannedHere(task: LinkTask, op: FileOp, previous: RecordedFile): LinkPlan | undefined {
  const held = sourceDirectory;
  if (held?.refusal) return undefined;
  const path =
    held?.fd != null
      ? `${held.base}/${op.rel.slice(op.rel.lastIndexOf('/') + 1)}`
      : `${task.from.root}/${op.rel}`;
  let stat: BigIntStats | undefined;
  try {
    stat = lstatSync(fsPath(path), { bigint: true, throwIfNoEntry: false });
  } catch {
    return undefined;
  }
  if (stat === undefined || !stat.isFile()) return undefined;
  // The identity a walk with lstat would have planned: a copy that follows checks it still holds this file.
  const source = sourceStatOf(stat);
  op.size = source.size;
  op.dev = stat.dev;
  op.ino = stat.ino;
  return linkPlanFor(source, { type: 'file', ...previous }, task.rule);
}

function copiedInstead(
  task: LinkTask,
  op: FileOp,
  stop: Int32Array,
  why: Omit<LinkOutcome, 'linked'>,
): FileOutcome {
  const copied = copyOne(task, op, stop);
  return copied.ok ? { ...copied, link: { linked: false, ...why } } : copied;
}

/** What a file written (or checked) from downloaded bytes reports: its attributes come from the index. */
function unpacked(op: UnpackedFile, mode: number, mtimeNs: bigint, digest: string): FileOutcome {
  return {
    ok: true,
    rel: op.rel,
    size: op.size,
    mode,
    mtimeNs: mtimeNs.toString(),
    hash: digest,
    uid: op.uid ?? 0,
    gid: op.gid ?? 0,
    ino: '0',
    ctimeNs: '0',
    replaced: false,
  };
}

function checkHash(op: UnpackedFile, digest: string, origin: string): void {
  if (op.hash !== undefined && digest !== op.hash) {
    throw new FileFailure(
      'corrupt',
      `content hash ${digest} does not match the index (${op.hash}) in ${origin}`,
    );
  }
}

/**
 * The next part of a streamed file: waits (without an event loop: `Atomics.wait` on the posted counter)
 * until the main thread has posted it, checking the stop flag meanwhile.
 */
function nextPart(stream: PartStream, stop: Int32Array): Buffer {
  const counters = new Int32Array(stream.counters);
  for (;;) {
    // Read before looking for a message: a part posted after this read changes it, so the wait returns at once.
    const posted = Atomics.load(counters, PART_COUNTER.posted);
    const received = receiveMessageOnPort(stream.port);
    if (received !== undefined) {
      Atomics.add(counters, PART_COUNTER.taken, 1);
      Atomics.notify(counters, PART_COUNTER.taken);
      const message = received.message as PartMessage;
      if ('failed' in message) throw new FileFailure(message.failed.problem, message.failed.message);
      return Buffer.from(message.data);
    }
    throwIfStopped(stop);
    Atomics.wait(counters, PART_COUNTER.posted, posted, 100);
  }
}

/**
 * One file of a downloaded range: hashed where it lies in the task's data and, only when the hash matches,
 * written as a copy's destination side writes (a fresh file, confined, renamed into place in `replace` mode).
 * A streamed file is written part by part as the parts arrive and hashed on the way; a hash that differs at
 * the end removes what was written.
 */
function unpackOne(task: UnpackTask, op: UnpackedFile, stop: Int32Array): FileOutcome {
  const { data, origin, to, stream } = task;
  const mtimeNs = BigInt(op.mtimeNs ?? '0');
  const mode = (op.mode ?? 0o644) & (to?.modeMask ?? 0o7777);
  const spec = to === null ? null : { to };
  let dest: OpenDest | null = null;
  try {
    if (op.at < 0 || op.at + (stream ? data.byteLength : op.size) > data.byteLength) {
      throw new FileFailure('corrupt', `bytes ${op.at}-${op.at + op.size} lie outside ${origin}`);
    }
    let digest: string;
    if (stream === undefined) {
      const content = Buffer.from(data, op.at, op.size);
      digest = hash('sha256', content, 'hex');
      checkHash(op, digest, origin);
      if (spec !== null) {
        dest = openDest(spec, `${spec.to.root}/${op.rel}`, mode, false);
        writeContent(dest, content, op.size);
      }
    } else {
      const hasher = createHash('sha256');
      if (spec !== null) dest = openDest(spec, `${spec.to.root}/${op.rel}`, mode, false);
      let part: Buffer = Buffer.from(data, op.at);
      let total = 0;
      for (let index = 1; ; index++) {
        hasher.update(part);
        if (dest !== null) writeContent(dest, part, part.length);
        total += part.length;
        if (index >= stream.parts) break;
        part = nextPart(stream, stop);
      }
      if (total !== op.size)
        throw new FileFailure('corrupt', `${total} bytes arrived, the index says ${op.size}`);
      digest = hasher.digest('hex');
      checkHash(op, digest, origin);
    }
    if (spec !== null && dest !== null) finishDest(spec, dest, op, { mode, mtimeNs, atimeNs: mtimeNs });
    dest = null;
    return unpacked(op, mode, mtimeNs, digest);
  } catch (error) {
    if (dest !== null) abandonDest(dest);
    if (error instanceof RunStopped) throw error;
    const failure = error instanceof FileFailure ? error : destFailure(error);
    return {
      ok: false,
      rel: op.rel,
      problem: failure.problem,
      message: failure.message,
      cause: failure.plain,
    };
  }
}

/**
 * An unpack task's files, one after another; a destination that cannot be written, or a process out of
 * descriptors, stops the batch. A streamed file's sender is told the worker is done, however it ended.
 */
function unpackRange(task: UnpackTask, stop: Int32Array): TaskResult {
  const outcomes: FileOutcome[] = [];
  try {
    for (const op of task.files) {
      throwIfStopped(stop);
      const outcome = unpackOne(task, op, stop);
      outcomes.push(outcome);
      if (!outcome.ok && (outcome.problem === 'dest-failed' || outcome.problem === 'no-resources')) break;
    }
  } catch (error) {
    if (!(error instanceof RunStopped)) throw error;
  } finally {
    if (task.stream !== undefined) {
      const counters = new Int32Array(task.stream.counters);
      Atomics.store(counters, PART_COUNTER.done, 1);
      Atomics.notify(counters, PART_COUNTER.taken);
      task.stream.port.close();
    }
  }
  let bytes = 0;
  for (const outcome of outcomes) if (outcome.ok) bytes += outcome.size;
  return { outcomes, bytes };
}

type Operation<T extends WorkerTask> = (task: T, op: T['files'][number], stop: Int32Array) => FileOutcome;

/** The kinds whose files are each handled on their own; a pack or a stream builds one object from them. */
type PerFileTask = Exclude<WorkerTask, PackTask | StreamOutTask | UnpackTask>;

/** The operation of each task kind, applied to every file of a batch. */
const OPERATIONS: { [Kind in PerFileTask['kind']]: Operation<Extract<PerFileTask, { kind: Kind }>> } = {
  copy: copyOne,
  hash: hashOne,
  link: linkOne,
};

/** What piscina runs for each posted task: the task's result, its outcomes packed for the trip back. */
export default function runTask(request: WorkerRequest): PostedResult {
  return postedResult(performTask(request));
}

/** Performs one task (its files unpacked from the request) and returns its outcomes as they are. */
export function performTask(request: WorkerRequest): TaskResult {
  const { stop } = request;
  const task = receivedTask(request.task);
  if (task.kind === 'pack') return packFiles(task, stop);
  if (task.kind === 'stream-out') return streamOut(task, stop);
  if (task.kind === 'unpack') return unpackRange(task, stop);
  const operation = OPERATIONS[task.kind] as Operation<PerFileTask>;
  const outcomes: FileOutcome[] = [];
  const handedBack: FileOp[] = [];
  const perDirectory = confinesPerDirectory(task);
  try {
    for (const op of task.files) {
      throwIfStopped(stop);
      if (perDirectory) {
        const dir = op.rel.slice(0, Math.max(0, op.rel.lastIndexOf('/')));
        if (sourceDirectory?.rel !== dir) {
          leaveSourceDirectory(task, outcomes);
          sourceDirectory = openSourceDirectory(task.from, dir, outcomes.length);
        }
      }
      let outcome: FileOutcome;
      try {
        outcome = operation(task, op, stop);
      } catch (error) {
        if (!(error instanceof HandedBack)) throw error;
        handedBack.push({ ...op, size: error.size });
        continue;
      }
      outcomes.push(outcome);
      // A destination that cannot be written (ENOSPC, EROFS, EIO), or a process out of descriptors, dooms
      // the whole run: stop the batch early.
      if (!outcome.ok && (outcome.problem === 'dest-failed' || outcome.problem === 'no-resources')) break;
    }
  } catch (error) {
    if (!(error instanceof RunStopped)) throw error;
  } finally {
    try {
      leaveSourceDirectory(task, outcomes);
    } finally {
      closePreviousDirectory();
    }
  }
  let bytes = 0;
  // A hard link writes no data: nothing for the flusher to push out.
  for (const outcome of outcomes) if (outcome.ok && !outcome.link?.linked) bytes += outcome.size;
  return handedBack.length === 0 ? { outcomes, bytes } : { outcomes, bytes, handedBack };
}

/** A file with a `link` plan into object storage: its outcome from the plan, unread. */
function unreadOutcome(op: FileOp, plan: LinkPlan): FileOutcome {
  if (plan.sha256 === undefined) {
    return { ok: false, rel: op.rel, problem: 'unreadable', message: 'no hash to reuse', cause: undefined };
  }
  const fields = { size: op.size, mode: plan.mode, hash: plan.sha256, replaced: false };
  return {
    ok: true,
    rel: op.rel,
    ...fields,
    ...plannedIdentity(plan),
    link: { linked: true, hashed: false },
  };
}

/** What the index records about a file linked unread: the lstat of the source that planned the link, as its plan carries it. */
function plannedIdentity(plan: LinkPlan): {
  mtimeNs: string;
  ctimeNs: string;
  ino: string;
  uid: number;
  gid: number;
} {
  const { source } = plan;
  return {
    mtimeNs: clampTimestampNs(source.mtimeNs).toString(),
    ctimeNs: clampTimestampNs(source.ctimeNs).toString(),
    ino: source.ino.toString(),
    uid: source.uid,
    gid: source.gid,
  };
}

function failedOutcome(op: FileOp, error: FileFailure): FileOutcome {
  return { ok: false, rel: op.rel, problem: error.problem, message: error.message, cause: error.plain };
}

/** Reads up to `length` bytes of an open file into `target` at `at`; returns how many there were. */
function readInto(fd: number, target: Uint8Array, at: number, length: number): number {
  let total = 0;
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, target, at + total, length - total, null);
    } catch (error) {
      throw new FileFailure('unreadable', `cannot read: ${(error as Error).message}`, toPlainError(error));
    }
    total += n;
    if (n === 0 || total >= length) return total;
  }
}

/** Opens a source file as a copy does (never through a link, confined) and checks it is still a regular file. */
function openRegularSource(from: ReadSpec, op: FileOp): { fd: number; stat: BigIntStats } {
  const fd = openSource(`${from.root}/${op.rel}`);
  try {
    assertConfined(fd, from.confineTo, 'source');
    const stat = fstatSync(fd, { bigint: true });
    if (!stat.isFile()) throw new FileFailure('not-regular', 'is no longer a regular file');
    return { fd, stat };
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

/** The tar header of an opened file: what it holds and its attributes, from its fstat. */
function tarHeaderOf(op: FileOp, stat: BigIntStats) {
  return {
    path: pathBytes(op.rel),
    size: Number(stat.size),
    mode: Number(stat.mode) & 0o7777,
    mtimeSeconds: Math.floor(Number(clampTimestampNs(stat.mtimeNs)) / 1e9),
    uid: Number(stat.uid),
    gid: Number(stat.gid),
  };
}

function packedOutcome(op: FileOp, stat: BigIntStats, digest: string): Extract<FileOutcome, { ok: true }> {
  return {
    ok: true,
    rel: op.rel,
    size: Number(stat.size),
    mode: Number(stat.mode) & 0o7777,
    mtimeNs: clampTimestampNs(stat.mtimeNs).toString(),
    hash: digest,
    ...identityOf(stat),
    replaced: op.ino !== undefined && (stat.ino !== op.ino || stat.dev !== op.dev),
  };
}

/**
 * Appends one file to the pack at `at`, opened and checked as a copy's source is; returns its outcome, where
 * its content starts (-1: not appended) and where the pack now ends.
 */
function packOne(
  task: PackTask,
  op: FileOp,
  pack: Uint8Array,
  at: number,
): { outcome: FileOutcome; offset: number; end: number } {
  const plan = op.link;
  for (let attempt = 0; ; attempt++) {
    try {
      const { fd, stat } = openRegularSource(task.from, op);
      try {
        const header = tarHeaderOf(op, stat);
        // The member, one byte more (a file that grows while read is noticed without another stat) and the
        // end blocks must fit in what is left.
        if (at + entrySize(header) + 1 + TAR_END_BYTES > pack.length) {
          throw new FileFailure('changed', `grew to ${header.size} bytes, past the room planned for it`);
        }
        const dataAt = writeFileHeader(pack, at, header);
        if (readInto(fd, pack, dataAt, header.size + 1) !== header.size) {
          throw new FileFailure('changed', 'size changed while it was read');
        }
        const after = fstatSync(fd, { bigint: true });
        if (!sameContentState(stat, after))
          throw new FileFailure('changed', 'was modified while it was read');
        const digest = hash('sha256', pack.subarray(dataAt, dataAt + header.size), 'hex');
        const outcome = packedOutcome(op, stat, digest);
        if (plan?.action === 'hash-then-link' && plan.sha256 === digest && plan.mode === outcome.mode) {
          return { outcome: { ...outcome, link: { linked: true, hashed: true } }, offset: -1, end: at };
        }
        const end = dataAt + paddedSize(header.size);
        pack.fill(0, dataAt + header.size, end);
        const link =
          plan === undefined ? {} : { link: { linked: false, hashed: plan.action === 'hash-then-link' } };
        return { outcome: { ...outcome, ...link }, offset: dataAt, end };
      } finally {
        closeSync(fd);
      }
    } catch (error) {
      if (!(error instanceof FileFailure)) throw error;
      if (error.problem === 'changed' && attempt < task.from.changedRetries) continue;
      return { outcome: failedOutcome(op, error), offset: -1, end: at };
    }
  }
}

function packFiles(task: PackTask, stop: Int32Array): PackResult {
  const pack = task.slot === null ? new Uint8Array(0) : new Uint8Array(task.slot);
  const outcomes: FileOutcome[] = [];
  const offsets: number[] = [];
  let length = 0;
  let bytes = 0;
  try {
    for (const op of task.files) {
      throwIfStopped(stop);
      if (op.link?.action === 'link') {
        outcomes.push(unreadOutcome(op, op.link));
        offsets.push(-1);
        continue;
      }
      const packed = packOne(task, op, pack, length);
      outcomes.push(packed.outcome);
      offsets.push(packed.offset);
      if (packed.offset !== -1) bytes += packed.outcome.ok ? packed.outcome.size : 0;
      length = packed.end;
      if (!packed.outcome.ok && packed.outcome.problem === 'no-resources') break;
    }
  } catch (error) {
    if (!(error instanceof RunStopped)) throw error;
  }
  if (length === 0) return { outcomes, bytes, key: task.key, offsets, length };
  pack.fill(0, length, length + TAR_END_BYTES);
  length += TAR_END_BYTES;
  const body = pack.subarray(0, length);
  const md5 = createHash('md5').update(body).digest('base64');
  return { outcomes, bytes, key: task.key, offsets, length, sha256: hash('sha256', body, 'hex'), md5 };
}

/** The upload of a streamed object failed, or the run stopped: the stream ends without its file. */
class StreamAborted extends Error {}

/** Hands out a stream's parts through the ring, waiting while the next slot is still being uploaded. */
class PartRing {
  readonly #task: StreamOutTask;
  readonly #ring: Uint8Array;
  readonly #states: Int32Array;
  readonly #stop: Int32Array;
  #part = 0;
  #filled = 0;
  #slot: Uint8Array | null = null;

  constructor(task: StreamOutTask, stop: Int32Array) {
    this.#task = task;
    this.#ring = new Uint8Array(task.ring);
    this.#states = new Int32Array(task.states);
    this.#stop = stop;
  }

  #index(): number {
    return this.#part % RING_SLOTS;
  }

  /** Waits until slot `index` is free (its part uploaded); a raised abort or stop flag ends the stream. */
  #waitFree(index: number): void {
    for (;;) {
      if (Atomics.load(this.#states, RING_ABORT) !== 0) throw new StreamAborted('the upload failed');
      throwIfStopped(this.#stop);
      if (Atomics.load(this.#states, index) === PART_EMPTY) return;
      Atomics.wait(this.#states, index, PART_FULL, 100);
    }
  }

  /** The free room of the current part, waiting for a slot when none is open. */
  room(): Uint8Array {
    if (this.#slot === null) {
      const index = this.#index();
      this.#waitFree(index);
      const start = index * this.#task.partBytes;
      this.#slot = this.#ring.subarray(start, start + this.#task.partBytes);
      this.#filled = 0;
    }
    return this.#slot.subarray(this.#filled);
  }

  /** `n` bytes were put into `room()`; a full part is handed to the main thread. */
  advance(n: number): void {
    this.#filled += n;
    if (this.#filled === this.#task.partBytes) this.#publish();
  }

  /** Copies `bytes` into the stream. */
  put(bytes: Uint8Array): void {
    let at = 0;
    while (at < bytes.length) {
      const room = this.room();
      const n = Math.min(room.length, bytes.length - at);
      room.set(bytes.subarray(at, at + n));
      at += n;
      this.advance(n);
    }
  }

  #publish(): void {
    const index = this.#index();
    Atomics.store(this.#states, RING_LENGTH(index), this.#filled);
    Atomics.store(this.#states, RING_PART(index), this.#part);
    Atomics.store(this.#states, index, PART_FULL);
    Atomics.notify(this.#states, index);
    this.#slot = null;
    this.#part++;
  }

  /** Hands out the last part and marks the end of the stream. */
  end(): void {
    if (this.#slot !== null && this.#filled > 0) this.#publish();
    const index = this.#index();
    this.#waitFree(index);
    Atomics.store(this.#states, index, PARTS_END);
    Atomics.notify(this.#states, index);
  }

  /** Tells the main thread the stream failed (the upload must be abandoned). */
  fail(): void {
    Atomics.compareExchange(this.#states, RING_ABORT, 0, 2);
    for (let index = 0; index < RING_SLOTS; index++) Atomics.notify(this.#states, index);
  }
}

/**
 * A large file as a one-member tar, streamed out through the ring: header, content (hashed as it is read),
 * padding and end blocks. A file that changed while it was read is reported, never retried: its first parts
 * may already be uploaded.
 */
function streamOut(task: StreamOutTask, stop: Int32Array): PackResult {
  const [op] = task.files;
  if (op === undefined) return { outcomes: [], bytes: 0, key: task.key, offsets: [], length: 0 };
  const ring = new PartRing(task, stop);
  const failed = (outcome: FileOutcome): PackResult => {
    ring.fail();
    return { outcomes: [outcome], bytes: 0, key: task.key, offsets: [-1], length: 0 };
  };
  try {
    const { fd, stat } = openRegularSource(task.from, op);
    try {
      const header = tarHeaderOf(op, stat);
      const headerBytes = new Uint8Array(entrySize({ ...header, size: 0 }));
      const offset = writeFileHeader(headerBytes, 0, header);
      ring.put(headerBytes.subarray(0, offset));
      const hasher = createHash('sha256');
      let total = 0;
      while (total < header.size) {
        const room = ring.room();
        const n = readInto(fd, room, 0, Math.min(room.length, header.size - total));
        if (n === 0) break;
        hasher.update(room.subarray(0, n));
        total += n;
        ring.advance(n);
      }
      const after = fstatSync(fd, { bigint: true });
      if (total !== header.size || !sameContentState(stat, after)) {
        throw new FileFailure('changed', 'was modified while it was read');
      }
      ring.put(new Uint8Array(paddedSize(header.size) - header.size + TAR_END_BYTES));
      ring.end();
      const outcome = packedOutcome(op, stat, hasher.digest('hex'));
      const length = offset + paddedSize(header.size) + TAR_END_BYTES;
      return { outcomes: [outcome], bytes: header.size, key: task.key, offsets: [offset], length };
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    if (error instanceof FileFailure) return failed(failedOutcome(op, error));
    if (error instanceof StreamAborted) {
      return failed({
        ok: false,
        rel: op.rel,
        problem: 'dest-failed',
        message: error.message,
        cause: undefined,
      });
    }
    ring.fail();
    if (error instanceof RunStopped) return { outcomes: [], bytes: 0, key: task.key, offsets: [], length: 0 };
    throw error;
  }
}
