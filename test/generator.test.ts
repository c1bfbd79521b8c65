// Store generator: byte-identical trees per seed, and each profile's counts, size ranges, temp files,
// symlink kinds and odd names at small scale.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { type GeneratedStore, generateStore, storeBounds } from '../dist/src/demo/generator.js';
import {
  cleanup,
  type EntryPrint,
  entryPrint,
  fingerprintTree,
  type TreePrint,
  tempDir,
} from './helpers/tree.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Where a store is generated: a path inside a new temporary directory, not yet there. */
function tempRoot(): string {
  return path.join(tempDir('statesnap-gen-'), 'store');
}

afterEach(cleanup);

/** Names, kinds, modes, mtimes, sizes, contents and link targets of the whole store, its root included. */
function storePrint(root: string): { root: EntryPrint; entries: TreePrint } {
  return { root: entryPrint(root), entries: fingerprintTree(root) };
}

interface FileInfo {
  rel: string;
  size: number;
}

/** Regular files directly in `dir` (or anywhere below it with `deep`) whose names end in `ext`. */
function filesIn(print: TreePrint, dir: string, ext: string, deep = false): FileInfo[] {
  return Object.entries(print)
    .filter(([rel, entry]) => {
      if (entry.kind !== 'file' || !rel.startsWith(`${dir}/`) || !rel.endsWith(ext)) return false;
      return deep || !rel.slice(dir.length + 1).includes('/');
    })
    .map(([rel, entry]) => ({ rel, size: entry.size! }));
}

function expectCategory(
  print: TreePrint,
  dir: string,
  ext: string,
  count: number,
  min: number,
  max: number,
): void {
  const files = filesIn(print, dir, ext, dir === 'memory/knowledge');
  expect(files, dir).toHaveLength(count);
  for (const { rel, size } of files) {
    expect(size, rel).toBeGreaterThanOrEqual(min);
    expect(size, rel).toBeLessThanOrEqual(max);
  }
}

type LinkKind = 'file' | 'dir' | 'outside' | 'dangling';

/** What each symlink of the store points to (followed here, on purpose, to tell the kinds apart). */
function symlinkKinds(root: string, print: TreePrint): LinkKind[] {
  return Object.entries(print)
    .filter(([, entry]) => entry.kind === 'symlink')
    .map(([rel, entry]) => {
      const abs = path.join(root, rel);
      const target = path.resolve(path.dirname(abs), entry.target!);
      if (path.relative(root, target).startsWith('..')) return 'outside';
      try {
        return fs.statSync(abs).isDirectory() ? 'dir' : 'file';
      } catch (error) {
        expect(['ENOENT', 'ELOOP']).toContain((error as NodeJS.ErrnoException).code);
        return 'dangling';
      }
    });
}

function tempFiles(print: TreePrint): string[] {
  return Object.keys(print).filter((rel) => rel.endsWith('.tmp'));
}

function expectTotals(store: GeneratedStore, root: string, print: TreePrint): void {
  const entries = Object.values(print);
  const files = entries.filter((entry) => entry.kind === 'file');
  expect(store).toEqual({
    root: path.resolve(root),
    files: files.length,
    bytes: files.reduce((sum, entry) => sum + entry.size!, 0),
    dirs: entries.filter((entry) => entry.kind === 'dir').length,
    symlinks: entries.filter((entry) => entry.kind === 'symlink').length,
    tempFiles: tempFiles(print).length,
  });
}

