// A backup into object storage (docs/s3-design.md, "Snapshot to S3"): the pipeline's destination that plans
// packs from the walk's sizes, has workers fill them (and stream large files out in parts), uploads them with
// bounded concurrency, writes the index in canonical order as gzip'd parts, and commits with the manifest,
// put only if absent, after everything it names is stored.

import { setMaxListeners } from 'node:events';
import { assert, StatesnapError, throwIfAborted } from '../core/errors.js';
import { ReorderBuffer } from '../core/index-order.js';
import { resolveReadPath, SOURCE_AND_DESTINATION } from '../core/paths.js';
import type { Destination, FileFailed, FileWritten } from '../core/pipeline.js';
import { runPipeline } from '../core/pipeline.js';
import { progressReporter } from '../core/progress.js';
import {
  type FileOp,
  HASH_ALGORITHM,
  PART_EMPTY,
  PART_FULL,
  PARTS_END,
  type PackResult,
  pathBytes,
  type ReadSpec,
  RING_ABORT,
  RING_LENGTH,
  RING_PART,
  RING_SLOTS,
  RING_STATES,
  type StoredContent,
  type TaskResult,
  type WorkerTask,
} from '../core/protocol.js';
import type { PlannedDir, SkipKind } from '../core/walk.js';
import type { RootRecord } from '../format/manifest.js';
import { serializeManifest } from '../format/manifest.js';
import {
  manifestKey,
  newDataKey,
  newIndexKey,
  PACK_FORMAT,
  type S3Block,
  type S3IndexEntry,
  S3IndexWriter,
  type S3Manifest,
  type S3ObjectRecord,
} from '../format/s3-index.js';
import { entrySize, TAR_END_BYTES } from '../format/tar.js';
import type { S3Storage } from '../s3/client.js';
import {
  type BackupOptions,
  type BackupResult,
  copySource,
  manifestOf,
  progressOf,
  resolveBackupOptions,
  sectionsOf,
  summaryOf,
} from './backup.js';
import { countWritten, noneWritten, type WriteCounts } from './backup-writer.js';
import type { JoinCounts, LinkSource } from './link-source.js';

/** Files this large are objects of their own, streamed out in parts (the pool sends them alone too). */
export const LARGE_FILE_BYTES = 4 * 1024 * 1024;
/** A pack closes near this many bytes of file content, and parts of streamed objects and the index are this big. */
const PACK_CONTENT_BYTES = 14 * 1024 * 1024;
// Every file of a pack in flight is held on both threads (its op, its outcome, its index line waiting for its
// turn): a store of tiny files fills packs by count, and 2,048 of them still make objects of 1-3 MiB.
const PACK_MAX_FILES = 2048;
const PART_BYTES = 8 * 1024 * 1024;
// Room in a pack's slot for files that grew between the walk and their read, and for pax records the walk's
// sizes cannot foresee (an owner or mtime past ustar's fields).
const SLOT_HEADROOM_BYTES = 1024 * 1024;
const PAX_ALLOWANCE_BYTES = 1024;
// Pack slots are reused (the garbage collector frees shared memory late: a new slot per pack made a snapshot's
// memory grow with its number of packs). Sizes are rounded up to this step so a spare fits the next pack.
const SLOT_SIZE_STEP = 4 * 1024 * 1024;
// The index is held in memory up to this size and put in one request; beyond, it goes in parts.
const INDEX_SINGLE_PUT_PARTS = 2;

/** What commits a snapshot: called around the manifest's PUT (the repository's writer lock). */
export interface CommitGuard {
  /** Before the manifest is written: refreshes the lock (fails when it is lost). */
  beforeCommit(): Promise<void>;
  /** After the manifest is written: throws when the lock may have been lost meanwhile. */
  afterCommit(): void;
}

/** The snapshot the new one is compared with: its index's entries and the objects they point into. */
export interface S3BaseSnapshot {
  id: string;
  createdAt: string;
  link: LinkSource;
  objects: readonly S3ObjectRecord[];
}

/** Settles a place in the queue: with the upload it became, or with null when nothing is uploaded. */
type Place = (upload: Promise<unknown> | null) => void;

