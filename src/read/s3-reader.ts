// The BackupReader of a snapshot in object storage: its manifest (one GET, validated, its id checked), its index
// (validated line by line against the manifest's object table), and its files' contents fetched in ranged GETs
// that coalesce neighbouring files of one data object, each GET becoming one `unpack` task for the workers.

import { MessageChannel, type MessagePort } from 'node:worker_threads';
import pLimit, { type LimitFunction } from 'p-limit';
import { type ErrorCode, isStatesnapError, StatesnapError } from '../core/errors.js';
import type { EntrySource, RemoteContent } from '../core/pipeline.js';
import {
  type FileOp,
  PART_COUNTER,
  type PartMessage,
  type ReadSpec,
  type UnpackedFile,
  type WorkerTask,
  type WriteSpec,
} from '../core/protocol.js';
import type { EntrySink } from '../core/walk.js';
import {
  isSnapshotId,
  REPOSITORY_MARKER_KEY,
  readS3Index,
  type S3Manifest,
  SNAPSHOTS_PREFIX,
} from '../format/s3-index.js';
import type { S3Storage } from '../s3/client.js';
import { formatS3Location, parseS3Location, type S3Location } from '../s3/location.js';
import type { S3Options } from '../s3/settings.js';
import type { BackupReader, ReadOptions } from './backup-reader.js';
import { recordedDir, recordedFile, sendIndexEntries } from './backup-reader.js';
import { newestS3Snapshot, readS3Manifest, requireS3Repository } from './s3-repository.js';

/** The word that names a repository's newest complete snapshot in place of its id. */
export const LATEST = 'latest';

/** Neighbouring files of one object join one GET while the bytes between them are at most this many. */
const MAX_GAP_BYTES = 1 << 20;
/** One GET reads at most this many bytes; a larger file is fetched in parts. */
const MAX_GET_BYTES = 16 << 20;
/** The index is read in ranges of this size, one after another: never held whole. */
const INDEX_RANGE_BYTES = 8 << 20;
/** The parts a larger file is fetched in, and how many may wait for the worker writing it. */
const PART_BYTES = 8 << 20;
const PARTS_AHEAD = 2;

/** `s3://bucket/prefix/<id>` or `…/latest`: the repository and the snapshot (null: the newest). */
export function parseSnapshotLocation(location: string): { repository: S3Location; id: string | null } {
  const { bucket, prefix } = parseS3Location(location);
  const slash = prefix.lastIndexOf('/');
  const last = prefix.slice(slash + 1);
  if (last !== LATEST && !isSnapshotId(last)) {
    throw new StatesnapError(
      'ERR_S3_LOCATION_INVALID',
      `${JSON.stringify(location)} names no snapshot (expected s3://bucket/prefix/<snapshot id> or s3://bucket/prefix/latest)`,
      { path: location },
    );
  }
  return {
    repository: { bucket, prefix: slash === -1 ? '' : prefix.slice(0, slash) },
    id: last === LATEST ? null : last,
  };
}

/** A snapshot that cannot be read: the snapshot and the object named, in one line. */
function snapshotError(code: ErrorCode, id: string, message: string, path: string, cause?: unknown) {
  return new StatesnapError(code, `snapshot ${id}: ${message}`, { path, cause });
}

/**
 * Opens the snapshot `location` names (`s3://bucket/prefix/<id>` or `…/latest`): connects, checks the
 * repository marker, reads and validates the manifest. The caller closes the reader.
 */
export async function openS3Snapshot(
  location: string,
  options: S3Options & { signal?: AbortSignal } = {},
): Promise<S3Snapshot> {
  const { repository, id: wanted } = parseSnapshotLocation(location);
  const { S3Storage } = await import('../s3/client.js');
  const storage = await S3Storage.open(repository, options);
  try {
    const { signal } = options;
    try {
      await requireS3Repository(storage, signal);
    } catch (error) {
      // `s3://bucket/repo` read as snapshot `repo` of `s3://bucket`: say what the user named instead.
      if (
        wanted !== null &&
        isStatesnapError(error, 'ERR_REPO_INVALID') &&
        (await storage.headObject(`${wanted}/${REPOSITORY_MARKER_KEY}`, { signal })) !== null
      ) {
        throw new StatesnapError(
          'ERR_S3_LOCATION_INVALID',
          `${location} is a repository, not a snapshot: name one of its snapshots (${location}/<snapshot id> or ${location}/latest)`,
          { path: location },
        );
      }
      throw error;
    }
    let found: { id: string; manifest: S3Manifest };
    if (wanted === null) {
      const newest = await newestS3Snapshot(storage, signal);
      if (newest === null) {
        const where = storage.describe();
        throw new StatesnapError(
          'ERR_SNAPSHOT_NOT_FOUND',
          `repository ${where} has no complete snapshot yet`,
          {
            path: where,
          },
        );
      }
      found = newest;
    } else {
      const manifest = await readS3Manifest(storage, wanted, signal);
      if (manifest === null) {
        const where = formatS3Location(repository, `${SNAPSHOTS_PREFIX}${wanted}`);
        throw new StatesnapError(
          'ERR_SNAPSHOT_NOT_FOUND',
          `snapshot ${where} does not exist (no manifest.json: never committed, or removed)`,
          { path: where },
        );
      }
      found = { id: wanted, manifest };
    }
    return new S3Snapshot(storage, found.id, found.manifest);
  } catch (error) {
    storage.close();
    throw error;
  }
}

