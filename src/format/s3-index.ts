// A snapshot in object storage (docs/s3-design.md): the object keys of its layout, its index (format 2's lines
// plus where each file's content lies: `object`, `offset`, `reused`), gzip'd and streamed both ways, and its
// manifest (the Oxios v1 manifest whose statesnap block carries the `s3` member with the object table).

import { createHash, randomBytes } from 'node:crypto';
import { createGunzip, createGzip, type Gzip } from 'node:zlib';
import { describeCause, StatesnapError } from '../core/errors.js';
import { pathBytes } from '../core/protocol.js';
import { z } from '../core/zod.js';
import {
  DIR_LINE_V2,
  FILE_LINE_V2,
  INDEX_LINE_LIMIT,
  type Located,
  type RecordedEntry,
  SKIPPED_LINE_V2,
  splitLines,
  validateLines,
} from './index-reader.js';
import { OXIOS_MANIFEST, parseManifest, STATESNAP_EXTRAS, sha256 } from './manifest-schema.js';
import { formatLimit } from './metadata-file.js';

/** The repository's marker object, relative to its prefix. */
export const REPOSITORY_MARKER_KEY = '.statesnap-repository';
export const DATA_PREFIX = 'data/';
export const SNAPSHOTS_PREFIX = 'snapshots/';
export const LOCKS_PREFIX = 'locks/';
/** The pack format every data object of this version is in. */
export const PACK_FORMAT = 'tar';

const TOKEN = /^[0-9a-f]{32}$/;
const DATA_KEY = /^data\/[0-9a-f]{32}\.tar$/;
// A snapshot id as a key segment: what snapshot-id.ts makes, and nothing that could leave `snapshots/<id>/`.
const SNAPSHOT_ID = /^[0-9A-Za-z][0-9A-Za-z_.-]{0,99}$/;
const INDEX_KEY = /^snapshots\/([0-9A-Za-z][0-9A-Za-z_.-]{0,99})\/index-[0-9a-f]{32}\.jsonl\.gz$/;

/** 128 random bits as hex: object names are never reused, so a name in a deletion plan never comes back. */
export function randomToken(): string {
  return randomBytes(16).toString('hex');
}

export function isRandomToken(token: string): boolean {
  return TOKEN.test(token);
}

/** A fresh data object's key. */
export function newDataKey(): string {
  return `${DATA_PREFIX}${randomToken()}.tar`;
}

export function isDataKey(key: string): boolean {
  return DATA_KEY.test(key);
}

export function isSnapshotId(id: string): boolean {
  return SNAPSHOT_ID.test(id) && id !== '.' && id !== '..';
}

/** Everything of one snapshot lives under this prefix (relative to the repository's). */
export function snapshotPrefix(id: string): string {
  return `${SNAPSHOTS_PREFIX}${id}/`;
}

/** The commit marker: a snapshot exists exactly when this object does and validates. */
export function manifestKey(id: string): string {
  return `${snapshotPrefix(id)}manifest.json`;
}

/** A fresh index object's key for snapshot `id`. */
export function newIndexKey(id: string): string {
  return `${snapshotPrefix(id)}index-${randomToken()}.jsonl.gz`;
}

const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** A file line: format 2's, less `linked`, plus where its content lies and whether an earlier run uploaded it. */
const S3FileLineSchema = z.strictObject({
  ...FILE_LINE_V2,
  object: z.string().regex(DATA_KEY, 'must be data/<32 hex digits>.tar'),
  offset: count,
  reused: z.literal(true).optional(),
});

const S3IndexLineSchema = z.discriminatedUnion('type', [S3FileLineSchema, DIR_LINE_V2, SKIPPED_LINE_V2]);

type S3IndexLine = z.infer<typeof S3IndexLineSchema>;

/**
 * One entry of a snapshot's index in object storage, as written and as read back: `path` as the walk names
 * it (bytes that are not UTF-8 escaped, see core/protocol.ts).
 */
export type S3IndexEntry = Located<S3IndexLine>;
export type S3FileEntry = Extract<S3IndexEntry, { type: 'file' }>;

