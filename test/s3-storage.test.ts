// The S3 client against a real server (the local Ceph RGW in CI): the 411 trap of the SDK's default
// checksums, integrity-checked and conditional PUTs, multipart uploads, exact ranged reads, listings and
// batch deletes past 1,000 keys, a pack's round trip byte for byte, and one-line errors that never show a
// credential.

import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { afterEach, describe, expect } from 'vitest';
import { readTar, TarWriter } from '../dist/src/format/tar.js';
import { MIN_PART_BYTES, S3Storage, sdkClientConfig } from '../dist/src/s3/client.js';
import { parseS3Location } from '../dist/src/s3/location.js';
import { resolveS3Settings } from '../dist/src/s3/settings.js';
import {
  adminClient,
  rejectionOf,
  s3it,
  uniqueBucketName,
  useTestBucket,
  visibleParts,
} from './helpers/s3.js';
import { cleanup, tempDir } from './helpers/tree.js';

const testBucket = useTestBucket('repo');
const { name: bucket } = testBucket;

afterEach(cleanup);

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

describe('requests RGW 16 takes', () => {
  s3it(
    "a streamed PUT gets 411 with the SDK's default checksums and succeeds with statesnap's settings",
    async () => {
      const body = randomBytes(64 * 1024);
      const put = (client: S3Client, key: string) =>
        client.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: key,
            Body: Readable.from([body.subarray(0, 1000), body.subarray(1000)]),
            ContentLength: body.length,
          }),
        );
      const settings = resolveS3Settings();
      const silent = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };
      const defaults = new S3Client({
        endpoint: settings.endpoint ?? undefined,
        region: settings.region ?? 'us-east-1',
        forcePathStyle: true,
        logger: silent,
      });
      const ours = new S3Client(sdkClientConfig({ ...settings, region: settings.region ?? 'us-east-1' }));
      try {
        const refused = await rejectionOf(put(defaults, 'repo/streamed-default'));
        expect(refused.name).toBe('MissingContentLength');
        expect((refused as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode).toBe(411);
        await put(ours, 'repo/streamed-ours');
        expect(sha256(await testBucket.storage.getObject('streamed-ours'))).toBe(sha256(body));
      } finally {
        defaults.destroy();
        ours.destroy();
      }
    },
  );

  s3it('reads back what it wrote: whole objects and exact ranges', async () => {
    const body = randomBytes(100_000);
    await testBucket.storage.putObject('objects/a.bin', body);
    expect((await testBucket.storage.getObject('objects/a.bin')).equals(body)).toBe(true);
    expect((await testBucket.storage.getRange('objects/a.bin', 0, 1)).equals(body.subarray(0, 1))).toBe(true);
    expect(
      (await testBucket.storage.getRange('objects/a.bin', 12_345, 50_000)).equals(
        body.subarray(12_345, 62_345),
      ),
    ).toBe(true);
    expect(
      (await testBucket.storage.getRange('objects/a.bin', 99_999, 1)).equals(body.subarray(99_999)),
    ).toBe(true);
    expect(await testBucket.storage.getRange('objects/a.bin', 5, 0)).toHaveLength(0);
    expect(await testBucket.storage.headObject('objects/a.bin')).toMatchObject({
      key: 'objects/a.bin',
      size: 100_000,
    });
    expect(await testBucket.storage.headObject('objects/missing.bin')).toBeNull();
  });

  s3it('refuses a range the object is too short for as corrupt, naming the object', async () => {
    await testBucket.storage.putObject('objects/short.bin', randomBytes(1000));
    const past = await rejectionOf(testBucket.storage.getRange('objects/short.bin', 990, 20));
    expect(past.code).toBe('ERR_BACKUP_CORRUPT');
    expect(past.message).toContain(`s3://${bucket}/repo/objects/short.bin`);
    expect((await rejectionOf(testBucket.storage.getRange('objects/short.bin', 1000, 1))).code).toBe(
      'ERR_BACKUP_CORRUPT',
    );
    expect((await rejectionOf(testBucket.storage.getRange('objects/nothing.bin', 0, 1))).code).toBe(
      'ERR_S3_NOT_FOUND',
    );
  });

  s3it('writes a commit marker once: a second put-if-absent is refused and the first stays', async () => {
    await testBucket.storage.putObject('snapshots/one/manifest.json', Buffer.from('first'), {
      ifAbsent: true,
    });
    const second = await rejectionOf(
      testBucket.storage.putObject('snapshots/one/manifest.json', Buffer.from('second'), { ifAbsent: true }),
    );
    expect(second.code).toBe('ERR_S3_EXISTS');
    expect(second.message).toContain(`s3://${bucket}/repo/snapshots/one/manifest.json`);
    expect((await testBucket.storage.getObject('snapshots/one/manifest.json')).toString()).toBe('first');
  });

  s3it('lets exactly one of eight concurrent commits of one key succeed', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) =>
        testBucket.storage.putObject('snapshots/race/manifest.json', Buffer.from(`writer ${i}`), {
          ifAbsent: true,
        }),
      ),
    );
    const won = results.flatMap((result, i) => (result.status === 'fulfilled' ? [i] : []));
    expect(won).toHaveLength(1);
    for (const result of results) {
      if (result.status === 'rejected') expect(result.reason.code).toBe('ERR_S3_EXISTS');
    }
    expect((await testBucket.storage.getObject('snapshots/race/manifest.json')).toString()).toBe(
      `writer ${won[0]}`,
    );
  });

  s3it('has the server check a known payload hash: a wrong one stores nothing', async () => {
    const body = randomBytes(4096);
    const wrong = await rejectionOf(
      testBucket.storage.putObject('objects/hashed.bin', body, { sha256: sha256(randomBytes(8)) }),
    );
    expect(wrong.code).toBe('ERR_S3_REQUEST');
    expect(await testBucket.storage.headObject('objects/hashed.bin')).toBeNull();
    await testBucket.storage.putObject('objects/hashed.bin', body, { sha256: sha256(body) });
    expect(sha256(await testBucket.storage.getObject('objects/hashed.bin'))).toBe(sha256(body));
  });
});

