// The canonical entry order (names by raw bytes, directory blocks in preorder) against an independent oracle
// (Buffer.compare, i.e. memcmp) and against what readdir returns on a real directory holding names that are
// not valid UTF-8, dot names and characters that sort differently as UTF-16; then the cursor, the merge-join
// and the reorder buffer built on it.

import { readdirSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import {
  compareDirectories,
  compareEntryPaths,
  compareNames,
  type JoinedEntry,
  mergeJoin,
  OrderViolation,
  type RelativePath,
  ReorderBuffer,
  SortedCursor,
  sortNames,
} from '../dist/src/core/index-order.js';
import { cleanup, tempDir } from './helpers/tree.js';

afterEach(cleanup);

function bytesOf(path: RelativePath): Buffer {
  return typeof path === 'string' ? Buffer.from(path, 'utf8') : Buffer.from(path);
}

const sign = (n: number) => Math.sign(n);

/** Names chosen to disagree between UTF-16 and byte order, or to sit next to '/' (0x2F) in byte order. */
const NAMES: RelativePath[] = [
  'a',
  'a-b', // '-' (0x2D) sorts before '/' (0x2F): a plain byte sort of paths would put a-b inside a/
  'a.b',
  'a!',
  'a0',
  '.hidden',
  '..double',
  'B',
  'b',
  'é',
  '\uFFFD', // EF BF BD: in UTF-16 (0xFFFD) it sorts after an emoji's surrogates, in bytes before
  '😀', // F0 9F 98 80 (UTF-16 D83D DE00)
  '\uE000', // EE 80 80: also above the surrogates in UTF-16, below the emoji in bytes
  'ｚ', // U+FF5A
  Buffer.from([0x63, 0x6f, 0x6e, 0x76, 0xe9]), // "conv\xe9": Latin-1, not valid UTF-8
  Buffer.from([0xff]),
  Buffer.from([0x61, 0x80]), // "a" + a lone continuation byte
  'conv',
  'convé',
];

describe('compareNames', () => {
  it('agrees with memcmp of the UTF-8 (or raw) bytes on every pair', () => {
    for (const a of NAMES) {
      for (const b of NAMES) {
        expect(
          sign(compareNames(a, b)),
          `${bytesOf(a).toString('hex')} vs ${bytesOf(b).toString('hex')}`,
        ).toBe(sign(Buffer.compare(bytesOf(a), bytesOf(b))));
      }
    }
  });

  it('puts U+FFFD before an emoji, which UTF-16 order does the other way round', () => {
    expect(compareNames('\uFFFD', '😀')).toBeLessThan(0);
    expect(['\uFFFD', '😀'].sort()).toEqual(['😀', '\uFFFD']); // JavaScript's own order: UTF-16 units
    expect(sortNames(['😀', '\uFFFD', '\uE000'])).toEqual(['\uE000', '\uFFFD', '😀']);
  });

  it('sortNames sorts strings and raw names together by bytes', () => {
    const shuffled = [...NAMES].reverse();
    const expected = [...NAMES].sort((a, b) => Buffer.compare(bytesOf(a), bytesOf(b)));
    expect(sortNames(shuffled).map(bytesOf)).toEqual(expected.map(bytesOf));
    const plain = ['b', 'a-b', '.x', 'a', 'B'];
    expect(sortNames(plain)).toEqual(['.x', 'B', 'a', 'a-b', 'b']);
  });

  it('is the order readdir returns on a real directory (so sorting what it gives is a linear pass)', () => {
    const dir = tempDir();
    for (const name of NAMES) writeFileSync(Buffer.concat([Buffer.from(`${dir}/`), bytesOf(name)]), '');
    const listed = readdirSync(dir, { encoding: 'buffer' });
    const expected = NAMES.map(bytesOf).sort(Buffer.compare);
    expect(listed).toEqual(expected);
    const copy = [...listed];
    expect(sortNames(copy)).toEqual(listed);
  });
});

describe('compareEntryPaths', () => {
  /** An independent oracle: walk a literal tree, each directory's entries by memcmp, then its subdirectories. */
  interface Node {
    [name: string]: Node | null;
  }
  function blockOrder(tree: Node): string[] {
    const out: string[] = [];
    const pending: Array<[string, Node]> = [['', tree]];
    while (pending.length > 0) {
      const [dir, node] = pending.shift()!;
      const names = Object.keys(node).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      const subdirs: Array<[string, Node]> = [];
      for (const name of names) {
        const path = dir === '' ? name : `${dir}/${name}`;
        out.push(path);
        const child = node[name];
        if (child) subdirs.push([path, child]);
      }
      pending.unshift(...subdirs);
    }
    return out;
  }

  const TREE: Node = {
    a: { x: null, 'y-z': { deep: null }, y: { deeper: { deepest: null } } },
    'a-b': null,
    'a.b': { inner: null },
    'a!': null,
    '.git': { HEAD: null },
    b: null,
    '😀': { e: null },
    '\uFFFD': { f: null },
    é: null,
  };

  it('sorts a shuffled listing into the order of a walk that lists a directory, then descends in name order', () => {
    const expected = blockOrder(TREE);
    const shuffled = [...expected].reverse();
    for (let i = 0; i < shuffled.length; i += 3) shuffled.push(shuffled.splice(i, 1)[0]!);
    expect(shuffled.sort(compareEntryPaths)).toEqual(expected);
    // Spot checks of what the order means: a directory's block comes after its parent's whole block, and
    // blocks follow their directories' preorder (segment by segment, so "a/y-z" before "a/y/deeper").
    expect(expected.indexOf('b')).toBeLessThan(expected.indexOf('a/x'));
    expect(expected.indexOf('a/y')).toBeLessThan(expected.indexOf('a/y/deeper'));
    expect(expected.indexOf('a/y/deeper')).toBeLessThan(expected.indexOf('a/y-z/deep'));
  });

  it('puts a directory before its block and compares directories segment by segment', () => {
    expect(compareEntryPaths('a', 'a/x')).toBeLessThan(0);
    expect(compareDirectories('a/y', 'a/y-z')).toBeLessThan(0); // "y" < "y-z" although '/' > '-'
    expect(compareDirectories('', 'a')).toBeLessThan(0);
    expect(compareEntryPaths('zzz', 'a/a')).toBeLessThan(0); // the root's block first
  });

  it('orders raw-byte paths among string paths by their bytes', () => {
    const latin1 = Buffer.from('conv\xe9/fact.json', 'latin1');
    expect(compareEntryPaths('conv/fact.json', latin1)).toBeLessThan(0);
    // é is C3 A9 in UTF-8 and E9 in Latin-1: the valid name's directory comes first.
    expect(compareEntryPaths('convé/fact.json', latin1)).toBeLessThan(0);
    expect(compareEntryPaths(latin1, Buffer.from(latin1))).toBe(0);
  });
});

function batchesOf<T>(items: readonly T[], size: number): AsyncIterable<readonly T[]> {
  return (async function* () {
    for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
  })();
}

interface Entry {
  path: RelativePath;
  n: number;
}
const entries = (...paths: RelativePath[]): Entry[] => paths.map((path, n) => ({ path, n }));

describe('SortedCursor', () => {
  it('finds sought paths, reports the ones never sought, and answers synchronously inside a batch', async () => {
    const previous = entries('a', 'a-b', 'c', 'a/gone', 'a/kept', 'c/x');
    expect([...previous].sort((x, y) => compareEntryPaths(x.path, y.path))).toEqual(previous);
    const unmatched: RelativePath[] = [];
    const cursor = new SortedCursor(batchesOf(previous, 2), (entry) => unmatched.push(entry.path));
    const found: Array<number | undefined> = [];
    let synchronous = 0;
    for (const path of ['a', 'a-b', 'b-new', 'a/kept', 'a/new', 'c/x']) {
      const answer = cursor.seek(path);
      if (!(answer instanceof Promise)) synchronous++;
      found.push((await answer)?.n);
    }
    await cursor.finish();
    expect(found).toEqual([0, 1, undefined, 4, undefined, 5]);
    expect(unmatched).toEqual(['c', 'a/gone']);
    expect(synchronous).toBeGreaterThan(0);
  });

  it('refuses seeks that go backwards, and an input out of canonical order', async () => {
    const cursor = new SortedCursor(batchesOf(entries('a', 'b'), 10), () => {});
    await cursor.seek('b');
    expect(() => cursor.seek('a')).toThrow(OrderViolation);
    const bad = new SortedCursor(batchesOf(entries('a/x', 'b'), 10), () => {});
    await expect(Promise.resolve(bad.seek('z'))).rejects.toMatchObject({
      name: 'OrderViolation',
      where: 'source',
    });
    const duplicate = new SortedCursor(batchesOf(entries('a', 'a'), 1), () => {});
    await expect(duplicate.finish()).rejects.toBeInstanceOf(OrderViolation);
  });

  it('finishes by passing every entry past the last seek to onUnmatched', async () => {
    const unmatched: RelativePath[] = [];
    const cursor = new SortedCursor(batchesOf(entries('a', 'b', 'c', 'd'), 3), (entry) =>
      unmatched.push(entry.path),
    );
    await cursor.seek('b');
    await cursor.finish();
    expect(unmatched).toEqual(['a', 'c', 'd']);
  });
});

describe('mergeJoin', () => {
  it('yields the union in canonical order with both sides', async () => {
    const left = entries('a', 'b', 'b/x', 'b/y');
    const right = entries('a', 'a-new', 'b/y', 'b/z');
    const rows: Array<JoinedEntry<Entry, Entry>> = [];
    for await (const row of mergeJoin(batchesOf(left, 1), batchesOf(right, 3))) rows.push(row);
    expect(rows.map((row) => [row.path, row.left?.n, row.right?.n])).toEqual([
      ['a', 0, 0],
      ['a-new', undefined, 1],
      ['b', 1, undefined],
      ['b/x', 2, undefined],
      ['b/y', 3, 2],
      ['b/z', undefined, 3],
    ]);
  });

  it('handles empty inputs and refuses an unordered one', async () => {
    const rows: unknown[] = [];
    for await (const row of mergeJoin(batchesOf<Entry>([], 1), batchesOf(entries('a'), 1))) rows.push(row);
    expect(rows).toHaveLength(1);
    const consume = async () => {
      for await (const row of mergeJoin(batchesOf(entries('b', 'a'), 5), batchesOf<Entry>([], 1)))
        rows.push(row);
    };
    await expect(consume()).rejects.toMatchObject({ name: 'OrderViolation', where: 'source' });
  });
});

describe('ReorderBuffer', () => {
  it('writes values in announcement order whatever order they are filled in', () => {
    const written: number[] = [];
    const buffer = new ReorderBuffer<number>((value) => written.push(value));
    const count = 20_000;
    const tickets: Array<[number, number]> = [];
    for (let i = 0; i < count; i++) {
      if (i % 7 === 0) buffer.push(i);
      else tickets.push([buffer.reserve(), i]);
    }
    // Fill in a scrambled but deterministic order.
    for (let i = tickets.length - 1; i > 0; i--) {
      const j = (i * 7919) % (i + 1);
      [tickets[i], tickets[j]] = [tickets[j]!, tickets[i]!];
    }
    let maxWaiting = 0;
    for (const [ticket, value] of tickets) {
      buffer.fill(ticket, value);
      maxWaiting = Math.max(maxWaiting, buffer.waiting);
    }
    buffer.close();
    expect(written).toEqual(Array.from({ length: count }, (_, i) => i));
    expect(buffer.waiting).toBe(0);
    expect(maxWaiting).toBeGreaterThan(0);
  });

  it('holds everything behind an unfilled place, and refuses double fills and unfilled closes', () => {
    const written: string[] = [];
    const buffer = new ReorderBuffer<string>((value) => written.push(value));
    const slow = buffer.reserve();
    buffer.push('dir');
    const fast = buffer.reserve();
    buffer.fill(fast, 'fast');
    expect(written).toEqual([]);
    expect(buffer.waiting).toBe(3);
    expect(() => buffer.close()).toThrow(/Assertion failed/);
    buffer.fill(slow, 'slow');
    expect(written).toEqual(['slow', 'dir', 'fast']);
    expect(() => buffer.fill(fast, 'again')).toThrow(/Assertion failed/);
    expect(() => buffer.fill(99, 'never reserved')).toThrow(/Assertion failed/);
  });
});