/** A local index entry's directory and skipped lines are the same in object storage. */
export type S3NonFileEntry = Exclude<RecordedEntry, { type: 'file' }>;

const ObjectRecordSchema = z
  .strictObject({
    key: z.string().regex(DATA_KEY, 'must be data/<32 hex digits>.tar'),
    /** The object's size in bytes. */
    size: count,
    /** Bytes of file content this snapshot uses in it (the sum of `size` of its lines pointing there). */
    used: count,
  })
  .refine((record) => record.used <= record.size, 'uses more bytes than the object holds');

const IndexObjectSchema = z.strictObject({
  key: z.string().regex(INDEX_KEY, 'must be snapshots/<id>/index-<32 hex digits>.jsonl.gz'),
  /** Lines of the index. */
  entries: count,
  /** Of the stored (gzip'd) bytes. */
  sha256,
  /** Stored (gzip'd) bytes. */
  bytes: count,
});

/** The manifest's `s3` member: the index object and every data object the index references. */
export const S3BlockSchema = z
  .strictObject({
    pack_format: z.literal(PACK_FORMAT),
    index: IndexObjectSchema,
    objects: z.array(ObjectRecordSchema),
    /** Bytes of data objects this snapshot's run uploaded. */
    bytes_uploaded: count,
  })
  .superRefine((block, ctx) => {
    const seen = new Set<string>();
    for (const [i, record] of block.objects.entries()) {
      if (seen.has(record.key)) {
        ctx.addIssue({ code: 'custom', path: ['objects', i, 'key'], message: 'is listed twice' });
      }
      seen.add(record.key);
    }
  });

export type S3Block = z.infer<typeof S3BlockSchema>;
export type S3ObjectRecord = S3Block['objects'][number];
export type S3IndexRecord = S3Block['index'];

const { index: _localIndex, link_source: _linkSource, ...SHARED_EXTRAS } = STATESNAP_EXTRAS;

/**
 * The statesnap block of a snapshot in object storage: format 2's, with the index and the previous snapshot
 * named by `s3` and `base` instead of a local file and `link_source`.
 */
const S3ExtrasSchema = z.looseObject({
  ...SHARED_EXTRAS,
  format: z.literal(2),
  root: STATESNAP_EXTRAS.root.unwrap(),
  started_at_ns: STATESNAP_EXTRAS.started_at_ns.unwrap(),
  index_order: z.literal('canonical'),
  snapshot: z.object({ id: z.string().refine(isSnapshotId, 'is not a snapshot id') }),
  /** The snapshot whose index this one was compared with (its unchanged files point into its objects). */
  base: z.object({ id: z.string(), manifest_created_at: z.string() }).nullable(),
  s3: S3BlockSchema,
});

export const S3ManifestSchema = z.looseObject({ ...OXIOS_MANIFEST, statesnap: S3ExtrasSchema });
export type S3Manifest = z.infer<typeof S3ManifestSchema>;
export type S3Extras = S3Manifest['statesnap'];

/**
 * A snapshot's manifest from its bytes, checked to belong to snapshot `id` and to name an index of its own
 * (`where` names the object in errors: `s3://bucket/prefix/snapshots/<id>/manifest.json`).
 */
export function parseS3Manifest(bytes: Buffer, where: string, id: string): S3Manifest {
  const manifest = parseManifest(bytes, where, where, S3ManifestSchema);
  const invalid = (message: string) =>
    new StatesnapError('ERR_MANIFEST_INVALID', `manifest ${where} ${message}`, { path: where });
  if (manifest.statesnap.snapshot.id !== id) {
    throw invalid(
      `belongs to snapshot ${JSON.stringify(manifest.statesnap.snapshot.id)}, not ${JSON.stringify(id)}`,
    );
  }
  if (!manifest.statesnap.s3.index.key.startsWith(snapshotPrefix(id))) {
    throw invalid(`names an index outside its snapshot: ${JSON.stringify(manifest.statesnap.s3.index.key)}`);
  }
  return manifest;
}

/** What the manifest records about a finished index, and the object table of the lines in it. */
export interface S3IndexSummary {
  index: Omit<S3IndexRecord, 'key'>;
  objects: S3ObjectRecord[];
}

