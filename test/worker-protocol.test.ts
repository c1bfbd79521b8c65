// The packed forms batches take to the workers and outcomes take back: every field of every kind of file
// op and outcome survives the trip, through a real structured clone, unchanged.

import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type CopyTask,
  type FileOp,
  type FileOutcome,
  packFiles,
  packOutcomes,
  postedResult,
  postedTask,
  receivedResult,
  unpackFiles,
  unpackOutcomes,
} from '../dist/src/core/protocol.js';
import runTask from '../dist/workers/file-worker.js';

const OPS: FileOp[] = [
  // A backup's file as the walk plans it, by name, and as --link-dest's walk plans it.
  { rel: 'memory/facts/a.json', size: 0 },
  { rel: 'b.json', size: 12, dev: 2049n, ino: 18_446_744_073_709_551_615n },
  // A restore's file: attributes, owner and hash from the index; a name that is not UTF-8 (escaped).
  {
    rel: 'x/conv\udce9.md',
    size: 3,
    mode: 0o4755,
    mtimeNs: '-1234567890123',
    uid: 0,
    gid: 4_294_967_294,
    hash: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  },
  // Link plans: linked unread (times before 1970 too), and hashed first with no previous hash.
  {
    rel: 'c/d.json',
    size: 7,
    dev: 1n,
    ino: 5n,
    link: {
      action: 'link',
      size: 7,
      mode: 0o600,
      sha256: 'ab'.repeat(32),
      source: {
        mtimeNs: -17_179_869_183_999_999_999n,
        ctimeNs: 1_700_000_000_123_456_789n,
        ino: 5n,
        uid: 1000,
        gid: 100,
      },
    },
  },
  {
    rel: 'c/e.json',
    size: 1 << 30,
    link: {
      action: 'hash-then-link',
      size: 1 << 30,
      mode: 0o644,
      sha256: undefined,
      source: { mtimeNs: 0n, ctimeNs: 1n, ino: 2n ** 63n, uid: 0, gid: 0 },
      stored: { object: 'data/0123456789abcdef0123456789abcdef.tar', offset: 1536 },
    },
  },
];

describe('packed batches', () => {
  it('unpack to exactly the ops that were packed, after a structured clone', () => {
    const unpacked = unpackFiles(structuredClone(packFiles(OPS)));
    expect(unpacked).toStrictEqual(OPS);
  });

  it('an empty batch packs and unpacks', () => {
    expect(unpackFiles(structuredClone(packFiles([])))).toEqual([]);
  });
});

const OUTCOMES: FileOutcome[] = [
  // A copied file, and one whose path held another file than planned; a name that is not UTF-8 (escaped).
  {
    ok: true,
    rel: 'memory/facts/a.json',
    size: 512,
    mode: 0o644,
    mtimeNs: '1764500000123456789',
    hash: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    uid: 1000,
    gid: 100,
    ino: '18446744073709551615',
    ctimeNs: '1764500000987654321',
    replaced: false,
  },
  {
    ok: true,
    rel: 'x/conv\udce9.md',
    size: 2 ** 40,
    mode: 0o4755,
    mtimeNs: '-17179869183999999999',
    hash: 'ab'.repeat(32),
    uid: 4_294_967_294,
    gid: 0,
    ino: '0',
    ctimeNs: '0',
    replaced: true,
  },
  // A failed file, with and without a cause.
  {
    ok: false,
    rel: 'b.json',
    problem: 'unreadable',
    message: 'cannot read: EIO',
    cause: { code: 'EIO', message: 'EIO: i/o error, read', syscall: 'read', path: undefined },
  },
  {
    ok: false,
    rel: 'c.json',
    problem: 'changed',
    message: 'was modified while it was read',
    cause: undefined,
  },
  // Link outcomes: linked after a hash, copied after a fallback, copied after a mismatch.
  { ...copied('d/linked.json'), link: { linked: true, hashed: true } },
  { ...copied('d/fallback.json'), link: { linked: false, hashed: false, fallback: 'EMLINK' } },
  { ...copied('d/mismatch.json'), link: { linked: false, hashed: true, mismatch: 'size-differs' } },
];

function copied(rel: string): Extract<FileOutcome, { ok: true }> {
  return {
    ok: true,
    rel,
    size: 1,
    mode: 0o600,
    mtimeNs: '1',
    hash: 'cd'.repeat(32),
    uid: 0,
    gid: 0,
    ino: '5',
    ctimeNs: '2',
    replaced: false,
  };
}

describe('packed outcomes', () => {
  it('unpack to exactly the outcomes that were packed, after a structured clone', () => {
    expect(unpackOutcomes(structuredClone(packOutcomes(OUTCOMES)))).toStrictEqual(OUTCOMES);
  });

  it('a result keeps its other fields (a pack task: its key, offsets and length)', () => {
    const result = { outcomes: OUTCOMES, bytes: 9, key: 'data/x.tar', offsets: [0, -1], length: 1536 };
    expect(receivedResult(structuredClone(postedResult(result)))).toStrictEqual(result);
  });

  it('an empty batch packs and unpacks', () => {
    expect(unpackOutcomes(structuredClone(packOutcomes([])))).toEqual([]);
  });
});

describe('the worker', () => {
  it('posts its outcomes packed, which unpack to what the task performed', () => {
    const root = mkdtempSync(join(tmpdir(), 'statesnap-protocol-'));
    try {
      mkdirSync(join(root, 'src'));
      writeFileSync(join(root, 'src', 'a.json'), '{"a":1}');
      const task: CopyTask = {
        kind: 'copy',
        files: [
          { rel: 'a.json', size: 7 },
          { rel: 'missing.json', size: 1 },
        ],
        from: {
          root: join(root, 'src'),
          confineTo: null,
          changedRetries: 0,
          expectSize: false,
          attributesFrom: 'source',
        },
        to: {
          root: join(root, 'dest'),
          confineTo: null,
          writeMode: 'create',
          owners: false,
          modeMask: 0o7777,
        },
      };
      mkdirSync(join(root, 'dest'));
      const stop = new Int32Array(new SharedArrayBuffer(4));
      const posted = structuredClone(runTask({ task: postedTask(task), stop }));
      expect(posted.outcomes.strings).toContain('a.json\0');
      const { outcomes } = receivedResult(posted);
      expect(outcomes).toMatchObject([
        { ok: true, rel: 'a.json', size: 7, hash: createHash('sha256').update('{"a":1}').digest('hex') },
        { ok: false, rel: 'missing.json', problem: 'vanished' },
      ]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
