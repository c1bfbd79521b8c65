// The objects under one `s3://bucket/prefix`, through the AWS SDK v3: whole and conditional PUTs with
// Content-MD5, multipart uploads, exact ranged GETs, paginated listings and batch deletes, every failure a
// one-line StatesnapError. The only module that loads the SDK (~300 ms): others reach it with import().

import { createHash } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { assert, StatesnapError } from '../core/errors.js';
import { type S3FailureCause, s3Failure } from './errors.js';
import { formatS3Location, objectKey, type S3Location } from './location.js';
import { CUSTOM_ENDPOINT_REGION, resolveS3Settings, type S3Options, type S3Settings } from './settings.js';

/** An object as a listing shows it; `key` is relative to the location's prefix. */
export interface ObjectInfo {
  key: string;
  size: number;
  /** The server's clock: comparable with other objects' times on the same server, not with ours. */
  lastModified: Date;
}

export interface PutOptions {
  /** Write only if no object has the key (`If-None-Match: *`); otherwise ERR_S3_EXISTS. */
  ifAbsent?: boolean;
  /**
   * The body's SHA-256 (hex), when the caller has it already: signed as the payload hash instead of the SDK
   * hashing the body again on this thread. The server checks it against what it receives.
   */
  sha256?: string;
  /** The body's MD5 (base64), likewise, when the caller has it already. */
  contentMd5?: string;
  signal?: AbortSignal;
}

/** S3's smallest part of a multipart upload (except the last one), and its most parts. */
export const MIN_PART_BYTES = 5 * 1024 * 1024;
export const MAX_PARTS = 10_000;
const MAX_DELETE_KEYS = 1_000;

const silentLogger = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

function md5Base64(body: Uint8Array): string {
  return createHash('md5').update(body).digest('base64');
}

/**
 * The SDK client configuration statesnap uses. Every choice answers a measured behaviour of RGW 16 or the
 * SDK (docs/s3-design.md, "Client, credentials, endpoints"): checksums only where an operation requires one (RGW 16
 * answers the default aws-chunked CRC32 uploads with 411), idle and connect timeouts so a hung server fails,
 * a socket pool larger than what is in flight, and no SDK logging to the console.
 */
export function sdkClientConfig(settings: S3Settings): S3ClientConfig {
  // Sockets for every request in flight plus a few for what runs beside them (listings, lock refreshes).
  const agent = { keepAlive: true, maxSockets: settings.concurrency + 8 };
  return {
    ...(settings.endpoint === null ? {} : { endpoint: settings.endpoint }),
    region: settings.region ?? undefined,
    ...(settings.profile === null ? {} : { profile: settings.profile }),
    forcePathStyle: settings.pathStyle,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: settings.maxAttempts,
    logger: silentLogger,
    requestHandler: {
      connectionTimeout: settings.connectTimeoutMs,
      socketTimeout: settings.idleTimeoutMs,
      httpAgent: agent,
      httpsAgent: agent,
    },
  };
}

/**
 * Builds an SDK client without the notice these SDK releases print on Node < 22 (a process warning on stderr
 * about releases after January 2027): the SDK reads this variable once, when the first client is built.
 */
function newSdkClient(config: S3ClientConfig): S3Client {
  const variable = 'AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED';
  const before = process.env[variable];
  process.env[variable] = 'true';
  try {
    return new S3Client(config);
  } finally {
    if (before === undefined) delete process.env[variable];
    else process.env[variable] = before;
  }
}

/** Makes the signer use a known SHA-256 of the body instead of hashing the body itself. */
function signWithPayloadHash(command: PutObjectCommand, sha256: string): void {
  command.middlewareStack.add(
    (next) => (args) => {
      (args.request as { headers: Record<string, string> }).headers['x-amz-content-sha256'] = sha256;
      return next(args);
    },
    { step: 'build', name: 'statesnapPayloadHash' },
  );
}

export class S3Storage {
  readonly location: S3Location;
  readonly settings: S3Settings;
  readonly #client: S3Client;
  /** How messages name the server: the endpoint, or AWS S3. */
  readonly #server: string;

  private constructor(location: S3Location, settings: S3Settings, client: S3Client) {
    this.location = location;
    this.settings = settings;
    this.#client = client;
    this.#server = settings.endpoint ?? 'AWS S3';
  }