// Node has had Atomics.waitAsync since 16; TypeScript declares it only from lib es2024 on.
const { waitAsync } = Atomics as unknown as {
  waitAsync(
    array: Int32Array,
    index: number,
    value: number,
    timeoutMs: number,
  ): { value: Promise<string> | string };
};

/** Where a file's content lies; every file an S3 snapshot streams has it. */
function storedOf(op: FileOp): { object: string; offset: number } {
  const stored = op.stored;
  if (stored === undefined) throw new Error(`file ${op.rel} was streamed without its object`);
  return stored;
}

/** A downloaded range as a buffer of its own, so it can be moved to a worker without taking others' bytes. */
function ownBuffer(bytes: Buffer): ArrayBuffer {
  if (
    bytes.byteOffset === 0 &&
    bytes.byteLength === bytes.buffer.byteLength &&
    bytes.buffer instanceof ArrayBuffer
  )
    return bytes.buffer;
  const copy = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(copy).set(bytes);
  return copy;
}

/** Groups a snapshot's files into ranged GETs and turns each into an `unpack` task. */
class FetchPlanner implements RemoteContent {
  readonly #limit: LimitFunction;

  constructor(
    readonly snapshot: S3Snapshot,
    concurrency: number,
  ) {
    this.#limit = pLimit(concurrency);
  }

  joins(batch: readonly FileOp[], _batchBytes: number, next: FileOp): boolean {
    const first = storedOf(batch[0]!);
    const last = batch.at(-1)!;
    const lastEnd = storedOf(last).offset + last.size;
    const { object, offset } = storedOf(next);
    return (
      object === first.object &&
      offset >= lastEnd &&
      offset - lastEnd <= MAX_GAP_BYTES &&
      offset + next.size - first.offset <= MAX_GET_BYTES
    );
  }

  async task(files: FileOp[], to: WriteSpec | null, signal: AbortSignal): Promise<WorkerTask> {
    const first = files[0]!;
    if (first.size > MAX_GET_BYTES) return this.#streamed(first, to, signal);
    const { object, offset: start } = storedOf(first);
    const end = Math.max(...files.map((file) => storedOf(file).offset + file.size));
    const bytes = await this.#limit(() => this.snapshot.fetch(object, start, end - start, signal));
    const unpacked: UnpackedFile[] = files.map((file) => ({ ...file, at: storedOf(file).offset - start }));
    const origin = `object ${this.snapshot.storage.describe(object)} (bytes ${start}-${end - 1})`;
    return { kind: 'unpack', data: ownBuffer(bytes), origin, files: unpacked, to };
  }

