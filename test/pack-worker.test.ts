// The worker's `pack` task, run by the real built worker: files become tar members in shared memory at the
// offsets it reports, with the copy path's checks (never through a link, confined to the source, a file that
// vanished, was swapped or grew is reported, not packed), and the change rule's plans (a `link` file is not
// read at all; a `hash-then-link` file is appended only when its hash differs).

import { createHash } from 'node:crypto';
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type FileOp,
  type LinkPlan,
  type PackResult,
  type PackTask,
  postedTask,
} from '../dist/src/core/protocol.js';
import { readTar } from '../dist/src/format/tar.js';
import { performTask } from '../dist/workers/file-worker.js';
import { cleanup, tempDir } from './helpers/tree.js';

afterEach(cleanup);

const sha256 = (data: Uint8Array | string) => createHash('sha256').update(data).digest('hex');
const NOT_UTF8 = `not${String.fromCharCode(0xdce9)}.json`;

function noStop(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
}

function pack(root: string, files: FileOp[], slotBytes = 1 << 20): { result: PackResult; bytes: Uint8Array } {
  const slot = new SharedArrayBuffer(slotBytes);
  const task: PackTask = {
    kind: 'pack',
    files,
    from: { root, confineTo: root, attributesFrom: 'source', changedRetries: 1, expectSize: false },
    key: 'data/0123456789abcdef0123456789abcdef.tar',
    slot,
  };
  const result = performTask({ task: postedTask(task), stop: noStop() }) as PackResult;
  return { result, bytes: new Uint8Array(slot, 0, result.length) };
}

function plan(action: LinkPlan['action'], content: string): LinkPlan {
  return {
    action,
    size: Buffer.byteLength(content),
    mode: 0o644,
    sha256: sha256(content),
    source: { mtimeNs: 1_000_000_000n, ctimeNs: 1_000_000_000n, ino: 1n, uid: 0, gid: 0 },
    stored: { object: 'data/ffffffffffffffffffffffffffffffff.tar', offset: 512 },
  };
}

describe('pack task', () => {
  it('appends each file at the offset it reports; the pack is a tar whose hashes are reported', () => {
    const root = tempDir();
    const long = `${'d'.repeat(120)}/${'f'.repeat(120)}.md`;
    mkdirSync(join(root, 'd'.repeat(120)));
    writeFileSync(join(root, 'a.json'), '{"a":1}', { mode: 0o640 });
    writeFileSync(join(root, 'empty'), '');
    writeFileSync(join(root, long), 'long name');
    writeFileSync(Buffer.from(`${root}/not\xe9.json`, 'latin1'), 'latin-1 name');
    const files = [
      { rel: 'a.json', size: 7 },
      { rel: 'empty', size: 0 },
      { rel: long, size: 9 },
      { rel: NOT_UTF8, size: 12 },
    ];
    const { result, bytes } = pack(root, files);
    expect(result.outcomes.map((outcome) => outcome.ok)).toEqual([true, true, true, true]);
    expect(result.md5).toBe(createHash('md5').update(bytes).digest('base64'));
    expect(result.sha256).toBe(sha256(bytes));
    const members = [...readTar(bytes)];
    expect(members.map((member) => member.dataOffset)).toEqual(result.offsets);
    expect(members.map((member) => Buffer.from(member.path).toString('latin1'))).toEqual([
      'a.json',
      'empty',
      long,
      'not\xe9.json',
    ]);
    expect(members[0]).toMatchObject({ mode: 0o640, size: 7 });
    result.outcomes.forEach((outcome, i) => {
      const member = members[i]!;
      const content = bytes.subarray(member.dataOffset, member.dataOffset + member.size);
      expect(outcome.ok && outcome.hash).toBe(sha256(content));
    });
  });

  it('reports vanished, swapped and escaped files and packs the rest', () => {
    const root = tempDir();
    const outside = tempDir();
    writeFileSync(join(outside, 'secret.json'), 'secret');
    writeFileSync(join(root, 'ok.json'), 'ok');
    symlinkSync(join(outside, 'secret.json'), join(root, 'link.json'));
    mkdirSync(join(root, 'sub'));
    writeFileSync(join(root, 'sub', 'x.json'), 'x');
    // A parent directory swapped for a symlink to elsewhere after the walk planned its file.
    renameSync(join(root, 'sub'), join(root, 'sub-moved'));
    mkdirSync(join(outside, 'sub'));
    writeFileSync(join(outside, 'sub', 'x.json'), 'x');
    symlinkSync(join(outside, 'sub'), join(root, 'sub'));
    const { result, bytes } = pack(root, [
      { rel: 'gone.json', size: 3 },
      { rel: 'link.json', size: 6 },
      { rel: 'sub/x.json', size: 1 },
      { rel: 'ok.json', size: 2 },
    ]);
    expect(result.outcomes).toMatchObject([
      { ok: false, problem: 'vanished' },
      { ok: false, problem: 'not-regular' },
      { ok: false, problem: 'escaped' },
      { ok: true, rel: 'ok.json' },
    ]);
    expect(result.offsets.slice(0, 3)).toEqual([-1, -1, -1]);
    expect([...readTar(bytes)].map((member) => Buffer.from(member.path).toString())).toEqual(['ok.json']);
  });

  it('reports a file that outgrew the room planned for it as changed, and packs nothing of it', () => {
    const root = tempDir();
    writeFileSync(join(root, 'big.json'), Buffer.alloc(8192, 0x61));
    const { result } = pack(root, [{ rel: 'big.json', size: 10 }], 4096);
    expect(result.outcomes).toMatchObject([{ ok: false, problem: 'changed' }]);
    expect(result.length).toBe(0);
  });

  it('does not read a file planned as unchanged; appends a hash-then-link file only when its hash differs', () => {
    const root = tempDir();
    writeFileSync(join(root, 'same.json'), 'same');
    writeFileSync(join(root, 'differs.json'), 'new content');
    const files: FileOp[] = [
      // Removed from disk: a `link` plan must not even open it.
      { rel: 'removed.json', size: 3, link: plan('link', 'old') },
      { rel: 'same.json', size: 4, link: plan('hash-then-link', 'same') },
      { rel: 'differs.json', size: 11, link: plan('hash-then-link', 'old content') },
    ];
    const { result, bytes } = pack(root, files);
    expect(result.outcomes).toMatchObject([
      { ok: true, hash: sha256('old'), link: { linked: true, hashed: false } },
      { ok: true, hash: sha256('same'), link: { linked: true, hashed: true } },
      { ok: true, hash: sha256('new content'), link: { linked: false, hashed: true } },
    ]);
    expect(result.offsets[0]).toBe(-1);
    expect(result.offsets[1]).toBe(-1);
    expect([...readTar(bytes)].map((member) => Buffer.from(member.path).toString())).toEqual([
      'differs.json',
    ]);
  });

  it('returns an empty pack when every file is planned unchanged', () => {
    const root = tempDir();
    rmSync(root, { recursive: true });
    const task: PackTask = {
      kind: 'pack',
      files: [{ rel: 'a.json', size: 3, link: plan('link', 'old') }],
      from: { root, confineTo: root, attributesFrom: 'source', changedRetries: 0, expectSize: false },
      key: 'data/0123456789abcdef0123456789abcdef.tar',
      slot: null,
    };
    const result = performTask({ task: postedTask(task), stop: noStop() }) as PackResult;
    expect(result).toMatchObject({
      length: 0,
      offsets: [-1],
      outcomes: [{ ok: true, link: { linked: true } }],
    });
  });
});