describe('listings and batch deletes', () => {
  s3it(
    'lists and deletes more than 1,000 keys (several pages, several delete requests)',
    async () => {
      const keys = Array.from({ length: 2_100 }, (_, i) => `many/${String(i).padStart(5, '0')}.txt`);
      const limit = pLimit(32);
      await Promise.all(keys.map((key) => limit(() => testBucket.storage.putObject(key, Buffer.from(key)))));
      await testBucket.storage.putObject('many-other/x', Buffer.from('x'));
      const listed: string[] = [];
      for await (const object of testBucket.storage.listObjects('many/')) listed.push(object.key);
      expect(listed).toEqual(keys);
      const children: string[] = [];
      for await (const name of testBucket.storage.listChildren('')) children.push(name);
      expect(children).toEqual(expect.arrayContaining(['many', 'many-other', 'objects', 'snapshots']));
      await testBucket.storage.deleteObjects([...keys, 'many/never-existed.txt']);
      const left: string[] = [];
      for await (const object of testBucket.storage.listObjects('many')) left.push(object.key);
      expect(left).toEqual(['many-other/x']);
    },
    180_000,
  );
});

describe('multipart uploads', () => {
  s3it('uploads parts in parallel and reads the object back byte for byte', async () => {
    const parts = [randomBytes(MIN_PART_BYTES), randomBytes(MIN_PART_BYTES + 7), randomBytes(1_000_000)];
    const done: number[] = [];
    async function* produce() {
      yield* parts;
    }
    const result = await testBucket.storage.putMultipart('large/file.bin', produce(), {
      onPartDone: (partNumber) => done.push(partNumber),
    });
    expect(result).toEqual({ bytes: parts.reduce((n, p) => n + p.length, 0), parts: 3 });
    expect(done.sort()).toEqual([1, 2, 3]);
    const whole = Buffer.concat(parts);
    expect(sha256(await testBucket.storage.getObject('large/file.bin'))).toBe(sha256(whole));
    const across = await testBucket.storage.getRange('large/file.bin', MIN_PART_BYTES - 10, 20);
    expect(across.equals(whole.subarray(MIN_PART_BYTES - 10, MIN_PART_BYTES + 10))).toBe(true);
  });

  s3it('aborts the upload when the producer fails, leaving no object and no unfinished upload', async () => {
    async function* failing() {
      yield randomBytes(MIN_PART_BYTES);
      throw new Error('source went away');
    }
    const error = await rejectionOf(testBucket.storage.putMultipart('large/failed.bin', failing()));
    expect(error.message).toBe('source went away');
    expect(await testBucket.storage.headObject('large/failed.bin')).toBeNull();
    const client = adminClient();
    try {
      const uploads = await client.send(
        new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: 'repo/large/' }),
      );
      expect(uploads.Uploads ?? []).toEqual([]);
    } finally {
      client.destroy();
    }
  });

  s3it("aborts a killed run's unfinished uploads, and only those under the prefix it is given", async () => {
    const client = adminClient();
    try {
      for (const key of ['repo/data/left-1.tar', 'repo/data/left-2.tar', 'repo/other/keep.tar']) {
        const { UploadId } = await client.send(
          new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }),
        );
        await client.send(
          new UploadPartCommand({
            Bucket: bucket,
            Key: key,
            UploadId,
            PartNumber: 1,
            Body: randomBytes(1024),
          }),
        );
      }
      expect(await testBucket.storage.abortUnfinishedUploads('data/')).toBe(2);
      const left = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: 'repo/' }));
      expect((left.Uploads ?? []).map((upload) => upload.Key)).toEqual(['repo/other/keep.tar']);
      expect(await testBucket.storage.abortUnfinishedUploads('other/')).toBe(1);
    } finally {
      client.destroy();
    }
  });
});