  /**
   * A file larger than one GET: its first part now, the others fetched in order by `#feed` while the worker
   * writes, never more than `PARTS_AHEAD` of them waiting, so memory stays bounded whatever the file's size.
   */
  async #streamed(file: FileOp, to: WriteSpec | null, signal: AbortSignal): Promise<WorkerTask> {
    const { object, offset } = storedOf(file);
    const parts = Math.ceil(file.size / PART_BYTES);
    const first = await this.#limit(() => this.snapshot.fetch(object, offset, PART_BYTES, signal));
    const { port1, port2 } = new MessageChannel();
    const counters = new SharedArrayBuffer(3 * Int32Array.BYTES_PER_ELEMENT);
    void this.#feed(port1, new Int32Array(counters), file, parts, signal);
    const origin = `object ${this.snapshot.storage.describe(object)} (bytes ${offset}-${offset + file.size - 1})`;
    return {
      kind: 'unpack',
      data: ownBuffer(first),
      origin,
      files: [{ ...file, at: 0 }],
      to,
      stream: { port: port2, counters, parts },
    };
  }

  /** Posts parts 2… of a streamed file to its worker; a failed GET is posted as the file's problem. */
  async #feed(
    port: MessagePort,
    counters: Int32Array,
    file: FileOp,
    parts: number,
    signal: AbortSignal,
  ): Promise<void> {
    const { object, offset } = storedOf(file);
    const post = (message: PartMessage, transfer: ArrayBuffer[] = []) => {
      port.postMessage(message, transfer);
      Atomics.add(counters, PART_COUNTER.posted, 1);
      Atomics.notify(counters, PART_COUNTER.posted);
    };
    // The worker is done (or the run stopped, and the worker with it): nothing more to send.
    const workerDone = () => Atomics.load(counters, PART_COUNTER.done) !== 0 || signal.aborted;
    try {
      for (let part = 1; part < parts && !workerDone(); part++) {
        for (;;) {
          const taken = Atomics.load(counters, PART_COUNTER.taken);
          if (part - 1 - taken < PARTS_AHEAD || workerDone()) break;
          await waitAsync(counters, PART_COUNTER.taken, taken, 1000).value;
        }
        if (workerDone()) break;
        const start = part * PART_BYTES;
        const length = Math.min(PART_BYTES, file.size - start);
        const bytes = ownBuffer(
          await this.#limit(() => this.snapshot.fetch(object, offset + start, length, signal)),
        );
        post({ data: bytes }, [bytes]);
      }
    } catch (error) {
      const problem = isStatesnapError(error, 'ERR_BACKUP_CORRUPT') ? 'corrupt' : 'unreadable';
      post({ failed: { problem, message: (error as Error).message } });
    }
  }
}

export class S3Snapshot implements BackupReader {
  readonly kind = 'statesnap';
  readonly local = false;
  readonly format = 2;
  readonly confineTo = null;
  /** `s3://bucket/prefix/snapshots/<id>`: how every message names the snapshot. */
  readonly root: string;
  readonly manifest: S3Manifest;
  readonly extras: S3Manifest['statesnap'];

  constructor(
    readonly storage: S3Storage,
    readonly id: string,
    manifest: S3Manifest,
  ) {
    this.manifest = manifest;
    this.extras = manifest.statesnap;
    this.root = storage.describe(`${SNAPSHOTS_PREFIX}${id}`);
  }

  close(): void {
    this.storage.close();
  }

  notes(): [] {
    return [];
  }

  /**
   * A missing or short object of this snapshot as `code`, naming the snapshot and the object (`what` says
   * which); any other failure (the server, the network) stays the client's one-line error.
   */
  #damaged(error: unknown, code: ErrorCode, what: string, key: string): unknown {
    const where = this.storage.describe(key);
    if (isStatesnapError(error, 'ERR_S3_NOT_FOUND'))
      return snapshotError(code, this.id, `${what} ${where} is missing (NoSuchKey)`, where, error);
    if (isStatesnapError(error, 'ERR_BACKUP_CORRUPT'))
      return snapshotError(code, this.id, error.message, where, error);
    return error;
  }

  /** `length` bytes of data object `object` from `offset`. */
  async fetch(object: string, offset: number, length: number, signal: AbortSignal): Promise<Buffer> {
    try {
      return await this.storage.getRange(object, offset, length, { signal });
    } catch (error) {
      throw this.#damaged(error, 'ERR_BACKUP_CORRUPT', 'object', object);
    }
  }

  source(options: ReadOptions): EntrySource {
    // Workers read nothing from here (`unpack` tasks carry the bytes); the spec only names the snapshot.
    const read: ReadSpec = {
      root: this.root,
      confineTo: null,
      attributesFrom: 'op',
      changedRetries: 0,
      expectSize: true,
    };
    return {
      read,
      entries: (sink, signal) => this.#entries(sink, options, signal),
      remote: new FetchPlanner(this, this.storage.settings.concurrency),
    };
  }

  /** The index's stored bytes, in ranges one after another. */
  async *#indexBytes(signal: AbortSignal): AsyncGenerator<Buffer> {
    const { key, bytes } = this.extras.s3.index;
    try {
      yield* this.storage.readInRanges(key, bytes, INDEX_RANGE_BYTES, { signal });
    } catch (error) {
      throw this.#damaged(error, 'ERR_INDEX_INVALID', 'index', key);
    }
  }

  async #entries(sink: EntrySink, options: ReadOptions, signal: AbortSignal): Promise<void> {
    const { s3, root } = this.extras;
    sink.dir(recordedDir('', root));
    const entries = readS3Index(
      this.#indexBytes(signal),
      { index: s3.index, objects: s3.objects },
      this.storage.describe(s3.index.key),
      { refuseCaseCollisions: options.refuseCaseCollisions },
    );
    await sendIndexEntries(entries, sink, signal, this.root, (file) => ({
      ...recordedFile(file, options),
      stored: { object: file.object, offset: file.offset },
    }));
  }
}
