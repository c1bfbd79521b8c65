// The index of a snapshot in object storage, without a server: what the writer streams out is what the
// reader accepts, line for line, and the reader refuses every line or object a hostile writer could craft
// (unsafe paths, objects outside the manifest's table, ranges past an object's end, a changed byte count or
// digest, a body that does not inflate).

import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  newDataKey,
  newIndexKey,
  parseS3Manifest,
  readS3Index,
  type S3FileEntry,
  type S3IndexEntry,
  type S3IndexExpectation,
  S3IndexWriter,
} from '../dist/src/format/s3-index.js';

const DIR = { type: 'dir', mode: 0o755, mtime_ns: '1764470831123456789', uid: 0, gid: 0 } as const;

function fileLine(path: string, object: string, offset: number, size: number): S3FileEntry {
  return {
    path,
    type: 'file',
    size,
    mode: 0o644,
    mtime_ns: '1764470831123456789',
    ctime_ns: '1764470831223456789',
    ino: '1234567',
    uid: 1000,
    gid: 1000,
    sha256: 'a'.repeat(64),
    object,
    offset,
  };
}

async function written(entries: S3IndexEntry[], objects: [string, number][], partBytes = 1 << 20) {
  const writer = new S3IndexWriter(partBytes);
  for (const [key, size] of objects) writer.declareObject(key, size);
  const parts: Buffer[] = [];
  const collecting = (async () => {
    for await (const part of writer.parts()) parts.push(part);
  })();
  for (const entry of entries) writer.add(entry);
  const summary = await writer.finish();
  await collecting;
  return { summary, parts, body: Buffer.concat(parts) };
}

async function readAll(body: Buffer, expected: S3IndexExpectation): Promise<S3IndexEntry[]> {
  const out: S3IndexEntry[] = [];
  for await (const entry of readS3Index([body], expected, 's3://b/p/x', { refuseCaseCollisions: false })) {
    out.push(entry);
  }
  return out;
}

async function refusal(
  body: Buffer,
  expected: S3IndexExpectation,
): Promise<{ code?: string; message: string }> {
  try {
    await readAll(body, expected);
  } catch (error) {
    return error as { code?: string; message: string };
  }
  throw new Error('the index was accepted');
}

function expectationOf(
  body: Buffer,
  entries: number,
  objects: { key: string; size: number; used: number }[],
) {
  return {
    index: {
      key: newIndexKey('2026-11-30T02-00-02Z'),
      entries,
      sha256: createHash('sha256').update(body).digest('hex'),
      bytes: body.length,
    },
    objects,
  };
}

