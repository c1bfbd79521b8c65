// Reading an index a slice at a time (what `--link-dest` joins with the walk): the same entries, in the same
// order, as reading it line by line, and the same refusal of the first bad line.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readIndex, readIndexBatches } from '../dist/src/format/index-reader.js';
import { backup } from '../dist/src/index.js';
import { readManifestJson } from './helpers/backup.js';
import { cleanup, tempDir } from './helpers/tree.js';

afterEach(cleanup);

const NO_FOLDING = { refuseCaseCollisions: false };

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

async function refusal(iterable: AsyncIterable<unknown>): Promise<Error & { code?: string }> {
  try {
    await collect(iterable);
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('the index was accepted');
}

describe('readIndexBatches', () => {
  it('gives every entry readIndex gives, in order, over several slices of a large index', async () => {
    const root = tempDir();
    const store = join(root, 'store');
    // ~1,500 lines of ~270 bytes: more than one 256 KiB slice of the index.
    for (let d = 0; d < 3; d++) {
      mkdirSync(join(store, `dir-${d}`), { recursive: true });
      for (let f = 0; f < 500; f++) writeFileSync(join(store, `dir-${d}`, `file-${f}.json`), `{"f":${f}}`);
    }
    const dest = join(root, 'backup');
    await backup({ source: store, dest, sync: false });
    const extras = readManifestJson(dest).statesnap as { index: { entries: number; sha256: string } };
    const expected = { format: 2 as const, ...extras.index, order: 'canonical' as const };
    const lines = await collect(readIndex(dest, expected, NO_FOLDING));
    const batches = await collect(readIndexBatches(dest, expected, NO_FOLDING));
    expect(batches.length).toBeGreaterThan(1);
    expect(batches.flat()).toEqual(lines);
    expect(lines).toHaveLength(extras.index.entries);
  });

  it('refuses the first bad line, not a later line too long in the same slice', async () => {
    const dest = tempDir();
    mkdirSync(join(dest, '.statesnap'));
    const fine = '{"path":"a","type":"symlink","skipped":true}';
    const tooLong = `{"path":"${'x'.repeat(2 << 20)}"}`;
    writeFileSync(join(dest, '.statesnap', 'index.jsonl'), `${fine}\n{not json\n${tooLong}\n`);
    const expected = { format: 2 as const, entries: 3, sha256: '0'.repeat(64) };
    for (const read of [readIndex, readIndexBatches]) {
      const error = await refusal(read(dest, expected, NO_FOLDING));
      expect(error.code).toBe('ERR_INDEX_INVALID');
      expect(error.message).toMatch(/line 2 is not valid JSON/);
    }
  });

  it('refuses a line too long after the good lines before it', async () => {
    const dest = tempDir();
    mkdirSync(join(dest, '.statesnap'));
    const fine = '{"path":"a","type":"symlink","skipped":true}';
    writeFileSync(join(dest, '.statesnap', 'index.jsonl'), `${fine}\n${'x'.repeat(2 << 20)}\n`);
    const expected = { format: 2 as const, entries: 2, sha256: '0'.repeat(64) };
    const seen: unknown[] = [];
    const error = await refusal(
      (async function* () {
        for await (const batch of readIndexBatches(dest, expected, NO_FOLDING)) {
          seen.push(...batch);
          yield batch;
        }
      })(),
    );
    expect(error.code).toBe('ERR_INDEX_INVALID');
    expect(error.message).toMatch(/line 2 is longer than/);
    expect(seen).toEqual([{ path: 'a', type: 'symlink', skipped: true }]);
  });
});