describe('a pack through S3', () => {
  s3it('comes back byte for byte: every file by a ranged read, and the whole pack by tar x', async () => {
    const dir = tempDir();
    const files = new Map<string, Buffer>([
      ['memory/facts/fact-000001.json', Buffer.from('{"fact":1}\n')],
      ['memory/facts/empty.json', Buffer.alloc(0)],
      ['memory/knowledge/note.md', randomBytes(300_000)],
      [`memory/${'deep/'.repeat(30)}leaf.json`, randomBytes(513)],
      ['sessions/sessión-ü.json', randomBytes(512)],
    ]);
    const writer = new TarWriter();
    const offsets = new Map<string, number>();
    for (const [path, data] of files) {
      const header = {
        path: Buffer.from(path),
        size: data.length,
        mode: 0o644,
        mtimeSeconds: 1_764_470_831,
        uid: 0,
        gid: 0,
      };
      offsets.set(path, writer.addFile(header, data));
    }
    const pack = writer.finish();
    await testBucket.storage.putObject('data/pack-1.tar', pack, { sha256: sha256(pack) });

    await Promise.all(
      [...files].map(async ([path, data]) => {
        const read = await testBucket.storage.getRange('data/pack-1.tar', offsets.get(path)!, data.length);
        expect(sha256(read), path).toBe(sha256(data));
      }),
    );
    const downloaded = await testBucket.storage.getObject('data/pack-1.tar');
    expect(sha256(downloaded)).toBe(sha256(pack));
    expect([...readTar(downloaded)].map((entry) => Buffer.from(entry.path).toString())).toEqual([
      ...files.keys(),
    ]);
    const out = join(dir, 'out');
    mkdirSync(out);
    writeFileSync(join(dir, 'pack.tar'), downloaded);
    const tar = spawnSync('tar', ['-x', '-f', join(dir, 'pack.tar'), '-C', out], { encoding: 'utf8' });
    expect(tar.stderr).toBe('');
    for (const [path, data] of files) expect(sha256(readFileSync(join(out, path))), path).toBe(sha256(data));
  });
});

