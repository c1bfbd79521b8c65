// A server that stops answering or dies mid-upload, for real: a private Ceph RGW (scripts/local-s3.sh with
// its own directory and ports) that the tests freeze with SIGSTOP and kill with SIGKILL. Each failure must
// end the request within the configured bounds as one line naming the object, never hang, never show a key.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { MIN_PART_BYTES, S3Storage } from '../dist/src/s3/client.js';
import { parseS3Location } from '../dist/src/s3/location.js';
import { expectOneLineError } from './helpers/backup.js';
import { IN_CI, requireDependency } from './helpers/dependencies.js';
import { startPausedCli } from './helpers/pause.js';
import {
  LOCAL_S3_SCRIPT,
  privateRgwUnavailable,
  rejectionOf,
  s3Unavailable,
  visibleParts,
} from './helpers/s3.js';
import { cleanup, createTree, file, runCli, tempDir } from './helpers/tree.js';

// Only where the S3 suite runs at all (an endpoint is configured, as in CI): a developer without one gets the
// same one-line skip as for the other S3 tests, not a 10-second server start.
const unavailable = s3Unavailable() ?? privateRgwUnavailable();
const stateDir = join(tempDir('statesnap-rgw-'), 'state');
const bucket = 'failures';
const env: Record<string, string> = {};
let started = false;

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

function localS3(...args: string[]) {
  return spawnSync(LOCAL_S3_SCRIPT, ['--dir', stateDir, ...args], { encoding: 'utf8', timeout: 170_000 });
}

beforeAll(async () => {
  if (unavailable !== null) return;
  const start = localS3(
    '--port',
    String(await freePort()),
    '--mon-port',
    String(await freePort()),
    '--bucket',
    bucket,
    'start',
  );
  if (start.status !== 0) {
    const reason = `the private RGW did not start: ${start.stderr.trim().split('\n').slice(-3).join(' / ')}`;
    if (IN_CI) throw new Error(reason);
    return;
  }
  started = true;
  for (const line of localS3('env').stdout.split('\n')) {
    const match = /^export (\w+)=(.*)$/.exec(line);
    if (match) env[match[1]!] = match[2]!.replace(/^'(.*)'$/, '$1');
  }
}, 180_000);

afterAll(() => {
  if (started) localS3('stop');
  cleanup();
});

function rgwPid(): number {
  return Number(readFileSync(join(stateDir, 'run', 'client.rgw.pid'), 'utf8').trim());
}

/** Opens the private server's bucket with the given client settings. */
async function openPrivate(options: { idleTimeoutMs?: number; maxAttempts?: number; concurrency?: number }) {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    return await S3Storage.open(parseS3Location(`s3://${bucket}/repo`), options);
  } finally {
    process.env = saved;
  }
}

function privateIt(name: string, run: (ctx: TestContext) => Promise<void>): void {
  it(name, async (ctx) => {
    requireDependency(ctx, unavailable);
    if (!started) requireDependency(ctx, 'the private RGW did not start');
    await run(ctx);
  }, 120_000);
}

describe('a server that stops answering', () => {
  privateIt(
    'fails the request after the idle timeout and its retries, instead of waiting forever',
    async () => {
      const storage = await openPrivate({ idleTimeoutMs: 1_000, maxAttempts: 2 });
      const pid = rgwPid();
      process.kill(pid, 'SIGSTOP');
      const began = performance.now();
      try {
        const error = await rejectionOf(storage.putObject('frozen.bin', randomBytes(1024)));
        const seconds = (performance.now() - began) / 1000;
        expect(error.code).toBe('ERR_S3_UNREACHABLE');
        expect(error.message).toMatch(
          /^cannot write s3:\/\/failures\/repo\/frozen\.bin at http:\/\/127\.0\.0\.1:\d+: /,
        );
        expect(error.cause).toMatchObject({ name: 'TimeoutError', attempts: 2 });
        // Two attempts of one idle second each, plus backoff; nowhere near "forever".
        expect(seconds).toBeLessThan(20);
      } finally {
        process.kill(pid, 'SIGCONT');
        storage.close();
      }
      const again = await openPrivate({});
      await again.putObject('after.bin', Buffer.from('the server answers again'));
      again.close();
    },
  );
});

/** Starts the private radosgw again after a test killed it (monitor and OSD still run), and waits until it answers. */
async function restartRgw(): Promise<void> {
  const start = spawnSync('radosgw', ['-c', join(stateDir, 'ceph.conf'), '-n', 'client.rgw'], {
    encoding: 'utf8',
  });
  expect(start.status, start.stderr).toBe(0);
  // Opening proves the bucket listable; until radosgw has bound its port it is refused.
  for (let attempt = 0; ; attempt++) {
    try {
      (await openPrivate({ maxAttempts: 1 })).close();
      return;
    } catch (error) {
      if (attempt >= 150) throw error;
      await new Promise((wake) => setTimeout(wake, 200));
    }
  }
}

describe('a server stopped mid-snapshot', () => {
  privateIt('exits 1 with one line, and once the server is back nothing is listed', async () => {
    const source = tempDir('statesnap-midrun-');
    await createTree(
      source,
      Object.fromEntries(Array.from({ length: 400 }, (_, i) => [`note-${i}.json`, file(`{"n":${i}}`)])),
    );
    const repository = `s3://${bucket}/midrun`;
    const run = startPausedCli(['snapshot', source, repository], ['copying:1'], { env });
    await run.reached('copying');
    process.kill(rgwPid(), 'SIGKILL');
    run.resume();
    const ended = await run.done;
    expect(ended.exitCode).toBe(1);
    expectOneLineError(ended, 'ERR_S3_UNREACHABLE');
    expect(ended.stderr).toContain(env.AWS_ENDPOINT_URL);

    await restartRgw();
    const listed = await runCli(['list', '--json', repository], { env });
    expect(listed.stderr).toBe('');
    expect(listed.exitCode).toBe(0);
    expect(JSON.parse(listed.stdout)).toMatchObject({ snapshots: [] });
  });
});

describe('a server killed mid-upload', () => {
  privateIt('fails the upload with one line naming the object and the endpoint, showing no key', async () => {
    const storage = await openPrivate({ concurrency: 2 });
    const parts = Array.from({ length: 8 }, () => randomBytes(MIN_PART_BYTES));
    async function* produce() {
      yield* parts;
    }
    let killedAfterPart = 0;
    const error = await rejectionOf(
      storage.putMultipart('big/file.bin', produce(), {
        onPartDone: (partNumber) => {
          if (killedAfterPart !== 0) return;
          killedAfterPart = partNumber;
          process.kill(rgwPid(), 'SIGKILL');
        },
      }),
    );
    storage.close();
    expect(killedAfterPart).toBeGreaterThan(0);
    expect(error.code).toBe('ERR_S3_UNREACHABLE');
    expect(error.message).not.toContain('\n');
    expect(error.message).toContain('s3://failures/repo/big/file.bin');
    expect(error.message).toContain(env.AWS_ENDPOINT_URL);
    const shown = visibleParts(error);
    expect(shown).not.toContain(env.AWS_SECRET_ACCESS_KEY);
    expect(shown).not.toContain(env.AWS_ACCESS_KEY_ID);
  });
});
