#!/usr/bin/env node
// Re-checks, against any S3 endpoint, the server behaviours statesnap's S3 repository relies on (see
// docs/s3-notes.md). Uses the AWS_* environment as the SDK does; makes and deletes its own bucket.
// Usage: eval "$(scripts/local-s3.sh env)" && node scripts/s3-probe.mjs [--throughput]
// Needs @aws-sdk/client-s3 resolvable from this directory (statesnap's own dependency).
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  paginateListObjectsV2,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const silent = { debug() {}, info() {}, warn() {}, error() {} };
const settings = {
  forcePathStyle: true,
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
  logger: silent,
  maxAttempts: 2,
  requestHandler: { connectionTimeout: 2000, socketTimeout: 30_000, httpAgent: { maxSockets: 64 } },
};
const s3 = new S3Client(settings);
const Bucket = `statesnap-probe-${randomBytes(4).toString('hex')}`;
const md5 = (body) => createHash('md5').update(body).digest('base64');
const sha256 = (body) => createHash('sha256').update(body).digest('hex');
const describe = (e) => `${e.name} ${e.$metadata?.httpStatusCode ?? e.code ?? ''}`.trim();
let failures = 0;

async function check(name, run) {
  try {
    console.log(`ok    ${name}: ${await run()}`);
  } catch (e) {
    failures++;
    console.log(`FAIL  ${name}: ${e.message}`);
  }
}

// Resolves to the error the request fails with; throws if it succeeds.
async function failureOf(request) {
  try {
    await request;
  } catch (e) {
    return e;
  }
  throw new Error('the request succeeded');
}

async function expectFailure(request, name) {
  const error = await failureOf(request);
  if (error.name !== name) throw new Error(`expected ${name}, got ${describe(error)}`);
  return describe(error);
}

const put = (Key, Body, extra = {}, client = s3) => client.send(new PutObjectCommand({ Bucket, Key, Body, ...extra }));
const get = async (Key, Range) => {
  const response = await s3.send(new GetObjectCommand({ Bucket, Key, Range }));
  return Buffer.from(await response.Body.transformToByteArray());
};

async function run(count, concurrency, task) {
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await task(next++);
    }),
  );
  return (performance.now() - start) / 1000;
}