/** Name prefix + PID + UUID v4, as Oxios names the file it renames over `<name>`. */
const TEMP_NAME =
  /\/[^/]+\.(json|md)\.\d+\.[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.tmp$/;

describe('generateStore', () => {
  it('writes a byte-identical tree (names, contents, sizes, mtimes) for the same seed', async () => {
    const [first, second, other] = [tempRoot(), tempRoot(), tempRoot()];
    await generateStore(first, { profile: 'oxios', scale: 0.02, seed: 7 });
    await generateStore(second, { profile: 'oxios', scale: 0.02, seed: 7 });
    await generateStore(other, { profile: 'oxios', scale: 0.02, seed: 8 });
    const print = storePrint(first);
    expect(storePrint(second)).toEqual(print);
    expect(storePrint(other)).not.toEqual(print);
  });

  it('oxios: scaled category counts and size ranges, 10 scaled-down indexes, 20 temp files, every symlink kind', async () => {
    const root = tempRoot();
    const store = await generateStore(root, { profile: 'oxios', scale: 0.02 });
    const print = fingerprintTree(root);
    expectCategory(print, 'seeds', '.json', 40, 1 * KiB, 16 * KiB);
    expectCategory(print, 'evals', '.json', 20, 2 * KiB, 32 * KiB);
    expectCategory(print, 'memory/conversations', '.md', 100, 4 * KiB, 128 * KiB);
    expectCategory(print, 'memory/sessions', '.json', 100, 1 * KiB, 32 * KiB);
    expectCategory(print, 'memory/facts', '.json', 1_200, 128, 2 * KiB);
    expectCategory(print, 'memory/episodes', '.json', 400, 1 * KiB, 8 * KiB);
    expectCategory(print, 'memory/knowledge', '.md', 40, 8 * KiB, 256 * KiB);
    expectCategory(print, 'sessions', '.json', 100, 2 * KiB, 64 * KiB);
    expectCategory(print, 'agent_groups', '.json', 4, 1 * KiB, 4 * KiB);
    expectCategory(print, 'memory/knowledge', '.bin', 10, 256 * KiB, Math.round(64 * MiB * 0.02));
    const topics = fs
      .readdirSync(path.join(root, 'memory/knowledge'))
      .filter((name) => name.startsWith('topic-'));
    expect(topics).toHaveLength(20);

    const temps = tempFiles(print);
    expect(temps).toHaveLength(20);
    for (const temp of temps) expect(`/${temp}`).toMatch(TEMP_NAME);

    const kinds = symlinkKinds(root, print);
    expect(kinds).toHaveLength(10);
    expect(new Set(kinds)).toEqual(new Set(['file', 'dir', 'outside', 'dangling']));
    expect(fs.readlinkSync(path.join(root, 'seeds/host.json'))).toBe('/etc/hostname');
    expectTotals(store, root, print);
  });

  it('oxios: JSON files parse, Markdown has front matter, text does not collapse under gzip', async () => {
    const root = tempRoot();
    await generateStore(root, { profile: 'oxios', scale: 0.01 });
    const print = fingerprintTree(root);
    for (const { rel } of filesIn(print, 'memory/facts', '.json')) {
      const document = JSON.parse(fs.readFileSync(path.join(root, rel), 'utf8'));
      expect(document, rel).toMatchObject({ id: path.basename(rel, '.json'), text: expect.any(String) });
    }
    const [conversation] = filesIn(print, 'memory/conversations', '.md');
    const markdown = fs.readFileSync(path.join(root, conversation!.rel));
    expect(markdown.toString('utf8')).toMatch(/^---\nid: conversation-\d{6}\n/);
    expect(gzipSync(markdown).length).toBeGreaterThan(markdown.length / 5);
    const index = fs.readFileSync(path.join(root, 'memory/knowledge/index-00.bin'));
    expect(gzipSync(index).length).toBeGreaterThan(index.length * 0.99);
  });

  it('oxios-small: the Oxios categories with files of at most 40 KiB, and four equal index files', async () => {
    const root = tempRoot();
    const store = await generateStore(root, { profile: 'oxios-small', scale: 0.02 });
    const print = fingerprintTree(root);
    expectCategory(print, 'seeds', '.json', 12, 1 * KiB, 16 * KiB);
    expectCategory(print, 'memory/conversations', '.md', 16, 4 * KiB, 40 * KiB);
    expectCategory(print, 'memory/facts', '.json', 400, 64, 2 * KiB);
    expectCategory(print, 'memory/knowledge', '.md', 6, 8 * KiB, 40 * KiB);
    const indexSize = Math.round(24 * MiB * 0.02);
    expectCategory(print, 'memory/knowledge', '.bin', 4, indexSize, indexSize);
    expect(tempFiles(print)).toHaveLength(20);
    expectTotals(store, root, print);
  });

  it('storeBounds: never less than what the generator writes', async () => {
    for (const profile of ['oxios-small', 'demo', 'tiny-files'] as const) {
      const root = tempRoot();
      const scale = profile === 'tiny-files' ? 0.002 : 0.02;
      const store = await generateStore(root, { profile, scale });
      const bounds = storeBounds({ profile, scale });
      expect(bounds.entries, profile).toBeGreaterThanOrEqual(store.files + store.dirs + store.symlinks);
      expect(bounds.bytes, profile).toBeGreaterThanOrEqual(store.bytes);
    }
  });

  it('tiny-files: 64 B–1 KiB JSON files in shard folders of at most 1,000', async () => {
    const root = tempRoot();
    const store = await generateStore(root, { profile: 'tiny-files', scale: 0.001 });
    const print = fingerprintTree(root);
    expect(fs.readdirSync(path.join(root, 'memory/facts'))).toEqual(['shard-000']);
    expectCategory(print, 'memory/facts/shard-000', '.json', 1_000, 64, 1 * KiB);
    expect(store).toMatchObject({ files: 1_000, dirs: 3, symlinks: 0, tempFiles: 0 });
    expectTotals(store, root, print);
  });

  it('large-files: 16 binary files of 128 MiB × scale', async () => {
    const root = tempRoot();
    const store = await generateStore(root, { profile: 'large-files', scale: 0.01 });
    const print = fingerprintTree(root);
    const blobSize = Math.round(128 * MiB * 0.01);
    expectCategory(print, 'memory/knowledge', '.bin', 16, blobSize, blobSize);
    expect(store).toMatchObject({ files: 16, symlinks: 0, tempFiles: 0 });
    expectTotals(store, root, print);
  });

  it('demo: ~3,000 files, 3 temp files, 4 symlink kinds, an empty dir and odd names', async () => {
    const root = tempRoot();
    const store = await generateStore(root, { profile: 'demo' });
    const print = fingerprintTree(root);
    expect(store.files).toBeGreaterThan(2_500);
    expect(store.files).toBeLessThan(3_500);
    expect(tempFiles(print)).toHaveLength(3);
    expect(symlinkKinds(root, print).sort()).toEqual(['dangling', 'dir', 'file', 'outside']);
    expect(fs.readdirSync(path.join(root, 'memory/inbox'))).toEqual([]);
    expect(fs.lstatSync(path.join(root, 'seeds/seed with space.json')).isFile()).toBe(true);
    const unicodeName = 'fact-ünïcødé-日本語.json'.normalize('NFC');
    expect(fs.readdirSync(path.join(root, 'memory/facts'))).toContain(unicodeName);
    expect(JSON.parse(fs.readFileSync(path.join(root, 'memory/facts', unicodeName), 'utf8')).id).toBe(
      'fact-ünïcødé-日本語'.normalize('NFC'),
    );
    expectTotals(store, root, print);
  });

  it('refuses options it cannot honour before touching the disk', async () => {
    const root = tempRoot();
    await expect(generateStore(root, { profile: 'demo', scale: 0 })).rejects.toThrow(RangeError);
    await expect(generateStore(root, { profile: 'demo', seed: 1.5 })).rejects.toThrow(RangeError);
    await expect(generateStore(root, { profile: 'nope' as 'demo' })).rejects.toThrow(RangeError);
    expect(fs.existsSync(root)).toBe(false);
  });
});
