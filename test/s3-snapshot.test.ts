// `statesnap snapshot` and `statesnap list` of an s3://bucket/prefix repository against the real server (the
// local Ceph RGW in CI): a store with every entry kind becomes packs, a large file's own object, an index and a
// manifest whose every line is checked against the source and the stored bytes (`tar x` of each data object
// gives the files back); an unchanged store uploads nothing and a changed file only itself; a run killed
// mid-upload leaves no snapshot and does not block the next; bad credentials, buckets and endpoints are one
// line without a credential; a listing of more than 1,000 ids.

import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { afterEach, describe, expect, it, type TestContext } from 'vitest';
import { uploadIndex } from '../dist/src/backup/s3-writer.js';
import {
  manifestKey,
  parseS3Manifest,
  readS3Index,
  type S3FileEntry,
  type S3IndexEntry,
  type S3Manifest,
} from '../dist/src/format/s3-index.js';
import { S3Storage } from '../dist/src/s3/client.js';
import { parseS3Location } from '../dist/src/s3/location.js';
import { requireDependency } from './helpers/dependencies.js';
import { startPausedCli } from './helpers/pause.js';
import { uniqueBucketName, useTestBucket } from './helpers/s3.js';
import {
  cleanup,
  closeSockets,
  createTree,
  dir,
  fifo,
  file,
  runCli,
  socket,
  symlink,
  tempDir,
} from './helpers/tree.js';

const testBucket = useTestBucket();
const { name: bucket, unavailable } = testBucket;

afterEach(async () => {
  await closeSockets();
  cleanup();
});

function s3it(name: string, run: (ctx: TestContext) => Promise<void>, timeout = 120_000): void {
  it(
    name,
    async (ctx) => {
      requireDependency(ctx, unavailable);
      await run(ctx);
    },
    timeout,
  );
}

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
const NOT_UTF8 = Buffer.from([0x6e, 0x6f, 0x74, 0xe9, 0x2e, 0x6a, 0x73, 0x6f, 0x6e]); // "not\xe9.json"
const LONG_NAME = `${'long-directory-name-'.repeat(6)}/${'n'.repeat(120)}.md`;
// Four parts of 8 MiB: the last one reuses the first part's slot of the ring.
const LARGE = randomBytes(25 * 1024 * 1024 + 123);

/** A store with every entry kind, names ustar cannot hold, sizes around a tar block and a large file. */
async function everyKindStore(): Promise<string> {
  const root = join(tempDir('statesnap-s3-source-'), 'store');
  await createTree(root, {
    'empty.json': file(''),
    'block.json': file(Buffer.alloc(512, 0x61)),
    'exec.sh': file('#!/bin/sh\n', { mode: 0o755 }),
    memory: dir({ facts: { 'a.json': file('{"a":1}'), 'b.json': file('{"b":2}') } }, { mode: 0o750 }),
    'empty-dir': dir(),
    'link.json': symlink('empty.json'),
    pipe: fifo(),
    sock: socket(),
    'large.bin': file(LARGE),
  });
  mkdirSync(join(root, LONG_NAME, '..'), { recursive: true });
  writeFileSync(join(root, LONG_NAME), 'long');
  writeFileSync(Buffer.concat([Buffer.from(`${root}/`), NOT_UTF8]), 'latin-1 name');
  if (process.getuid?.() === 0) spawnSync('mknod', [join(root, 'null-device'), 'c', '1', '3']);
  return root;
}

async function snapshotCli(args: string[], env: Record<string, string | undefined> = {}) {
  const run = await runCli(['snapshot', '--json', ...args], { env, timeoutMs: 120_000 });
  return { ...run, result: run.stdout === '' ? null : JSON.parse(run.stdout) };
}

async function listCli(repo: string) {
  const run = await runCli(['list', '--json', repo]);
  expect(run.stderr).toBe('');
  expect(run.exitCode).toBe(0);
  return JSON.parse(run.stdout) as {
    snapshots: { id: string; linked: number; copied: number; bytesNew: number }[];
    unfinished: { id: string }[];
  };
}

/** The storage of a repository's prefix (the bucket's storage lists with the repository's keys). */
async function repoStorage(prefix: string): Promise<S3Storage> {
  return S3Storage.open(parseS3Location(`s3://${bucket}/${prefix}`));
}