// Lines are gathered and handed to gzip in slices of this size.
const FLUSH_THRESHOLD = 256 * 1024;

/** An entry as one JSON line: a path that is not UTF-8 goes as its bytes, since JSON text is UTF-8. */
function serialize(entry: S3IndexEntry): string {
  if (entry.path.isWellFormed()) return JSON.stringify(entry);
  const { path, ...rest } = entry;
  return JSON.stringify({ path_b64: pathBytes(path).toString('base64'), ...rest });
}

/**
 * Writes an index as gzip (level 1, in zlib's thread pool), handing the compressed bytes out as parts of
 * `partBytes` (the last one shorter) through `parts()`, so the index is never held whole. Builds the object
 * table from the same lines: every object a line points into must have been `declareObject`ed with its size
 * first, and a line's range must lie inside it.
 */
export class S3IndexWriter {
  readonly #partBytes: number;
  readonly #gzip: Gzip;
  readonly #hash = createHash('sha256');
  readonly #sizes = new Map<string, number>();
  readonly #table = new Map<string, S3ObjectRecord>();
  #pending = '';
  #entries = 0;
  #bytes = 0;
  #chunks: Buffer[] = [];
  #chunkBytes = 0;
  #ended = false;
  #failure: Error | null = null;
  #wake: (() => void) | null = null;
  readonly #finished: Promise<void>;