/**
 * Uploads with at most `limit` in flight, counting the objects still being filled for them (a pack's slot is
 * in use from its task to the end of its upload); the first failure is kept and stops the run.
 */
class UploadQueue {
  readonly #limit: number;
  readonly #running = new Set<Promise<void>>();
  readonly #unsettled = new Set<Place>();
  #failure: unknown = null;
  #failed = false;

  constructor(limit: number) {
    this.#limit = limit;
  }

  /**
   * Waits until another object may be filled and uploaded, and holds its place; throws the first failure, and
   * stops waiting when `signal` fires: a stopped pass drops tasks whose places are given up only once it has
   * settled, so a waiter could otherwise wait for places that nothing will free.
   */
  async place(signal: AbortSignal): Promise<Place> {
    while (this.#running.size >= this.#limit && !signal.aborted)
      await Promise.race([...this.#running, this.#stopOf(signal)]);
    signal.throwIfAborted();
    this.throwIfFailed();
    let settle!: Place;
    const upload = new Promise<Promise<unknown> | null>((resolve) => {
      settle = resolve;
    });
    this.#track(upload.then((settled) => settled));
    const place: Place = (settled) => {
      this.#unsettled.delete(place);
      settle(settled);
    };
    this.#unsettled.add(place);
    return place;
  }

  // One listener per pass's signal, shared by every waiter: a listener each would pass the signal's limit.
  readonly #stops = new WeakMap<AbortSignal, Promise<void>>();

  #stopOf(signal: AbortSignal): Promise<void> {
    let stop = this.#stops.get(signal);
    if (stop === undefined) {
      stop = new Promise<void>((resolve) =>
        signal.addEventListener('abort', () => resolve(), { once: true }),
      );
      this.#stops.set(signal, stop);
    }
    return stop;
  }

  /** Gives up the places whose objects will never be uploaded (the run failed while they were filled). */
  abandonPlaces(): void {
    for (const place of [...this.#unsettled]) place(null);
  }

  #track(upload: Promise<unknown>): void {
    const tracked: Promise<void> = upload.then(
      () => void this.#running.delete(tracked),
      (error: unknown) => {
        this.#running.delete(tracked);
        if (!this.#failed) {
          this.#failed = true;
          this.#failure = error;
        }
      },
    );
    this.#running.add(tracked);
  }

  throwIfFailed(): void {
    if (this.#failed) throw this.#failure;
  }

  get failure(): unknown {
    return this.#failure;
  }

  /** Waits for every upload; throws the first failure. */
  async drain(): Promise<void> {
    while (this.#running.size > 0) await Promise.race(this.#running);
    this.throwIfFailed();
  }

  /** Waits for every upload, failed or not. */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.#running]);
  }
}

/** The stream of a file the worker could not read to its end: no upload failure, the file's outcome says why. */
class StreamWithdrawn extends Error {}

// Node has had Atomics.waitAsync since 16; TypeScript declares it only from the ES2024 library on.
const waitAsync = (
  Atomics as unknown as {
    waitAsync(
      array: Int32Array,
      index: number,
      value: number,
      timeoutMs: number,
    ): { async: false; value: string } | { async: true; value: Promise<string> };
  }
).waitAsync;

/** Waits until `states[index]` may no longer be `value` (or a second passed). */
async function waitForChange(states: Int32Array, index: number, value: number): Promise<void> {
  const wait = waitAsync(states, index, value, 1000);
  if (!wait.async) return;
  // A pending Atomics.waitAsync does not keep the event loop alive; this timer does, while it waits.
  const keepAlive = setTimeout(() => undefined, 1000);
  try {
    await wait.value;
  } finally {
    clearTimeout(keepAlive);
  }
}

/**
 * The parts a `stream-out` task hands over through its ring, as the multipart upload pulls them. Part `n` is
 * taken from its slot only once the worker put that part there (the slot may still hold part `n - 3`, not
 * uploaded yet); a slot goes back to the worker when its part is uploaded (`release`).
 */
async function* ringParts(
  ring: SharedArrayBuffer,
  states: Int32Array,
  signal: AbortSignal,
): AsyncGenerator<Uint8Array> {
  for (let part = 0; ; part++) {
    const slot = part % RING_SLOTS;
    for (;;) {
      if (Atomics.load(states, RING_ABORT) !== 0) throw new StreamWithdrawn('the stream was stopped');
      const state = Atomics.load(states, slot);
      if (state === PARTS_END) return;
      if (state === PART_FULL && Atomics.load(states, RING_PART(slot)) === part) break;
      if (signal.aborted) throw new StreamWithdrawn('the run stopped');
      await waitForChange(states, slot, state);
    }
    yield new Uint8Array(ring, slot * PART_BYTES, Atomics.load(states, RING_LENGTH(slot)));
  }
}

/** Gives a ring's slot back to the worker once its part is uploaded. */
function releasePart(states: Int32Array, partNumber: number): void {
  const slot = (partNumber - 1) % RING_SLOTS;
  Atomics.store(states, slot, PART_EMPTY);
  Atomics.notify(states, slot);
}

/** Ends a stream from the main thread: the worker stops at its next wait, and so does the reader. */
function abortRing(states: Int32Array): void {
  Atomics.compareExchange(states, RING_ABORT, 0, 1);
  for (let slot = 0; slot < RING_SLOTS; slot++) Atomics.notify(states, slot);
}

/** Puts an index: in one request when it comes in at most two parts, else as a multipart upload of its parts. */
export async function uploadIndex(
  storage: S3Storage,
  key: string,
  parts: AsyncGenerator<Buffer>,
  signal: AbortSignal,
): Promise<void> {
  const held: Buffer[] = [];
  for (;;) {
    const next = await parts.next();
    if (next.done) break;
    held.push(next.value);
    if (held.length > INDEX_SINGLE_PUT_PARTS) {
      // Handed over one by one: a part stays in memory only until its upload is done with it.
      const rest = async function* () {
        for (let part = held.shift(); part !== undefined; part = held.shift()) yield part;
        yield* parts;
      };
      await storage.putMultipart(key, rest(), { signal });
      return;
    }
  }
  await storage.putObject(key, Buffer.concat(held), { signal });
}

interface Planned {
  ticket: number;
  stored: StoredContent | undefined;
}

/** What the uploads of a run added up to. */
export interface UploadCounts {
  /** Bytes of data objects uploaded (packs and large files, tar headers included). */
  bytesUploaded: number;
  objectsUploaded: number;
}

/** The pipeline's destination for a snapshot in object storage. */
export class S3Writer implements Destination {
  readonly location: string;
  readonly batchLimits = { files: PACK_MAX_FILES, bytes: PACK_CONTENT_BYTES };
  readonly #storage: S3Storage;
  readonly #index: S3IndexWriter;
  readonly #indexKey: string;
  readonly #indexUpload: Promise<void>;
  readonly #order: ReorderBuffer<S3IndexEntry | null>;
  readonly #planned = new Map<string, Planned>();
  /** Per pack being filled: its slot, and its place in the upload queue. */
  readonly #filling = new Map<string, { slot: SharedArrayBuffer; place: Place }>();
  /** Slots whose pack is uploaded: never more than were in use at once. */
  readonly #spareSlots: SharedArrayBuffer[] = [];
  readonly #rings: SharedArrayBuffer[] = [];
  /** Per stream-out task in flight: called when its result is in. */
  readonly #streamsRunning = new Map<string, () => void>();
  readonly #uploads: UploadQueue;
  readonly #abort = new AbortController();
  #root: RootRecord | null = null;
  readonly counts: WriteCounts = noneWritten();
  readonly uploaded: UploadCounts = { bytesUploaded: 0, objectsUploaded: 0 };

  constructor(storage: S3Storage, id: string, base: S3BaseSnapshot | null) {
    this.#storage = storage;
    this.location = storage.describe();
    this.#uploads = new UploadQueue(storage.settings.concurrency);
    // Every request in flight (and every part of every multipart upload) listens to it.
    setMaxListeners(0, this.#abort.signal);
    this.#index = new S3IndexWriter(PART_BYTES);
    for (const object of base?.objects ?? []) this.#index.declareObject(object.key, object.size);
    this.#indexKey = newIndexKey(id);
    this.#indexUpload = uploadIndex(storage, this.#indexKey, this.#index.parts(), this.#abort.signal);
    // Its failure is awaited at commit; until then it must not count as unhandled.
    this.#indexUpload.catch(() => {});
    this.#order = new ReorderBuffer((entry) => {
      if (entry !== null) this.#index.add(entry);
    });
  }

  dir(dir: PlannedDir): void {
    assert(dir.uid !== undefined && dir.gid !== undefined, `the walk gave ${dir.rel} no owner`);
    const attributes = { mode: dir.mode, mtime_ns: dir.mtimeNs.toString(), uid: dir.uid, gid: dir.gid };
    if (dir.rel === '') this.#root = attributes;
    else this.#order.push({ path: dir.rel, type: 'dir', ...attributes });
  }

  rootRecord(): RootRecord {
    assert(this.#root !== null, 'the source root was not the first directory');
    return this.#root;
  }

  file(op: FileOp): void {
    this.#planned.set(op.rel, { ticket: this.#order.reserve(), stored: op.link?.stored });
  }

  skipped(rel: string, kind: SkipKind): void {
    if (kind !== 'excluded' && kind !== 'reserved')
      this.#order.push({ path: rel, type: kind, skipped: true });
  }

  async task(files: FileOp[], from: ReadSpec, signal: AbortSignal): Promise<WorkerTask> {
    const place = await this.#uploads.place(signal);
    const key = newDataKey();
    const [first] = files;
    if (
      files.length === 1 &&
      first !== undefined &&
      first.size >= LARGE_FILE_BYTES &&
      first.link?.action !== 'link'
    ) {
      return this.#streamTask(files, from, key, place);
    }
    let room = 0;
    for (const op of files) {
      if (op.link?.action === 'link') continue;
      const header = { path: pathBytes(op.rel), size: op.size, mode: 0, mtimeSeconds: 0, uid: 0, gid: 0 };
      room += entrySize(header) + PAX_ALLOWANCE_BYTES;
    }
    let slot: SharedArrayBuffer | null = null;
    if (room > 0) {
      slot = this.#takeSlot(room + SLOT_HEADROOM_BYTES + TAR_END_BYTES);
      this.#filling.set(key, { slot, place });
    } else place(null);
    return { kind: 'pack', files, from, key, slot };
  }

  /** A spare slot of at least `bytes`, or a new one; a spare too small for this pack is dropped. */
  #takeSlot(bytes: number): SharedArrayBuffer {
    const fits = this.#spareSlots.findIndex((spare) => spare.byteLength >= bytes);
    if (fits !== -1) return this.#spareSlots.splice(fits, 1)[0]!;
    this.#spareSlots.pop();
    return new SharedArrayBuffer(Math.ceil(bytes / SLOT_SIZE_STEP) * SLOT_SIZE_STEP);
  }

  /** A large file's task, and the multipart upload that takes its parts as the worker hands them over. */
  #streamTask(files: FileOp[], from: ReadSpec, key: string, place: Place): WorkerTask {
    // Rings are reused: the garbage collector frees shared memory late, and each holds three parts.
    const ring = this.#rings.pop() ?? new SharedArrayBuffer(RING_SLOTS * PART_BYTES);
    const shared = new SharedArrayBuffer(RING_STATES * Int32Array.BYTES_PER_ELEMENT);
    const states = new Int32Array(shared);
    const signal = this.#abort.signal;
    // A failed part ends the stream at once: the worker and the reader may be waiting for each other.
    let partFailure: unknown = null;
    const upload = this.#storage
      .putMultipart(key, ringParts(ring, states, signal), {
        signal,
        onPartDone: (partNumber) => releasePart(states, partNumber),
        onPartFailed: (error) => {
          partFailure ??= error;
          abortRing(states);
        },
      })
      .then(
        ({ bytes }) => {
          this.uploaded.bytesUploaded += bytes;
          this.uploaded.objectsUploaded++;
        },
        (error: unknown) => {
          abortRing(states);
          if (partFailure !== null) throw partFailure;
          // The worker withdrew the file (it vanished, changed, the run stopped): its outcome says why.
          if (!(error instanceof StreamWithdrawn) || Atomics.load(states, RING_ABORT) !== 2) throw error;
        },
      );
    place(upload);
    // The ring is reused once both its upload and its worker are done with it.
    const taskEnded = new Promise<void>((resolve) => this.#streamsRunning.set(key, resolve));
    void Promise.allSettled([upload, taskEnded]).then(() => this.#rings.push(ring));
    return { kind: 'stream-out', files, from, key, partBytes: PART_BYTES, ring, states: shared };
  }

  fileDone(file: FileWritten): void {
    countWritten(this.counts, file);
  }

  fileLost(file: FileFailed): void {
    this.#fill(file.rel, null);
  }

  #fill(rel: string, entry: S3IndexEntry | null): number | undefined {
    const planned = this.#planned.get(rel);
    assert(planned !== undefined, `a worker reported ${rel}, which was not planned`);
    this.#planned.delete(rel);
    this.#order.fill(planned.ticket, entry);
    return planned.ticket;
  }

  written(result: TaskResult): void {
    const { key, offsets, length, sha256, md5 } = result as PackResult;
    this.#streamsRunning.get(key)?.();
    this.#streamsRunning.delete(key);
    const filled = this.#filling.get(key);
    this.#filling.delete(key);
    if (length > 0) this.#index.declareObject(key, length);
    if (filled !== undefined && length > 0) {
      const { slot, place } = filled;
      const body = new Uint8Array(slot, 0, length);
      const signal = this.#abort.signal;
      const upload = this.#storage.putObject(key, body, { sha256, contentMd5: md5, signal }).then(() => {
        this.uploaded.bytesUploaded += length;
        this.uploaded.objectsUploaded++;
      });
      place(upload);
      // The request may still read the slot until it settles, failed or not.
      void upload.then(
        () => this.#spareSlots.push(slot),
        () => this.#spareSlots.push(slot),
      );
    } else if (filled !== undefined) {
      this.#spareSlots.push(filled.slot);
      filled.place(null);
    }
    result.outcomes.forEach((outcome, i) => {
      if (!outcome.ok) return;
      const stored = this.#planned.get(outcome.rel)?.stored;
      const where = outcome.link?.linked
        ? { object: stored?.object, offset: stored?.offset, reused: true as const }
        : { object: key, offset: offsets[i] };
      assert(
        where.object !== undefined && where.offset !== undefined && where.offset >= 0,
        `${outcome.rel} has no content`,
      );
      this.#fill(outcome.rel, {
        path: outcome.rel,
        type: 'file',
        size: outcome.size,
        mode: outcome.mode,
        mtime_ns: outcome.mtimeNs,
        ctime_ns: outcome.ctimeNs,
        ino: outcome.ino,
        uid: outcome.uid,
        gid: outcome.gid,
        sha256: outcome.hash,
        ...(where as { object: string; offset: number; reused?: true }),
      });
    });
  }

  writeFailed(file: FileFailed): Error {
    const failure = this.#uploads.failure;
    if (failure instanceof Error) return failure;
    return new StatesnapError('ERR_S3_REQUEST', `cannot write ${this.location}: ${file.message}`, {
      path: this.location,
    });
  }

  explain(error: unknown): unknown {
    return error;
  }

  /**
   * Waits for every data object, ends and puts the index, then the manifest (only if absent) between the
   * guard's two checks. After this the snapshot exists.
   */
  async commit(
    manifestWith: (s3: S3Block) => S3Manifest,
    guard: CommitGuard,
    signal: AbortSignal,
  ): Promise<S3Manifest> {
    await this.#uploads.drain();
    // An interrupt during the last uploads leaves no index either: the run's abandon() stops its upload.
    throwIfAborted(signal, this.location);
    this.#order.close();
    const summary = await this.#index.finish();
    await this.#indexUpload;
    const committed = manifestWith({
      pack_format: PACK_FORMAT,
      index: { key: this.#indexKey, ...summary.index },
      objects: summary.objects,
      bytes_uploaded: this.uploaded.bytesUploaded,
    });
    await guard.beforeCommit();
    // An interrupt that came while the index was stored still stops the run: nothing is committed.
    throwIfAborted(signal, this.location);
    const id = committed.statesnap.snapshot.id;
    await this.#storage.putObject(manifestKey(id), Buffer.from(serializeManifest(committed)), {
      ifAbsent: true,
    });
    guard.afterCommit();
    return committed;
  }

  /**
   * Stops the uploads and leaves what was stored: without a manifest it is no snapshot, and a later prune
   * removes it. A multipart upload in flight is aborted by its own failure.
   */
  async abandon(): Promise<void> {
    this.#abort.abort();
    this.#uploads.abandonPlaces();
    await this.#uploads.settle();
    this.#index.abandon();
    await this.#indexUpload.catch(() => {});
  }
}