try {
  await s3.send(new CreateBucketCommand({ Bucket }));
} catch (e) {
  console.error(`s3-probe: cannot create bucket ${Bucket} at ${process.env.AWS_ENDPOINT_URL}: ${describe(e)}`);
  process.exit(1);
}
try {
  const body = randomBytes(100_000);
  await check('streamed PUT with SDK default checksums', async () => {
    const defaults = new S3Client({ ...settings, requestChecksumCalculation: undefined });
    const stream = Readable.from([body]);
    const error = await put('stream', stream, { ContentLength: body.length }, defaults).then(() => undefined, (e) => e);
    return error ? `refused (${describe(error)}): set requestChecksumCalculation WHEN_REQUIRED` : 'accepted';
  });
  await check('streamed PUT with WHEN_REQUIRED checksums', async () => {
    await put('stream', Readable.from([body]), { ContentLength: body.length });
    return 'accepted';
  });
  await check('Content-MD5 is verified', () => expectFailure(put('md5', body, { ContentMD5: md5('x') }), 'BadDigest'));
  await check('signed payload hash is verified', () => {
    const tampering = new S3Client(settings);
    tampering.middlewareStack.add(
      (next) => (args) => {
        args.request.body = Buffer.from(args.request.body).fill(1, 0, 1);
        return next(args);
      },
      { step: 'deserialize' },
    );
    return expectFailure(put('tampered', body, {}, tampering), 'XAmzContentSHA256Mismatch');
  });
  await check('If-None-Match: * refuses an overwrite', async () => {
    await put('commit', body, { IfNoneMatch: '*' });
    return expectFailure(put('commit', Buffer.from('other'), { IfNoneMatch: '*' }), 'PreconditionFailed');
  });
  await check('DeleteObjects', async () => {
    const Objects = ['d1', 'd2', 'd3'].map((Key) => ({ Key }));
    await Promise.all(Objects.map(({ Key }) => put(Key, body)));
    const result = await s3.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects, Quiet: true } }));
    const left = await s3.send(new ListObjectsV2Command({ Bucket, Prefix: 'd' }));
    if (result.Errors?.length || left.KeyCount) throw new Error(`${left.KeyCount} of 3 objects left`);
    return '3 deleted';
  });
  await check('multipart upload, 3 parallel parts with Content-MD5 (as statesnap uploads large objects)', async () => {
    const large = randomBytes(12 << 20);
    const parts = [large.subarray(0, 5 << 20), large.subarray(5 << 20, 10 << 20), large.subarray(10 << 20)];
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key: 'large' }));
    const uploaded = await Promise.all(
      parts.map(async (Body, i) => {
        const part = { Bucket, Key: 'large', UploadId, PartNumber: i + 1, Body, ContentMD5: md5(Body) };
        const { ETag } = await s3.send(new UploadPartCommand(part));
        return { PartNumber: i + 1, ETag };
      }),
    );
    await s3.send(
      new CompleteMultipartUploadCommand({ Bucket, Key: 'large', UploadId, MultipartUpload: { Parts: uploaded } }),
    );
    if (sha256(await get('large')) !== sha256(large)) throw new Error('downloaded bytes differ');
    const range = await get('large', 'bytes=5242879-5242888');
    if (!range.equals(large.subarray(5242879, 5242889))) throw new Error('ranged GET across a part boundary differs');
    return 'round trip and ranged GET match';
  });
  await check('ListObjectsV2 past 1,000 keys', async () => {
    await run(1001, 32, (i) => put(`many/${String(i).padStart(4, '0')}`, Buffer.alloc(0)));
    let pages = 0;
    let keys = 0;
    for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket, Prefix: 'many/' })) {
      pages++;
      keys += page.KeyCount ?? 0;
    }
    if (keys !== 1001) throw new Error(`listed ${keys} of 1001 keys`);
    return `1001 keys in ${pages} pages`;
  });
  await check('wrong secret key', () => {
    const wrong = { accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? '', secretAccessKey: 'wrong' };
    return expectFailure(put('x', body, {}, new S3Client({ ...settings, credentials: wrong })), 'SignatureDoesNotMatch');
  });
  await check('missing bucket', () =>
    expectFailure(s3.send(new ListObjectsV2Command({ Bucket: `${Bucket}-missing` })), 'NoSuchBucket'),
  );

  if (process.argv.includes('--throughput')) {
    const small = randomBytes(1024);
    for (const concurrency of [1, 16, 64]) {
      const count = concurrency === 1 ? 300 : 2000;
      const seconds = await run(count, concurrency, (i) => put(`small/${concurrency}/${i}`, small, { ContentMD5: md5(small) }));
      console.log(`      1 KiB PUTs, ${concurrency} in flight: ${(count / seconds).toFixed(0)}/s`);
    }
    const pack = randomBytes(16 << 20);
    for (const concurrency of [4, 8]) {
      const seconds = await run(32, concurrency, (i) => put(`pack/${concurrency}/${i}`, pack, { ContentMD5: md5(pack) }));
      console.log(`      16 MiB PUTs, ${concurrency} in flight: ${((32 * pack.length) / seconds / 1e6).toFixed(0)} MB/s`);
    }
  }
} finally {
  for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket })) {
    const Objects = (page.Contents ?? []).map(({ Key }) => ({ Key }));
    if (Objects.length) await s3.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects, Quiet: true } }));
  }
  await s3.send(new DeleteBucketCommand({ Bucket }));
}
process.exitCode = failures ? 1 : 0;
