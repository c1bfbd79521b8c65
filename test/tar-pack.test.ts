// The pack format: what TarWriter writes is a tar that GNU tar (and Python's tarfile) extract to the same
// files, and what readTar reads back, with every name shape (long, non-ASCII, not UTF-8) and every size at a
// block boundary; damaged archives are refused.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  entrySize,
  paddedSize,
  readTar,
  TAR_BLOCK,
  TAR_END_BYTES,
  type TarFileHeader,
  TarFormatError,
  TarWriter,
} from '../dist/src/format/tar.js';
import { cleanup, tempDir } from './helpers/tree.js';

afterEach(cleanup);

const bytes = (text: string) => new Uint8Array(Buffer.from(text, 'utf8'));
const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

function content(size: number, seed: number): Buffer {
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i++) data[i] = (i * 31 + seed) & 0xff;
  return data;
}

function header(path: Uint8Array, size: number, overrides: Partial<TarFileHeader> = {}): TarFileHeader {
  return { path, size, mode: 0o640, mtimeSeconds: 1_764_470_831, uid: 1000, gid: 1000, ...overrides };
}

interface Member {
  path: Uint8Array;
  data: Buffer;
  header: TarFileHeader;
}

const longName = `${'d'.repeat(60)}/${'e'.repeat(120)}/${'f'.repeat(90)}.json`;
const longSegment = `facts/${'g'.repeat(140)}.json`;
const members: Member[] = [
  ['memory/facts/fact-000001.json', 0],
  ['memory/facts/fact-000002.json', 1],
  ['memory/facts/fact-000003.json', TAR_BLOCK - 1],
  ['memory/facts/fact-000004.json', TAR_BLOCK],
  ['memory/facts/fact-000005.json', TAR_BLOCK + 1],
  ['memory/knowledge/note.md', 100_000],
  [`${'p'.repeat(150)}/${'n'.repeat(99)}`, 10],
  [longName, 700],
  [longSegment, 3],
  ['memory/facts/fact-ünïcødé-日本語.json', 42],
].map(([name, size], index) => {
  const path = bytes(name as string);
  const data = content(size as number, index);
  return { path, data, header: header(path, data.length, { mode: index % 2 === 0 ? 0o640 : 0o755 }) };
});
// A name that is not valid UTF-8 (Latin-1 é), as Linux allows.
const latin1 = Buffer.concat([Buffer.from('memory/conv'), Buffer.from([0xe9]), Buffer.from('.md')]);
members.push({
  path: new Uint8Array(latin1),
  data: content(77, 99),
  header: header(new Uint8Array(latin1), 77),
});
// Bytes that are not UTF-8 in a name too long for ustar: a pax path record carries them.
const latin1Long = Buffer.concat([
  Buffer.from(`${'q'.repeat(120)}/x`),
  Buffer.from([0xff, 0xfe]),
  Buffer.from('y'.repeat(110)),
]);
members.push({
  path: new Uint8Array(latin1Long),
  data: content(5, 7),
  header: header(new Uint8Array(latin1Long), 5),
});

function buildPack(
  list: readonly Member[],
  initialCapacity?: number,
): { archive: Uint8Array; offsets: number[] } {
  const writer = new TarWriter(initialCapacity);
  const offsets = list.map((member) => writer.addFile(member.header, member.data));
  return { archive: writer.finish(), offsets };
}