async function readSnapshot(
  repo: S3Storage,
  id: string,
): Promise<{ manifest: S3Manifest; lines: S3IndexEntry[] }> {
  const manifest = parseS3Manifest(await repo.getObject(manifestKey(id)), 'manifest', id);
  const { s3 } = manifest.statesnap;
  const body = await repo.getObject(s3.index.key);
  const lines: S3IndexEntry[] = [];
  for await (const line of readS3Index([body], s3, s3.index.key, { refuseCaseCollisions: false }))
    lines.push(line);
  return { manifest, lines };
}

async function dataKeys(repo: S3Storage): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of repo.listObjects('data/')) keys.push(object.key);
  return keys.sort();
}

/** A file of `root` by its index path; the one path that is not UTF-8 is the test's known name. */
function fileBytes(root: string, path: string): Buffer {
  return readFileSync(
    path.isWellFormed() ? join(root, path) : Buffer.concat([Buffer.from(`${root}/`), NOT_UTF8]),
  );
}

describe('snapshot to s3://', () => {
  s3it(
    'a store of many tiny files goes up in packs of at most 2,048 files, every file at its range',
    async () => {
      const source = tempDir('statesnap-s3-tiny-');
      const files = 5000;
      for (let shard = 0; shard < 5; shard++) {
        mkdirSync(join(source, `shard-${shard}`));
        for (let i = 0; i < files / 5; i++) {
          writeFileSync(join(source, `shard-${shard}`, `fact-${i}.json`), `{"fact":${shard * 1000 + i}}`);
        }
      }
      const made = await snapshotCli([source, `s3://${bucket}/tiny`]);
      expect(made.stderr).toBe('');
      expect(made.exitCode).toBe(0);
      // 2,048 + 2,048 + 904 files: a pack in flight holds few enough files that memory does not follow the store.
      expect(made.result.uploaded.objects).toBe(3);
      const repo = await repoStorage('tiny');
      try {
        const { manifest, lines } = await readSnapshot(repo, made.result.id);
        const perObject = new Map<string, number>();
        const objects = new Map<string, Buffer>();
        for (const line of lines) {
          if (line.type !== 'file') continue;
          perObject.set(line.object, (perObject.get(line.object) ?? 0) + 1);
          if (!objects.has(line.object)) objects.set(line.object, await repo.getObject(line.object));
          const stored = objects.get(line.object)!.subarray(line.offset, line.offset + line.size);
          expect(stored.toString(), line.path).toBe(readFileSync(join(source, line.path), 'utf8'));
        }
        expect([...perObject.values()].sort((a, b) => a - b)).toEqual([904, 2048, 2048]);
        expect(manifest.statesnap.s3.objects.map((object) => object.key).sort()).toEqual(
          await dataKeys(repo),
        );
      } finally {
        repo.close();
      }
    },
  );

  s3it(
    'stores every entry kind: index lines match the source and the stored ranges; tar x of each object gives the files back',
    async () => {
      const source = await everyKindStore();
      const repoUrl = `s3://${bucket}/kinds`;
      const made = await snapshotCli([source, repoUrl]);
      expect(made.stderr).toBe('');
      expect(made.exitCode).toBe(0);
      const { id } = made.result;
      expect(made.result.uploaded.objects).toBe(2); // one pack, the large file's own object
      expect((await listCli(repoUrl)).snapshots.map((row) => row.id)).toEqual([id]);

      const repo = await repoStorage('kinds');
      try {
        const { manifest, lines } = await readSnapshot(repo, id);
        const files = lines.filter((line): line is S3FileEntry => line.type === 'file');
        expect(files.map((line) => line.path).sort()).toEqual(
          [
            'block.json',
            'empty.json',
            'exec.sh',
            'large.bin',
            'memory/facts/a.json',
            'memory/facts/b.json',
            LONG_NAME,
          ]
            .concat([`not${String.fromCharCode(0xdce9)}.json`])
            .sort(),
        );
        const skipped = lines.filter((line) => 'skipped' in line).map((line) => [line.path, line.type]);
        expect(skipped).toEqual(
          expect.arrayContaining([
            ['link.json', 'symlink'],
            ['pipe', 'fifo'],
            ['sock', 'socket'],
          ]),
        );
        if (process.getuid?.() === 0) expect(skipped).toContainEqual(['null-device', 'char-device']);
        expect(lines.find((line) => line.path === 'memory')).toMatchObject({ type: 'dir', mode: 0o750 });
        expect(lines.find((line) => line.path === 'empty-dir')).toMatchObject({ type: 'dir' });
        for (const line of files) {
          const content = fileBytes(source, line.path);
          expect(line.sha256, line.path).toBe(sha256(content));
          if (line.size > 0)
            expect(sha256(await repo.getRange(line.object, line.offset, line.size))).toBe(line.sha256);
        }
        expect(files.find((line) => line.path === 'exec.sh')?.mode).toBe(0o755);
        const { objects } = manifest.statesnap.s3;
        expect(objects.map((object) => object.key).sort()).toEqual(await dataKeys(repo));
        // `tar x` of every data object gives the files back, byte for byte.
        const out = tempDir('statesnap-s3-untar-');
        for (const object of objects) {
          const tarFile = join(tempDir('statesnap-s3-tar-'), 'object.tar');
          writeFileSync(tarFile, await repo.getObject(object.key));
          const tar = spawnSync('tar', ['-xf', tarFile, '-C', out]);
          expect(tar.status, tar.stderr.toString()).toBe(0);
        }
        for (const line of files) {
          expect(sha256(fileBytes(out, line.path)), line.path).toBe(line.sha256);
        }
        expect(readdirSync(out).sort()).not.toContain('link.json');
      } finally {
        repo.close();
      }
    },
  );

  s3it(
    'an unchanged store uploads nothing; a changed and an added file are the only content uploaded',
    async () => {
      const source = join(tempDir('statesnap-s3-incr-'), 'store');
      const files: Record<string, ReturnType<typeof file>> = {};
      for (let i = 0; i < 300; i++)
        files[`f-${String(i).padStart(3, '0')}.json`] = file(randomBytes(700).toString('hex'));
      // Old timestamps: not racy, so the change rule reuses them without reading.
      const old = Math.floor(Date.now() / 1000) - 3600;
      await createTree(source, { memory: dir(files, { mtime: old }) });
      for (const name of Object.keys(files)) {
        spawnSync('touch', ['-d', `@${old}`, join(source, 'memory', name)]);
      }
      const repoUrl = `s3://${bucket}/incremental`;
      const first = await snapshotCli([source, repoUrl]);
      expect(first.exitCode).toBe(0);
      const repo = await repoStorage('incremental');
      try {
        const afterFirst = await dataKeys(repo);
        expect(afterFirst.length).toBeGreaterThan(0);

        const same = await snapshotCli([source, repoUrl]);
        expect(same.exitCode).toBe(0);
        expect(same.result.uploaded).toMatchObject({ objects: 0, bytes: 0 });
        // Files whose ctime is within the racy margin of the first run's start are read and hashed, not uploaded.
        expect(same.result.counts).toMatchObject({ linked: 300, copied: 0 });
        expect(same.result.counts.hashMatched).toBe(same.result.counts.hashed);
        expect(await dataKeys(repo)).toEqual(afterFirst);

        writeFileSync(join(source, 'memory', 'f-007.json'), 'changed');
        writeFileSync(join(source, 'memory', 'new.json'), 'added');
        const changed = await snapshotCli([source, repoUrl]);
        expect(changed.exitCode).toBe(0);
        expect(changed.result.counts).toMatchObject({ linked: 299, copied: 2 });
        expect(changed.result.uploaded.objects).toBe(1);
        // Two members: each a header block and one block of content, then the two end blocks.
        expect(changed.result.uploaded.bytes).toBe(2 * 1024 + 1024);
        const added = (await dataKeys(repo)).filter((key) => !afterFirst.includes(key));
        expect(added).toHaveLength(1);
        const { lines } = await readSnapshot(repo, changed.result.id);
        for (const line of lines) {
          if (line.type !== 'file') continue;
          const isNew = line.path === 'memory/f-007.json' || line.path === 'memory/new.json';
          expect(line.object, line.path).toBe(isNew ? added[0] : line.object);
          expect(line.reused, line.path).toBe(isNew ? undefined : true);
          expect(afterFirst.includes(line.object), line.path).toBe(!isNew);
        }
        const rows = (await listCli(repoUrl)).snapshots;
        expect(rows.map((row) => [row.linked, row.copied])).toEqual([
          [0, 300],
          [300, 0],
          [299, 2],
        ]);
      } finally {
        repo.close();
      }
    },
  );

  s3it(
    'kill -9 mid-upload: list shows no snapshot, the lock held meanwhile, the next snapshot works and takes over',
    async () => {
      const source = join(tempDir('statesnap-s3-kill-'), 'store');
      const files: Record<string, ReturnType<typeof file>> = {};
      for (let i = 0; i < 40; i++) files[`part-${i}.bin`] = file(randomBytes(1024 * 1024));
      await createTree(source, files);
      const repoUrl = `s3://${bucket}/killed`;
      const running = startPausedCli(['snapshot', source, repoUrl], ['copying:20']);
      await running.reached('copying');
      // While it holds the writer lock, another snapshot is refused with the holder named.
      const busy = await snapshotCli([source, repoUrl]);
      expect(busy.exitCode).toBe(1);
      expect(busy.result.error.code).toBe('ERR_REPO_BUSY');
      expect(busy.stderr).toContain(`pid ${running.child.pid}`);
      const killed = await running.kill();
      expect(killed.signal).toBe('SIGKILL');
      const listing = await listCli(repoUrl);
      expect(listing.snapshots).toEqual([]);
      const repo = await repoStorage('killed');
      const locks = async () => {
        const keys: string[] = [];
        for await (const object of repo.listObjects('locks/')) keys.push(object.key);
        return keys;
      };
      try {
        // The killed run's lock is left behind; the next run finds its process gone and removes it.
        expect(await locks()).toHaveLength(1);

        const next = await snapshotCli([source, repoUrl]);
        expect(next.stderr).toBe('');
        expect(next.exitCode).toBe(0);
        expect(next.result.counts.copied).toBe(40);
        const after = await listCli(repoUrl);
        expect(after.snapshots.map((row) => row.id)).toEqual([next.result.id]);
        expect(await locks()).toEqual([]);
      } finally {
        repo.close();
      }
    },
  );

  s3it(
    'SIGINT while more packs wait for an upload place than there are places: exit 130, no hang',
    async () => {
      // 8 threads queue 16 packs behind the 8 upload places. A stopped pass drops packs that already hold a
      // place, and a waiter that went on waiting for one would never be woken.
      const source = join(tempDir('statesnap-s3-sigint-queue-'), 'store');
      const files: Record<string, ReturnType<typeof file>> = {};
      for (let i = 0; i < 48; i++) files[`part-${i}.bin`] = file(randomBytes(4 * 1024 * 1024));
      await createTree(source, files);
      const repoUrl = `s3://${bucket}/interrupted-queue`;
      const running = startPausedCli(['snapshot', '--threads', '8', source, repoUrl], ['copying:1']);
      await running.reached('copying');
      running.child.kill('SIGINT');
      running.resume();
      const outcome = await Promise.race([
        running.done,
        new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 30_000).unref()),
      ]);
      if (outcome === 'hung') await running.kill();
      expect(outcome).not.toBe('hung');
      expect((outcome as Awaited<typeof running.done>).exitCode).toBe(130);
      expect((await listCli(repoUrl)).snapshots).toEqual([]);
    },
  );

  s3it('SIGINT mid-upload: exit 130, no snapshot, no lock and no unfinished upload left', async () => {
    const source = join(tempDir('statesnap-s3-sigint-'), 'store');
    const files: Record<string, ReturnType<typeof file>> = {};
    for (let i = 0; i < 4; i++) files[`large-${i}.bin`] = file(randomBytes(12 * 1024 * 1024));
    await createTree(source, files);
    const repoUrl = `s3://${bucket}/interrupted`;
    const running = startPausedCli(['snapshot', source, repoUrl], ['copying:1']);
    await running.reached('copying');
    running.child.kill('SIGINT');
    running.resume();
    const run = await running.done;
    expect(run.exitCode).toBe(130);
    expect(run.stderr).toContain('[ERR_ABORTED]');
    expect((await listCli(repoUrl)).snapshots).toEqual([]);
    const repo = await repoStorage('interrupted');
    try {
      const left: string[] = [];
      for await (const object of repo.listObjects('')) left.push(object.key);
      expect(
        left.filter((key) => !key.startsWith('data/')),
        left.join(' '),
      ).toEqual(['.statesnap-repository']);
      expect(await repo.abortUnfinishedUploads('')).toBe(0);
    } finally {
      repo.close();
    }
  });

  s3it('a prefix holding objects but no repository marker is refused', async () => {
    await testBucket.storage.putObject('not-a-repo/some-file', Buffer.from('x'));
    const source = join(tempDir('statesnap-s3-refused-'), 'store');
    await createTree(source, { 'a.json': file('{}') });
    const run = await snapshotCli([source, `s3://${bucket}/not-a-repo`]);
    expect(run.exitCode).toBe(1);
    expect(run.result.error.code).toBe('ERR_REPO_INVALID');
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
  });

  s3it('lists more than 1,000 snapshot ids (several pages)', async () => {
    const source = join(tempDir('statesnap-s3-many-'), 'store');
    await createTree(source, { 'a.json': file('{}') });
    const repoUrl = `s3://${bucket}/many`;
    const made = await snapshotCli([source, repoUrl]);
    expect(made.exitCode).toBe(0);
    const limit = pLimit(32);
    const ids = Array.from({ length: 1_050 }, (_, i) => {
      const time = new Date(Date.UTC(2020, 0, 1) + i * 1000)
        .toISOString()
        .replace(/:/g, '-')
        .replace('.000Z', 'Z');
      return time;
    });
    await Promise.all(
      ids.map((id) =>
        limit(() => testBucket.storage.putObject(`many/snapshots/${id}/index-x`, Buffer.from('x'))),
      ),
    );
    const listing = await listCli(repoUrl);
    expect(listing.snapshots.map((row) => row.id)).toEqual([made.result.id]);
    expect(listing.unfinished.map((row) => row.id)).toEqual(ids);
  });
});