  /**
   * Connects to a location and proves it usable before any work: a region and credentials are found, and the
   * bucket can be listed. Each failure is a one-line error naming the bucket or what is missing.
   */
  static async open(location: S3Location, options: S3Options = {}): Promise<S3Storage> {
    let settings = resolveS3Settings(options);
    let client = newSdkClient(sdkClientConfig(settings));
    const where = formatS3Location(location);
    try {
      if (settings.region === null) {
        try {
          settings = { ...settings, region: await client.config.region() };
        } catch (error) {
          if (settings.endpoint === null) throw error;
          settings = { ...settings, region: CUSTOM_ENDPOINT_REGION };
          client.destroy();
          client = newSdkClient(sdkClientConfig(settings));
        }
      }
      await client.config.credentials();
    } catch (error) {
      client.destroy();
      throw s3Failure(error, 'connect to', where, settings.endpoint ?? 'AWS S3');
    }
    const storage = new S3Storage(location, settings, client);
    try {
      // A listing rather than HeadBucket: its errors have a body that says which thing is wrong (the access
      // key, the secret, the bucket), and every command needs the permission to list anyway.
      await storage.#request('list', '', undefined, (sdk, o) =>
        sdk.send(
          new ListObjectsV2Command({ Bucket: location.bucket, Prefix: objectKey(location, ''), MaxKeys: 1 }),
          o,
        ),
      );
    } catch (error) {
      storage.close();
      throw error;
    }
    return storage;
  }

  /** `s3://bucket/prefix/key` of a key below the prefix (of the prefix itself without one). */
  describe(key?: string): string {
    return formatS3Location(this.location, key);
  }

  /** Releases the client's sockets. */
  close(): void {
    this.#client.destroy();
  }

  /** Runs one SDK request; its failure becomes the one-line error for `<action> <key>`. */
  async #request<T>(
    action: string,
    key: string,
    signal: AbortSignal | undefined,
    send: (client: S3Client, options: { abortSignal?: AbortSignal }) => Promise<T>,
  ): Promise<T> {
    try {
      return await send(this.#client, { abortSignal: signal });
    } catch (error) {
      throw s3Failure(error, action, this.describe(key === '' ? undefined : key), this.#server);
    }
  }

  /** One PUT of a whole body, with its Content-MD5 so the server refuses damaged bytes. */
  async putObject(key: string, body: Uint8Array, options: PutOptions = {}): Promise<void> {
    const command = new PutObjectCommand({
      Bucket: this.location.bucket,
      Key: objectKey(this.location, key),
      Body: body,
      ContentLength: body.length,
      ContentMD5: options.contentMd5 ?? md5Base64(body),
      ...(options.ifAbsent ? { IfNoneMatch: '*' } : {}),
    });
    if (options.sha256 !== undefined) signWithPayloadHash(command, options.sha256);
    await this.#request('write', key, options.signal, (client, o) => client.send(command, o));
  }

  /**
   * Uploads one object from parts as they arrive (each at least MIN_PART_BYTES but the last), at most
   * `settings.concurrency` parts in flight, each with its Content-MD5; the next part is pulled only when a
   * slot is free, so memory holds at most that many parts. Any failure aborts the upload (best effort: a
   * server that went away keeps it, and abortUnfinishedUploads() removes it later) and is thrown.
   * Never the way to write a commit marker: servers need not honour If-None-Match on completion (RGW 16 does not).
   */
  async putMultipart(
    key: string,
    parts: AsyncIterable<Uint8Array>,
    options: {
      signal?: AbortSignal;
      onPartDone?: (partNumber: number, bytes: number) => void;
      /** A part failed (after its retries): the producer may be waiting for a part that will never finish. */
      onPartFailed?: (error: unknown) => void;
    } = {},
  ): Promise<{ bytes: number; parts: number }> {
    const { signal } = options;
    const target = { Bucket: this.location.bucket, Key: objectKey(this.location, key) };
    // Not cut off by `signal`: a start cancelled after the server made the upload would leave that upload
    // unfinished with no id to abort it by. It is one short request; the parts below stop with the signal.
    const created = await this.#request('start upload of', key, undefined, (client, o) =>
      client.send(new CreateMultipartUploadCommand(target), o),
    );
    const UploadId = created.UploadId;
    assert(UploadId !== undefined, 'CreateMultipartUpload returned an upload id');
    const done: { PartNumber: number; ETag: string }[] = [];
    const inFlight = new Set<Promise<void>>();
    const failures: unknown[] = [];
    const upload = async (PartNumber: number, Body: Uint8Array): Promise<void> => {
      const result = await this.#request(`upload part ${PartNumber} of`, key, signal, (client, o) =>
        client.send(
          new UploadPartCommand({ ...target, UploadId, PartNumber, Body, ContentMD5: md5Base64(Body) }),
          o,
        ),
      );
      assert(result.ETag !== undefined, 'UploadPart returned an ETag');
      done.push({ PartNumber, ETag: result.ETag });
      options.onPartDone?.(PartNumber, Body.length);
    };
    let bytes = 0;
    let partNumber = 0;
    let previousSize = Number.POSITIVE_INFINITY;
    try {
      for await (const body of parts) {
        // Checked when the next part arrives: only then is it known that the previous one was not the last.
        assert(
          previousSize >= MIN_PART_BYTES,
          `part ${partNumber} has ${previousSize} bytes, below S3's minimum`,
        );
        partNumber++;
        assert(partNumber <= MAX_PARTS, `an upload has at most ${MAX_PARTS} parts`);
        previousSize = body.length;
        bytes += body.length;
        const running: Promise<void> = upload(partNumber, body).then(
          () => void inFlight.delete(running),
          (error: unknown) => {
            inFlight.delete(running);
            failures.push(error);
            options.onPartFailed?.(error);
          },
        );
        inFlight.add(running);
        if (inFlight.size >= this.settings.concurrency) await Promise.race(inFlight);
        if (failures.length > 0) break;
      }
      await Promise.all(inFlight);
      if (failures.length > 0) throw failures[0];
      done.sort((a, b) => a.PartNumber - b.PartNumber);
      await this.#request('complete upload of', key, signal, (client, o) =>
        client.send(
          new CompleteMultipartUploadCommand({ ...target, UploadId, MultipartUpload: { Parts: done } }),
          o,
        ),
      );
      return { bytes, parts: partNumber };
    } catch (error) {
      await Promise.allSettled(inFlight);
      try {
        await this.#client.send(new AbortMultipartUploadCommand({ ...target, UploadId }));
      } catch {
        // The upload stays on the server; abortUnfinishedUploads() removes it later.
      }
      throw error;
    }
  }

  /** Reads a whole object; the body is always read to its end, so no socket is left holding it. */
  async getObject(key: string, options: { signal?: AbortSignal } = {}): Promise<Buffer> {
    const response = await this.#request('read', key, options.signal, (client, o) =>
      client.send(
        new GetObjectCommand({ Bucket: this.location.bucket, Key: objectKey(this.location, key) }),
        o,
      ),
    );
    return this.#readBody(response.Body, key);
  }

  /**
   * Reads exactly `length` bytes at `offset`. An object too short to hold them (truncated, or not the object
   * the caller expects) is ERR_BACKUP_CORRUPT naming the object and the range.
   */
  async getRange(
    key: string,
    offset: number,
    length: number,
    options: { signal?: AbortSignal } = {},
  ): Promise<Buffer> {
    if (length === 0) return Buffer.alloc(0);
    const last = offset + length - 1;
    const short = (what: string) =>
      new StatesnapError(
        'ERR_BACKUP_CORRUPT',
        `object ${this.describe(key)} ${what}; bytes ${offset}-${last} were expected`,
        { path: this.describe(key) },
      );
    let response: GetObjectCommandOutput;
    try {
      response = await this.#request('read', key, options.signal, (client, o) =>
        client.send(
          new GetObjectCommand({
            Bucket: this.location.bucket,
            Key: objectKey(this.location, key),
            Range: `bytes=${offset}-${last}`,
          }),
          o,
        ),
      );
    } catch (error) {
      if ((error as { cause?: S3FailureCause }).cause?.httpStatus === 416)
        throw short(`ends before byte ${offset}`);
      throw error;
    }
    const body = await this.#readBody(response.Body, key);
    if (body.length !== length) throw short(`holds only ${body.length} of them`);
    return body;
  }

  /** An object of known `size` as ranges of `rangeBytes`, read one after another: never held whole. */
  async *readInRanges(
    key: string,
    size: number,
    rangeBytes: number,
    options: { signal?: AbortSignal } = {},
  ): AsyncGenerator<Buffer> {
    for (let offset = 0; offset < size; offset += rangeBytes) {
      yield await this.getRange(key, offset, Math.min(rangeBytes, size - offset), options);
    }
  }

  async #readBody(body: GetObjectCommandOutput['Body'], key: string): Promise<Buffer> {
    assert(body !== undefined, 'GetObject returned a body');
    let bytes: Uint8Array;
    try {
      bytes = await body.transformToByteArray();
    } catch (error) {
      throw s3Failure(error, 'read', this.describe(key), this.#server);
    }
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  }

  /** The object's size and time, or null when there is none. */
  async headObject(key: string, options: { signal?: AbortSignal } = {}): Promise<ObjectInfo | null> {
    try {
      const head = await this.#request('read', key, options.signal, (client, o) =>
        client.send(
          new HeadObjectCommand({ Bucket: this.location.bucket, Key: objectKey(this.location, key) }),
          o,
        ),
      );
      return { key, size: head.ContentLength ?? 0, lastModified: head.LastModified ?? new Date(0) };
    } catch (error) {
      if (error instanceof StatesnapError && error.code === 'ERR_S3_NOT_FOUND') return null;
      throw error;
    }
  }

  #relative(fullKey: string): string {
    const { prefix } = this.location;
    assert(prefix === '' || fullKey.startsWith(`${prefix}/`), `listed key ${fullKey} lies under the prefix`);
    return prefix === '' ? fullKey : fullKey.slice(prefix.length + 1);
  }

  async *#listPages(
    under: string,
    delimiter: string | undefined,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<ListObjectsV2CommandOutput> {
    let ContinuationToken: string | undefined;
    do {
      const page = await this.#request('list', under, signal, (client, o) =>
        client.send(
          new ListObjectsV2Command({
            Bucket: this.location.bucket,
            Prefix: objectKey(this.location, under),
            ContinuationToken,
            Delimiter: delimiter,
          }),
          o,
        ),
      );
      yield page;
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken !== undefined);
  }

  /**
   * Every object whose key starts with `under` (a key prefix below the location's, e.g. `data/`), in key order,
   * page by page (a server returns at most 1,000 keys per request).
   */
  async *listObjects(under: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<ObjectInfo> {
    for await (const page of this.#listPages(under, undefined, options.signal)) {
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined) continue;
        yield {
          key: this.#relative(object.Key),
          size: object.Size ?? 0,
          lastModified: object.LastModified ?? new Date(0),
        };
      }
    }
  }

  /** The names one level below `under` (which ends in `/`), as `ls` shows them: `snapshots/` gives the ids. */
  async *listChildren(under: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<string> {
    assert(under === '' || under.endsWith('/'), 'listChildren lists below a key prefix ending in /');
    for await (const page of this.#listPages(under, '/', options.signal)) {
      const names: string[] = [];
      for (const common of page.CommonPrefixes ?? []) {
        if (common.Prefix !== undefined) names.push(this.#relative(common.Prefix).slice(under.length, -1));
      }
      for (const object of page.Contents ?? []) {
        if (object.Key !== undefined) names.push(this.#relative(object.Key).slice(under.length));
      }
      yield* names.sort();
    }
  }

  /**
   * Deletes objects, 1,000 keys per request (S3's limit). A key that does not exist is not an error (S3
   * deletes are idempotent); a key the server fails to delete is ERR_S3_REQUEST naming it.
   */
  async deleteObjects(keys: readonly string[], options: { signal?: AbortSignal } = {}): Promise<void> {
    for (let start = 0; start < keys.length; start += MAX_DELETE_KEYS) {
      const batch = keys.slice(start, start + MAX_DELETE_KEYS);
      const result = await this.#request('delete objects under', '', options.signal, (client, o) =>
        client.send(
          new DeleteObjectsCommand({
            Bucket: this.location.bucket,
            Delete: { Objects: batch.map((key) => ({ Key: objectKey(this.location, key) })), Quiet: true },
          }),
          o,
        ),
      );
      const failed = result.Errors ?? [];
      if (failed.length > 0) {
        const first = failed[0]!;
        const more = failed.length > 1 ? ` (and ${failed.length - 1} more keys)` : '';
        throw new StatesnapError(
          'ERR_S3_REQUEST',
          `cannot delete ${this.describe(this.#relative(first.Key ?? ''))}: ${first.Code ?? 'refused'}${more}`,
          { path: this.describe(), cause: { name: first.Code ?? 'Unknown', failedKeys: failed.length } },
        );
      }
    }
  }

  /**
   * Aborts the multipart uploads under `under` that were started and never completed (a killed run's): their
   * parts take space, and no listing of objects shows them. Returns how many were aborted.
   */
  async abortUnfinishedUploads(under: string, options: { signal?: AbortSignal } = {}): Promise<number> {
    const { signal } = options;
    let aborted = 0;
    let KeyMarker: string | undefined;
    let UploadIdMarker: string | undefined;
    for (;;) {
      const page = await this.#request('list uploads under', under, signal, (client, o) =>
        client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.location.bucket,
            Prefix: objectKey(this.location, under),
            KeyMarker,
            UploadIdMarker,
          }),
          o,
        ),
      );
      for (const { Key, UploadId } of page.Uploads ?? []) {
        if (Key === undefined || UploadId === undefined) continue;
        await this.#request('abort upload of', this.#relative(Key), signal, (client, o) =>
          client.send(new AbortMultipartUploadCommand({ Bucket: this.location.bucket, Key, UploadId }), o),
        );
        aborted++;
      }
      if (!page.IsTruncated) return aborted;
      KeyMarker = page.NextKeyMarker;
      UploadIdMarker = page.NextUploadIdMarker;
    }
  }
}