describe('S3 index', () => {
  const pack = newDataKey();
  const other = newDataKey();
  const notUtf8 = `d/${String.fromCharCode(0xdce9)}x`;
  const entries: S3IndexEntry[] = [
    { path: 'd', ...DIR },
    fileLine('d/a.json', pack, 512, 10),
    { ...fileLine('d/b.json', other, 1536, 3), reused: true },
    { path: 'd/link', type: 'symlink', skipped: true },
    fileLine(notUtf8, pack, 2048, 0),
  ];

  it('reads back what it wrote, with the object table of the lines', async () => {
    const { summary, body } = await written(entries, [
      [pack, 4096],
      [other, 8192],
    ]);
    expect(summary.index.entries).toBe(5);
    expect(summary.index.bytes).toBe(body.length);
    expect(summary.objects).toEqual([
      { key: pack, size: 4096, used: 10 },
      { key: other, size: 8192, used: 3 },
    ]);
    const back = await readAll(body, {
      index: { key: newIndexKey('x'), ...summary.index },
      objects: summary.objects,
    });
    expect(back).toEqual(entries);
  });

  it('hands the compressed bytes out in parts of the size asked for', async () => {
    const many: S3IndexEntry[] = [{ path: 'd', ...DIR }];
    for (let i = 0; i < 20_000; i++) {
      many.push(
        fileLine(
          `d/${String(i).padStart(6, '0')}-${createHash('md5').update(String(i)).digest('hex')}`,
          pack,
          512,
          1,
        ),
      );
    }
    const { summary, parts } = await written(many, [[pack, 1 << 30]], 64 * 1024);
    expect(parts.length).toBeGreaterThan(2);
    for (const part of parts.slice(0, -1)) expect(part.length).toBe(64 * 1024);
    expect(parts.reduce((n, p) => n + p.length, 0)).toBe(summary.index.bytes);
  });

  it('refuses a line that points into an object the writer was not told of', async () => {
    const writer = new S3IndexWriter(1 << 20);
    expect(() => writer.add(fileLine('a', pack, 0, 1))).toThrow(/Assertion failed/);
    writer.abandon();
  });

  const hostile: [string, object, RegExp][] = [
    ['a .. segment', { ...fileLine('d/../../etc/passwd', pack, 512, 1) }, /'\.\.' segment/],
    ['an absolute path', { ...fileLine('/etc/passwd', pack, 512, 1) }, /absolute/],
    ['a reserved name', { ...fileLine('manifest.json', pack, 512, 1) }, /own files/],
    [
      'an object not in the table',
      { ...fileLine('d/a', other, 512, 1) },
      /not in the manifest's object table/,
    ],
    ['a range past the object', { ...fileLine('d/a', pack, 4000, 200) }, /past the end/],
    [
      'a malformed object key',
      { ...fileLine('d/a', pack, 512, 1), object: 'data/../x.tar' },
      /data\/<32 hex/,
    ],
    ['linked instead of reused', { ...fileLine('d/a', pack, 512, 1), linked: true }, /linked/],
  ];
  for (const [name, line, pattern] of hostile) {
    it(`refuses ${name}`, async () => {
      const lines = [{ path: 'd', ...DIR }, line];
      const body = gzipSync(`${lines.map((l) => JSON.stringify(l)).join('\n')}\n`);
      const error = await refusal(body, expectationOf(body, 2, [{ key: pack, size: 4096, used: 1 }]));
      expect(error.code).toBe('ERR_INDEX_INVALID');
      expect(error.message).toMatch(pattern);
    });
  }

  it('refuses a changed digest, byte count, line count, or bytes that do not inflate', async () => {
    const table = [{ key: pack, size: 4096, used: 10 }];
    const { body } = await written(
      [{ path: 'd', ...DIR }, fileLine('d/a.json', pack, 512, 10)],
      [[pack, 4096]],
    );
    const good = expectationOf(body, 2, table);
    expect(await readAll(body, good)).toHaveLength(2);
    const cases: [Buffer, S3IndexExpectation, RegExp][] = [
      [body, { ...good, index: { ...good.index, sha256: 'b'.repeat(64) } }, /was modified/],
      [body, { ...good, index: { ...good.index, bytes: body.length - 1 } }, /more than the/],
      [body, { ...good, index: { ...good.index, bytes: body.length + 1 } }, /has \d+ bytes/],
      [body, { ...good, index: { ...good.index, entries: 3 } }, /has 2 entries/],
      [body, { ...good, index: { ...good.index, entries: 1 } }, /more than the 1 entries/],
      [
        body.subarray(0, body.length - 9),
        expectationOf(body.subarray(0, body.length - 9), 2, table),
        /cannot be read/,
      ],
      [Buffer.from('not gzip'), expectationOf(Buffer.from('not gzip'), 0, table), /cannot be read/],
    ];
    for (const [bytes, expected, pattern] of cases) {
      const error = await refusal(bytes, expected);
      expect(error.code).toBe('ERR_INDEX_INVALID');
      expect(error.message).toMatch(pattern);
    }
  });

  it('reads a manifest only for the snapshot it names', () => {
    const id = '2026-11-30T02-00-02Z';
    const manifest = {
      version: 1,
      created_at: '2026-11-30T02:00:02Z',
      oxios_version: 'statesnap',
      sections: [],
      statesnap: {
        format: 2,
        tool: 'statesnap',
        tool_version: '0.1.0',
        hash_algorithm: 'sha256',
        totals: { files: 0, dirs: 0, bytes: 0 },
        skipped: {
          symlink: 0,
          fifo: 0,
          socket: 0,
          char_device: 0,
          block_device: 0,
          excluded: 0,
          reserved: 0,
        },
        warnings: { count: 0, by_problem: {}, list: [] },
        categories: [],
        root: { mode: 0o755, mtime_ns: '0', uid: 0, gid: 0 },
        started_at_ns: '0',
        index_order: 'canonical',
        snapshot: { id },
        base: null,
        s3: {
          pack_format: 'tar',
          index: { key: newIndexKey(id), entries: 0, sha256: 'a'.repeat(64), bytes: 20 },
          objects: [],
          bytes_uploaded: 0,
        },
      },
    };
    const bytes = Buffer.from(JSON.stringify(manifest));
    expect(parseS3Manifest(bytes, 'm', id).statesnap.snapshot.id).toBe(id);
    expect(() => parseS3Manifest(bytes, 'm', '2026-11-30T02-00-03Z')).toThrow(
      expect.objectContaining({ code: 'ERR_MANIFEST_INVALID' }),
    );
    const elsewhere = structuredClone(manifest);
    elsewhere.statesnap.s3.index.key = newIndexKey('other');
    expect(() => parseS3Manifest(Buffer.from(JSON.stringify(elsewhere)), 'm', id)).toThrow(
      /outside its snapshot/,
    );
    const twice = structuredClone(manifest);
    const key = newDataKey();
    (twice.statesnap.s3.objects as object[]).push({ key, size: 1, used: 1 }, { key, size: 1, used: 1 });
    expect(() => parseS3Manifest(Buffer.from(JSON.stringify(twice)), 'm', id)).toThrow(/listed twice/);
  });
});