  constructor(partBytes: number) {
    this.#partBytes = partBytes;
    this.#gzip = createGzip({ level: 1 });
    this.#gzip.on('data', (chunk: Buffer) => {
      this.#hash.update(chunk);
      this.#bytes += chunk.length;
      this.#chunks.push(chunk);
      this.#chunkBytes += chunk.length;
      this.#notify();
    });
    this.#finished = new Promise((resolve, reject) => {
      this.#gzip.on('end', () => {
        this.#ended = true;
        this.#notify();
        resolve();
      });
      this.#gzip.on('error', (error: Error) => {
        this.#failure = error;
        this.#notify();
        reject(error);
      });
    });
    // Whoever awaits finish() or parts() sees the failure; this keeps it from being unhandled meanwhile.
    this.#finished.catch(() => {});
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /** Records the size of a data object lines may point into (a new pack, or one of the base's). */
  declareObject(key: string, size: number): void {
    this.#sizes.set(key, size);
  }

  add(entry: S3IndexEntry): void {
    if (entry.type === 'file') {
      const size = this.#sizes.get(entry.object);
      if (size === undefined || entry.offset + entry.size > size) {
        throw new Error(
          `Assertion failed: ${JSON.stringify(entry.path)} points outside the declared objects (${entry.object})`,
        );
      }
      const record = this.#table.get(entry.object);
      if (record === undefined) this.#table.set(entry.object, { key: entry.object, size, used: entry.size });
      else record.used += entry.size;
    }
    this.#pending += `${serialize(entry)}\n`;
    this.#entries++;
    if (this.#pending.length >= FLUSH_THRESHOLD) this.#flush();
  }

  #flush(): void {
    if (this.#pending.length === 0) return;
    this.#gzip.write(this.#pending);
    this.#pending = '';
  }

  /**
   * The compressed index in parts of `partBytes` bytes (the last one may be shorter, and is the only part
   * when the index is smaller than a part), ending after `finish()`.
   */
  async *parts(): AsyncGenerator<Buffer> {
    for (;;) {
      if (this.#failure !== null) throw this.#failure;
      if (this.#chunkBytes >= this.#partBytes || (this.#ended && this.#chunkBytes > 0)) {
        yield this.#take(Math.min(this.#partBytes, this.#chunkBytes));
        continue;
      }
      if (this.#ended) return;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
  }

  #take(length: number): Buffer {
    const whole = Buffer.concat(this.#chunks, this.#chunkBytes);
    const part = whole.subarray(0, length);
    const rest = whole.subarray(length);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#chunkBytes = rest.length;
    return part;
  }

  /** Ends the index; resolves when every compressed byte is handed to `parts()`'s reader or waiting for it. */
  async finish(): Promise<S3IndexSummary> {
    this.#flush();
    this.#gzip.end();
    await this.#finished;
    return {
      index: { entries: this.#entries, sha256: this.#hash.digest('hex'), bytes: this.#bytes },
      objects: [...this.#table.values()],
    };
  }

  /** Stops compressing (the run failed); nothing more is handed out. */
  abandon(): void {
    this.#gzip.destroy();
    this.#ended = true;
    this.#notify();
  }
}

/** What the manifest says an index must be: its record and the object table its lines must agree with. */
export interface S3IndexExpectation {
  index: S3IndexRecord;
  objects: readonly S3ObjectRecord[];
}

/**
 * Streams the validated entries of a snapshot's index from `body` (the stored, gzip'd bytes, e.g. a GET's body
 * or `[buffer]`); `where` names the object in errors (`s3://…/snapshots/<id>/index-….jsonl.gz`). Refuses with
 * ERR_INDEX_INVALID: more stored bytes than the manifest says, bytes that do not inflate, every per-line
 * problem a local index is refused for (readIndex), a file line whose `object` is not in the manifest's
 * object table or whose `offset + size` lies past that object's recorded size, a different line count, and,
 * after the last line, a different stored size or SHA-256. Memory stays O(1) in the index's length.
 */
export async function* readS3Index(
  body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  expected: S3IndexExpectation,
  where: string,
  options: { refuseCaseCollisions: boolean },
): AsyncGenerator<S3IndexEntry> {
  const invalid = (message: string, cause?: unknown) =>
    new StatesnapError('ERR_INDEX_INVALID', `index ${where} ${message}`, { path: where, cause });
  const sizes = new Map(expected.objects.map((record) => [record.key, record.size]));
  const hash = createHash('sha256');
  let stored = 0;
  const gunzip = createGunzip();
  // The stored bytes are hashed and counted as they arrive, before inflating, and feeding stops at the
  // manifest's size: a hostile object longer than recorded is never read past it.
  const feed = (async () => {
    for await (const chunk of body) {
      stored += chunk.length;
      if (stored > expected.index.bytes) {
        throw invalid(`has more than the ${expected.index.bytes} bytes the manifest says`);
      }
      hash.update(chunk);
      if (!gunzip.write(chunk)) await new Promise((resolve) => gunzip.once('drain', resolve));
    }
    gunzip.end();
  })();
  let feedFailure: unknown = null;
  feed.catch((error: unknown) => {
    feedFailure = error;
    gunzip.destroy(error instanceof Error ? error : new Error(String(error)));
  });
  const lines = splitLines(gunzip, null, INDEX_LINE_LIMIT, (n) =>
    invalid(`line ${n} is longer than ${formatLimit(INDEX_LINE_LIMIT)}`),
  );
  const rules = {
    schema: S3IndexLineSchema,
    entries: expected.index.entries,
    canonical: true,
    refuseCaseCollisions: options.refuseCaseCollisions,
  };
  let lineNumber = 0;
  try {
    for await (const entry of validateLines(lines, rules, invalid)) {
      lineNumber++;
      if (entry.type === 'file') {
        const size = sizes.get(entry.object);
        if (size === undefined) {
          throw invalid(`line ${lineNumber}: object ${entry.object} is not in the manifest's object table`);
        }
        if (entry.offset + entry.size > size) {
          throw invalid(
            `line ${lineNumber}: bytes ${entry.offset}-${entry.offset + entry.size} lie past the end of ${entry.object} (${size} bytes)`,
          );
        }
      }
      yield entry;
    }
    await feed;
  } catch (error) {
    const first = feedFailure ?? error;
    if (first instanceof StatesnapError) throw first;
    throw invalid(`cannot be read: ${describeCause(first)}`, first);
  } finally {
    gunzip.destroy();
  }
  if (stored !== expected.index.bytes) {
    throw invalid(`has ${stored} bytes; the manifest says ${expected.index.bytes}`);
  }
  const digest = hash.digest('hex');
  if (digest !== expected.index.sha256) {
    throw invalid(`sha256 is ${digest}; the manifest says ${expected.index.sha256} (the index was modified)`);
  }
}
