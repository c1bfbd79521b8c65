// The file worker's `unpack` task (the real built worker, run in this thread): the files of a downloaded range
// written with their recorded mode and mtime, or only hashed; a hash that differs leaves no name behind; a
// fresh tree is never written through an existing name, and a merge never outside its confined target.

import { existsSync, lstatSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { UnpackTask, WriteSpec } from '../dist/src/core/protocol.js';
import { performTask } from '../dist/workers/file-worker.js';
import { cleanup, sha256, tempDir } from './helpers/tree.js';

afterEach(cleanup);

const MTIME_NS = '1700000000123456789';

function noStop(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
}

/** A range holding `contents` one after another behind 512 bytes of something else, as in a pack. */
function rangeOf(contents: Array<[string, Buffer]>, to: WriteSpec | null): UnpackTask {
  const parts: Buffer[] = [Buffer.alloc(512, 0x55)];
  const files: UnpackTask['files'] = [];
  let at = 512;
  for (const [rel, content] of contents) {
    files.push({ rel, size: content.length, at, mode: 0o640, mtimeNs: MTIME_NS, hash: sha256(content) });
    parts.push(content);
    at += content.length;
  }
  const bytes = Buffer.concat(parts);
  const data = new ArrayBuffer(bytes.length);
  new Uint8Array(data).set(bytes);
  return { kind: 'unpack', data, origin: 'object s3://b/data/x.tar (bytes 0-99)', files, to };
}

function fresh(root: string): WriteSpec {
  return { root, confineTo: null, writeMode: 'create', owners: false, modeMask: 0o7777 };
}

describe('unpack', () => {
  it('writes each file with its recorded mode and mtime, names that are not UTF-8 included', () => {
    const root = tempDir();
    const latin = 'conv\udce9.md';
    const task = rangeOf(
      [
        ['a.json', Buffer.from('{"a":1}')],
        ['empty.md', Buffer.alloc(0)],
        [latin, Buffer.from('latin')],
      ],
      fresh(root),
    );
    const result = performTask({ task, stop: noStop() });
    expect(result.outcomes.map((o) => o.ok)).toEqual([true, true, true]);
    expect(result.bytes).toBe(12);
    expect(readFileSync(join(root, 'a.json'), 'utf8')).toBe('{"a":1}');
    const stats = lstatSync(join(root, 'a.json'), { bigint: true });
    expect(Number(stats.mode & 0o7777n)).toBe(0o640);
    expect(stats.mtimeNs / 1000n).toBe(BigInt(MTIME_NS) / 1000n);
    expect(readFileSync(join(root, 'empty.md')).length).toBe(0);
    expect(readFileSync(Buffer.from(`${root}/conv\xe9.md`, 'latin1'), 'utf8')).toBe('latin');
  });

  it('refuses a file whose hash differs, naming the object, and leaves no name behind', () => {
    const root = tempDir();
    const task = rangeOf(
      [
        ['ok.json', Buffer.from('fine')],
        ['bad.json', Buffer.from('tampered')],
      ],
      fresh(root),
    );
    task.files[1]!.hash = sha256('original');
    const result = performTask({ task, stop: noStop() });
    expect(result.outcomes[0]).toMatchObject({ ok: true });
    expect(result.outcomes[1]).toMatchObject({ ok: false, rel: 'bad.json', problem: 'corrupt' });
    expect(result.outcomes[1]!.ok === false && result.outcomes[1]!.message).toContain('s3://b/data/x.tar');
    expect(readdirSync(root)).toEqual(['ok.json']);
  });

  it('refuses a file whose range lies outside the downloaded bytes', () => {
    const root = tempDir();
    const task = rangeOf([['a.json', Buffer.from('abc')]], fresh(root));
    task.files[0]!.at = task.data.byteLength - 1;
    expect(performTask({ task, stop: noStop() }).outcomes[0]).toMatchObject({
      ok: false,
      problem: 'corrupt',
    });
    expect(readdirSync(root)).toEqual([]);
  });

  it('with no destination only hashes', () => {
    const task = rangeOf(
      [
        ['a.json', Buffer.from('abc')],
        ['b.json', Buffer.from('def')],
      ],
      null,
    );
    task.files[1]!.hash = sha256('xyz');
    const result = performTask({ task, stop: noStop() });
    expect(result.outcomes).toMatchObject([
      { ok: true, rel: 'a.json', hash: sha256('abc') },
      { ok: false, rel: 'b.json', problem: 'corrupt' },
    ]);
  });

  it('never writes through a name already in a fresh tree (O_EXCL)', () => {
    const root = tempDir();
    const outside = join(tempDir(), 'outside.json');
    writeFileSync(outside, 'outside');
    symlinkSync(outside, join(root, 'a.json'));
    const result = performTask({
      task: rangeOf([['a.json', Buffer.from('new')]], fresh(root)),
      stop: noStop(),
    });
    expect(result.outcomes[0]).toMatchObject({ ok: false, problem: 'dest-failed' });
    expect(readFileSync(outside, 'utf8')).toBe('outside');
  });

  it('in a merge, replaces a file by rename and never writes outside the confined target', () => {
    const target = tempDir();
    const elsewhere = tempDir();
    writeFileSync(join(target, 'a.json'), 'old');
    symlinkSync(elsewhere, join(target, 'sub'));
    const to: WriteSpec = {
      root: target,
      confineTo: target,
      writeMode: 'replace',
      owners: false,
      modeMask: 0o7777,
    };
    const task = rangeOf(
      [
        ['a.json', Buffer.from('new')],
        ['sub/b.json', Buffer.from('escaped?')],
      ],
      to,
    );
    const result = performTask({ task, stop: noStop() });
    expect(result.outcomes[0]).toMatchObject({ ok: true });
    expect(readFileSync(join(target, 'a.json'), 'utf8')).toBe('new');
    expect(result.outcomes[1]).toMatchObject({ ok: false, problem: 'dest-failed' });
    expect(existsSync(join(elsewhere, 'b.json'))).toBe(false);
    expect(readdirSync(target).sort()).toEqual(['a.json', 'sub']);
  });
});