describe('failures', () => {
  const secret = process.env.AWS_SECRET_ACCESS_KEY ?? '';
  const accessKey = process.env.AWS_ACCESS_KEY_ID ?? '';
  /** A credential that differs from `value` in its first character (a fixed replacement may equal it). */
  const otherFirstCharacter = (value: string) => `${value.startsWith('X') ? 'Y' : 'X'}${value.slice(1)}`;

  /** Opens the test bucket with some environment variables replaced, expecting a failure. */
  async function openFailure(env: Record<string, string | undefined>, location = `s3://${bucket}/repo`) {
    const saved = { ...process.env };
    for (const [name, value] of Object.entries(env)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    try {
      return await rejectionOf(S3Storage.open(parseS3Location(location)));
    } finally {
      process.env = saved;
    }
  }

  function expectOneLineWithoutCredentials(error: Error): void {
    expect(error.message).not.toContain('\n');
    const shown = visibleParts(error);
    expect(shown).not.toContain(secret);
    expect(shown).not.toContain(secret.slice(1));
    expect(shown).not.toContain(accessKey);
  }

  s3it('a wrong secret key: access denied, saying the signature does not match', async () => {
    const error = await openFailure({ AWS_SECRET_ACCESS_KEY: otherFirstCharacter(secret) });
    expect(error.code).toBe('ERR_S3_ACCESS_DENIED');
    expect(error.cause).toMatchObject({ name: 'SignatureDoesNotMatch', httpStatus: 403 });
    expect(error.message).toContain(`s3://${bucket}/repo`);
    expectOneLineWithoutCredentials(error);
  });

  s3it('an unknown access key: access denied, without showing the key', async () => {
    const error = await openFailure({ AWS_ACCESS_KEY_ID: otherFirstCharacter(accessKey) });
    expect(error.code).toBe('ERR_S3_ACCESS_DENIED');
    expect(error.cause).toMatchObject({ name: 'InvalidAccessKeyId' });
    expect(visibleParts(error)).not.toContain(accessKey.slice(1));
    expectOneLineWithoutCredentials(error);
  });

  s3it('a missing bucket: not found, naming the bucket', async () => {
    const missing = uniqueBucketName();
    const error = await openFailure({}, `s3://${missing}/repo`);
    expect(error.code).toBe('ERR_S3_NOT_FOUND');
    expect(error.message).toContain(`s3://${missing}/repo`);
    expect(error.message).toContain('bucket does not exist');
    expectOneLineWithoutCredentials(error);
  });

  s3it('a refused or unresolvable endpoint: unreachable after the retries, naming the endpoint', async () => {
    const refused = await openFailure({ AWS_ENDPOINT_URL: 'http://127.0.0.1:9' });
    expect(refused.code).toBe('ERR_S3_UNREACHABLE');
    expect(refused.message).toContain('http://127.0.0.1:9');
    expect(refused.cause).toMatchObject({ systemCode: 'ECONNREFUSED', attempts: 4 });
    expectOneLineWithoutCredentials(refused);
    const unknown = await openFailure({ AWS_ENDPOINT_URL: 'http://statesnap-no-such-host.invalid:7480' });
    expect(unknown.code).toBe('ERR_S3_UNREACHABLE');
    expect(unknown.cause).toMatchObject({ systemCode: 'ENOTFOUND' });
    expectOneLineWithoutCredentials(unknown);
  });

  s3it('an endpoint carrying a password is refused before any request, without repeating it', async () => {
    const error = await openFailure({ AWS_ENDPOINT_URL: `http://${accessKey}:${secret}@127.0.0.1:9` });
    expect(error.code).toBe('ERR_S3_CONFIG');
    expectOneLineWithoutCredentials(error);
  });

  s3it('prints nothing of its own: no SDK warnings or logs on stderr, also when requests fail', async () => {
    const script = `
      const { S3Storage } = await import(${JSON.stringify(new URL('../dist/src/s3/client.js', import.meta.url).href)});
      const { parseS3Location } = await import(${JSON.stringify(new URL('../dist/src/s3/location.js', import.meta.url).href)});
      const storage = await S3Storage.open(parseS3Location(${JSON.stringify(`s3://${bucket}/quiet`)}));
      await storage.putObject('a', Buffer.from('a'));
      await storage.getObject('missing').catch(() => {});
      storage.close();
      process.env.AWS_ENDPOINT_URL = 'http://127.0.0.1:9';
      await S3Storage.open(parseS3Location(${JSON.stringify(`s3://${bucket}/quiet`)})).catch(() => {});
      console.log('done');
    `;
    // The parent may have silenced the SDK's notice for its own clients; the child must do it itself.
    const env = { ...process.env };
    delete env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      env,
    });
    expect(child.stderr).toBe('');
    expect(child.stdout).toBe('done\n');
  });
});