describe('TarWriter and readTar', () => {
  it('round-trips every member: path bytes, size, mode, mtime, owner and content at the returned offset', () => {
    // A tiny initial buffer makes the writer grow several times while it writes.
    const { archive, offsets } = buildPack(members, 1024);
    expect(archive.length % TAR_BLOCK).toBe(0);
    expect(archive.length).toBe(members.reduce((total, m) => total + entrySize(m.header), 0) + TAR_END_BYTES);
    const read = [...readTar(archive)];
    expect(read).toHaveLength(members.length);
    read.forEach((entry, index) => {
      const member = members[index]!;
      expect(Buffer.from(entry.path).equals(Buffer.from(member.path))).toBe(true);
      expect(entry).toMatchObject({
        type: 'file',
        size: member.data.length,
        mode: member.header.mode,
        mtimeSeconds: member.header.mtimeSeconds,
        uid: 1000,
        gid: 1000,
        dataOffset: offsets[index],
      });
      const at = offsets[index]!;
      expect(sha256(archive.subarray(at, at + member.data.length))).toBe(sha256(member.data));
    });
  });

  it('puts a pax header only before members ustar cannot describe', () => {
    const plain = header(bytes('memory/facts/fact-000001.json'), 10);
    expect(entrySize(plain)).toBe(TAR_BLOCK + paddedSize(10));
    expect(entrySize(header(bytes(longName), 10))).toBe(3 * TAR_BLOCK + paddedSize(10));
    expect(entrySize(header(bytes('a'), 10, { uid: 0o7777777 + 1 }))).toBe(3 * TAR_BLOCK + TAR_BLOCK);
    const huge = header(bytes('big'), 0, { mtimeSeconds: -1, gid: 3_000_000_000 });
    const writer = new TarWriter();
    writer.addFile(huge, new Uint8Array(0));
    const [entry] = [...readTar(writer.finish())];
    expect(entry).toMatchObject({ mtimeSeconds: -1, gid: 3_000_000_000, size: 0 });
  });

  it('is extracted by GNU tar to the same files, modes and mtimes', () => {
    const dir = tempDir();
    const pack = join(dir, 'pack.tar');
    writeFileSync(pack, buildPack(members).archive);
    const out = join(dir, 'out');
    mkdirSync(out);
    const tar = spawnSync('tar', ['-x', '-f', pack, '-C', out, '--no-same-owner'], { encoding: 'utf8' });
    expect(tar.stderr).toBe('');
    expect(tar.status).toBe(0);
    for (const member of members) {
      const path = Buffer.concat([Buffer.from(`${out}/`), Buffer.from(member.path)]);
      expect(sha256(readFileSync(path))).toBe(sha256(member.data));
      const stat = statSync(path);
      expect(stat.mode & 0o7777).toBe(member.header.mode);
      expect(Math.floor(stat.mtimeMs / 1000)).toBe(member.header.mtimeSeconds);
    }
    const listing = spawnSync('tar', ['-t', '-f', pack], { encoding: 'buffer' });
    expect(listing.stdout.toString('latin1').trim().split('\n')).toHaveLength(members.length);
  });

  it("is read by Python's tarfile, an independent implementation, with the same names and contents", (ctx) => {
    if (spawnSync('python3', ['--version']).status !== 0) ctx.skip('python3 is not installed');
    const dir = tempDir();
    const pack = join(dir, 'pack.tar');
    writeFileSync(pack, buildPack(members).archive);
    const script = [
      'import sys, tarfile, hashlib, json',
      'with tarfile.open(sys.argv[1], encoding="utf-8", errors="surrogateescape") as t:',
      '    print(json.dumps([[m.name.encode("utf-8", "surrogateescape").hex(), m.size, m.mode,',
      '        hashlib.sha256(t.extractfile(m).read()).hexdigest()] for m in t.getmembers()]))',
    ].join('\n');
    const python = spawnSync('python3', ['-c', script, pack], { encoding: 'utf8' });
    expect(python.stderr).toBe('');
    expect(JSON.parse(python.stdout)).toEqual(
      members.map((m) => [Buffer.from(m.path).toString('hex'), m.data.length, m.header.mode, sha256(m.data)]),
    );
  });

  it('reads what GNU tar writes in pax format: names, sizes, sub-second mtimes, directories and content', () => {
    const dir = tempDir();
    const source = join(dir, 'src');
    mkdirSync(join(source, 'memory', longSegment.split('/')[0]!), { recursive: true });
    const files = new Map([
      ['memory/a.json', content(700, 1)],
      [`memory/${longSegment}`, content(3, 2)],
    ]);
    for (const [path, data] of files) writeFileSync(join(source, path), data);
    const pack = join(dir, 'gnu.tar');
    const tar = spawnSync('tar', ['--format=pax', '-c', '-f', pack, '-C', source, 'memory'], {
      encoding: 'utf8',
    });
    expect(tar.status).toBe(0);
    const archive = new Uint8Array(readFileSync(pack));
    const entries = [...readTar(archive)];
    const byPath = new Map(
      entries.map((entry) => [Buffer.from(entry.path).toString().replace(/\/$/, ''), entry]),
    );
    expect(byPath.get('memory')?.type).toBe('dir');
    for (const [path, data] of files) {
      const entry = byPath.get(path)!;
      expect(entry).toMatchObject({ type: 'file', size: data.length });
      expect(entry.mtimeSeconds).toBe(Math.floor(statSync(join(source, path)).mtimeMs / 1000));
      expect(sha256(archive.subarray(entry.dataOffset, entry.dataOffset + entry.size))).toBe(sha256(data));
    }
  });

  it('refuses a damaged header, a truncated archive and one without its end blocks', () => {
    const { archive } = buildPack(members.slice(0, 3));
    const flipped = Uint8Array.from(archive);
    flipped[10]! ^= 0x01;
    expect(() => [...readTar(flipped)]).toThrow(TarFormatError);
    expect(() => [...readTar(archive.subarray(0, TAR_BLOCK + 100))]).toThrow(/runs past the end|end blocks/);
    expect(() => [...readTar(archive.subarray(0, archive.length - TAR_END_BYTES))]).toThrow(/end blocks/);
    // The second member's header, damaged: the error says where.
    const second = Uint8Array.from(archive);
    const secondHeader = entrySize(members[0]!.header);
    second[secondHeader + 5]! ^= 0x01;
    expect(() => [...readTar(second)]).toThrow(
      expect.objectContaining({ name: 'TarFormatError', offset: secondHeader }),
    );
  });

  it('refuses content whose length differs from its header, and files after finish()', () => {
    const writer = new TarWriter();
    expect(() => writer.addFile(header(bytes('a'), 3), new Uint8Array(2))).toThrow(/Assertion failed/);
    writer.finish();
    expect(() => writer.addFile(header(bytes('a'), 0), new Uint8Array(0))).toThrow(/Assertion failed/);
  });
});
