// The packed form batches take to the workers: every field of every kind of file op survives the trip,
// through a real structured clone, unchanged.

import { describe, expect, it } from 'vitest';
import { type FileOp, packFiles, unpackFiles } from '../dist/src/core/protocol.js';

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