describe('index upload', () => {
  s3it(
    'an index of more than two parts goes up as a multipart upload; a smaller one in one request',
    async () => {
      for (const sizes of [
        [5 * 1024 * 1024, 1000],
        [5 * 1024 * 1024, 5 * 1024 * 1024, 5 * 1024 * 1024, 17],
      ]) {
        const parts = sizes.map((size) => randomBytes(size));
        async function* generate() {
          yield* parts;
        }
        const key = `index-upload/${sizes.length}.jsonl.gz`;
        await uploadIndex(testBucket.storage, key, generate(), new AbortController().signal);
        expect(sha256(await testBucket.storage.getObject(key))).toBe(sha256(Buffer.concat(parts)));
      }
    },
  );
});

describe('s3:// failures through the CLI', () => {
  const secret = process.env.AWS_SECRET_ACCESS_KEY ?? '';
  const keyId = process.env.AWS_ACCESS_KEY_ID ?? '';
  const cases: [string, string[], Record<string, string>, string][] = [
    [
      'a wrong secret key',
      [],
      { AWS_SECRET_ACCESS_KEY: 'wrong-secret-key-0123456789' },
      'ERR_S3_ACCESS_DENIED',
    ],
    ['an unknown access key', [], { AWS_ACCESS_KEY_ID: 'AKIAUNKNOWNKEY000000' }, 'ERR_S3_ACCESS_DENIED'],
    ['a missing bucket', ['missing'], {}, 'ERR_S3_NOT_FOUND'],
    ['an endpoint nothing listens on', ['--endpoint', 'http://127.0.0.1:9'], {}, 'ERR_S3_UNREACHABLE'],
  ];
  for (const [name, args, env, code] of cases) {
    s3it(`${name}: one line, exit 1, ${code}, no credential anywhere`, async () => {
      const source = join(tempDir('statesnap-s3-fail-'), 'store');
      await createTree(source, { 'a.json': file('{}') });
      const target = args[0] === 'missing' ? `s3://${uniqueBucketName()}/repo` : `s3://${bucket}/failures`;
      const options = args[0] === 'missing' ? [] : args;
      for (const command of [
        ['snapshot', '--json', ...options, source, target],
        ['list', '--json', ...options, target],
      ]) {
        const run = await runCli(command, { env });
        expect(run.exitCode, run.stderr).toBe(1);
        expect(JSON.parse(run.stdout).error.code).toBe(code);
        expect(run.stderr.trim().split('\n')).toHaveLength(1);
        for (const text of [run.stdout, run.stderr]) {
          for (const credential of [secret, keyId, env.AWS_SECRET_ACCESS_KEY, env.AWS_ACCESS_KEY_ID]) {
            if (credential === undefined) continue;
            if (credential !== '') expect(text).not.toContain(credential);
          }
        }
      }
    });
  }
});
