// The real S3 server the object-storage tests run against: the endpoint of the environment (in CI, the local
// Ceph RGW `.ci/run` starts with scripts/local-s3.sh), one fresh bucket per test file, emptied and removed
// after it. No mock server stands in for it.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { CreateBucketCommand, DeleteBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, it, type TestContext } from 'vitest';
import { S3Storage } from '../../dist/src/s3/client.js';
import { parseS3Location } from '../../dist/src/s3/location.js';
import { resolveS3Settings } from '../../dist/src/s3/settings.js';
import { requireDependency } from './dependencies.js';

export const LOCAL_S3_SCRIPT = resolve(import.meta.dirname, '../../scripts/local-s3.sh');

/** Why the S3 tests cannot run here, or null. An endpoint is required: the tests never fall back to AWS. */
export function s3Unavailable(): string | null {
  const env = process.env;
  if (!env.AWS_ENDPOINT_URL && !env.AWS_ENDPOINT_URL_S3) {
    return 'no S3 endpoint configured (start one: scripts/local-s3.sh start && eval "$(scripts/local-s3.sh env)")';
  }
  if (!env.AWS_ACCESS_KEY_ID || !env.AWS_SECRET_ACCESS_KEY) {
    return 'AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set for the S3 endpoint';
  }
  return null;
}

/** Why a private RGW cannot be started here (the tests that stop or kill the server need their own), or null. */
export function privateRgwUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'starting a local Ceph RGW needs root';
  const missing = ['radosgw', 'ceph-mon', 'ceph-osd'].filter(
    (tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0,
  );
  if (missing.length > 0) return `${missing.join(', ')} not installed (scripts/local-s3.sh install)`;
  return null;
}

/** A raw SDK client for what statesnap itself never does (create and remove buckets). */
export function adminClient(): S3Client {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const settings = resolveS3Settings();
  return new S3Client({
    endpoint: settings.endpoint ?? undefined,
    region: settings.region ?? 'us-east-1',
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

export function uniqueBucketName(): string {
  return `statesnap-test-${randomBytes(6).toString('hex')}`;
}

async function createBucket(bucket: string): Promise<void> {
  const client = adminClient();
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
}

/** Deletes every object and unfinished upload in the bucket, then the bucket. */
async function removeBucket(bucket: string): Promise<void> {
  const storage = await S3Storage.open(parseS3Location(`s3://${bucket}`));
  try {
    const keys: string[] = [];
    for await (const object of storage.listObjects('')) keys.push(object.key);
    await storage.deleteObjects(keys);
    await storage.abortUnfinishedUploads('');
  } finally {
    storage.close();
  }
  const client = adminClient();
  try {
    await client.send(new DeleteBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
}

/** A test file's bucket on the S3 server, and the storages its tests open on it. */
export interface TestBucket {
  readonly name: string;
  /** Why the S3 tests cannot run here, or null (then the bucket exists while the file's tests run). */
  readonly unavailable: string | null;
  /** The storage on `s3://<name>/<storagePrefix>` opened before the file's tests (only when available). */
  readonly storage: S3Storage;
  /** A storage on `s3://<name>/<prefix>`, closed after the file's tests. */
  open(prefix: string): Promise<S3Storage>;
}

/**
 * A fresh bucket for the calling test file: created before its tests, and after them every storage opened on
 * it is closed and it is emptied and removed. Nothing is done when no S3 server is configured.
 */
export function useTestBucket(storagePrefix = ''): TestBucket {
  const unavailable = s3Unavailable();
  const name = uniqueBucketName();
  const opened: S3Storage[] = [];
  let storage: S3Storage | null = null;
  const open = async (prefix: string): Promise<S3Storage> => {
    const opening = await S3Storage.open(parseS3Location(`s3://${name}/${prefix}`));
    opened.push(opening);
    return opening;
  };
  beforeAll(async () => {
    if (unavailable !== null) return;
    await createBucket(name);
    storage = await open(storagePrefix);
  });
  afterAll(async () => {
    if (unavailable !== null) return;
    for (const each of opened.splice(0)) each.close();
    await removeBucket(name);
  });
  return {
    name,
    unavailable,
    open,
    get storage(): S3Storage {
      if (storage === null) throw new Error(`the test bucket ${name} is not open: ${unavailable}`);
      return storage;
    },
  };
}

/** Everything an error shows a user or a program: none of it may hold a credential. */
export function visibleParts(error: unknown): string {
  const e = error as { message?: unknown; stack?: unknown; cause?: unknown; path?: unknown };
  return [String(e.message), String(e.stack), JSON.stringify(e.cause ?? null), String(e.path)].join('\n');
}

/** The error a promise rejects with; a promise that fulfils fails the test. */
export async function rejectionOf(
  promise: Promise<unknown>,
): Promise<Error & { code?: string; cause?: unknown }> {
  try {
    await promise;
  } catch (error) {
    return error as Error & { code?: string; cause?: unknown };
  }
  throw new Error('expected the operation to fail');
}

/** A test that needs the S3 server: skipped with the reason locally, failed under CI. */
export function s3it(name: string, run: (ctx: TestContext) => Promise<void>, timeout?: number): void {
  it(
    name,
    async (ctx) => {
      requireDependency(ctx, s3Unavailable());
      await run(ctx);
    },
    timeout,
  );
}