/** Where a backup into object storage goes: the repository's storage, the snapshot's id, its base. */
export interface S3Placement {
  storage: S3Storage;
  id: string;
  base: S3BaseSnapshot | null;
  guard: CommitGuard;
}

/** What a backup into object storage reports. */
export interface S3BackupResult extends Omit<BackupResult, 'index' | 'linkSource' | 'replacedExisting'> {
  /** The snapshot unchanged files were taken from (their content is not uploaded again); null for a full one. */
  base: { id: string; createdAt: string } | null;
  manifest: S3Manifest;
  bytesUploaded: number;
  objectsUploaded: number;
}

/** Backs up `options.source` into object storage as snapshot `placement.id`. */
export async function backupToS3(
  options: Omit<BackupOptions, 'dest'>,
  placement: S3Placement,
): Promise<S3BackupResult> {
  const started = performance.now();
  const { storage, id, base } = placement;
  const location = storage.describe();
  const opts = resolveBackupOptions({ ...options, dest: location });
  throwIfAborted(opts.signal, opts.source);
  const { real: source } = resolveReadPath(opts.source, SOURCE_AND_DESTINATION);
  const paths = { read: source, write: location, missingParents: [] };
  const report = progressReporter('backup', started, opts.onProgress);
  return runPipeline({ ...opts, path: opts.source }, async (run) => {
    const writer = run.adopt(new S3Writer(storage, id, base));
    const joined: JoinCounts = { removedSinceLinkSource: 0 };
    const startedAt = Date.now();
    const createdAt = new Date(startedAt).toISOString();
    const sections = sectionsOf(source, opts);
    const link = base?.link ?? null;
    const tally = await copySource(run, opts, source, { writer, link, joined, plansBySize: true }, report);
    report(progressOf('finishing', tally, null));
    const summary = summaryOf(run, opts, paths, { tally, sections, started });
    const { files, dirs, bytes, skipped, warnings } = summary;
    const { bytesNew, ...written } = writer.counts;
    const counts = { ...written, ...joined };
    const local = manifestOf(opts, {
      snapshot: { id },
      link: null,
      counts,
      bytesNew,
      createdAt,
      startedAtNs: BigInt(startedAt) * 1_000_000n,
      sections,
      index: { path: '.statesnap/index.jsonl', entries: 0, sha256: '' },
      totals: { files, dirs, bytes },
      skipped,
      warnings,
      root: writer.rootRecord(),
    });
    const { index: _index, link_source: _linkSource, ...extras } = local.statesnap!;
    const manifest = await writer.commit(
      (s3) => ({
        ...local,
        statesnap: {
          ...extras,
          format: 2,
          root: writer.rootRecord(),
          started_at_ns: (BigInt(startedAt) * 1_000_000n).toString(),
          index_order: 'canonical',
          snapshot: { id },
          base: base && { id: base.id, manifest_created_at: base.createdAt },
          s3,
        },
      }),
      placement.guard,
      run.signal,
    );
    return {
      ...summary,
      dryRun: false,
      createdAt,
      replanned: tally.replaced,
      hashAlgorithm: HASH_ALGORITHM,
      threads: run.threadsStarted,
      synced: true,
      base: base && { id: base.id, createdAt: base.createdAt },
      counts,
      bytesNew,
      manifest,
      bytesUploaded: writer.uploaded.bytesUploaded,
      objectsUploaded: writer.uploaded.objectsUploaded,
      durationMs: Math.round(performance.now() - started),
    };
  });
}
