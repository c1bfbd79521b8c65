// Store generator: byte-identical trees per seed, and each profile's counts, size ranges, temp files,
// symlink kinds and odd names at small scale.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { type GeneratedStore, generateStore } from '../dist/bench/generator.js';

const KiB = 1024;
const MiB = 1024 * KiB;

const roots: string[] = [];

function tempRoot(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'statesnap-gen-'));
  roots.push(root);
  return path.join(root, 'store');
}

afterEach(() => {
  for (const root of roots.splice(0)) fs.rmSync(root, { recursive: true, force: true });
});

/** Every entry below `dir` (relative, sorted), never following symlinks. */
function walk(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const child = rel === '' ? entry.name : `${rel}/${entry.name}`;
    out.push(child);
    if (entry.isDirectory()) out.push(...walk(dir, child));
  }
  return out.sort();
}

function treeHash(root: string): string {
  const hash = createHash('sha256');
  hash.update(`. ${fs.lstatSync(root).mtimeMs}\n`);
  for (const rel of walk(root)) {
    const abs = path.join(root, rel);
    const stat = fs.lstatSync(abs);
    if (stat.isFile()) {
      const content = createHash('sha256').update(fs.readFileSync(abs)).digest('hex');
      hash.update(`${rel} file ${stat.size} ${content} ${stat.mtimeMs}\n`);
    } else if (stat.isSymbolicLink()) {
      hash.update(`${rel} symlink ${fs.readlinkSync(abs)} ${stat.mtimeMs}\n`);
    } else {
      hash.update(`${rel} dir ${stat.mtimeMs}\n`);
    }
  }
  return hash.digest('hex');
}

interface FileInfo {
  rel: string;
  size: number;
}

/** Regular files directly in `dir` (or anywhere below it with `deep`) whose names end in `ext`. */
function filesIn(root: string, dir: string, ext: string, deep = false): FileInfo[] {
  return walk(path.join(root, dir))
    .filter((rel) => (deep || !rel.includes('/')) && rel.endsWith(ext))
    .map((rel) => ({ rel: `${dir}/${rel}`, stat: fs.lstatSync(path.join(root, dir, rel)) }))
    .filter(({ stat }) => stat.isFile())
    .map(({ rel, stat }) => ({ rel, size: stat.size }));
}

function expectCategory(
  root: string,
  dir: string,
  ext: string,
  count: number,
  min: number,
  max: number,
): void {
  const files = filesIn(root, dir, ext, dir === 'memory/knowledge');
  expect(files, dir).toHaveLength(count);
  for (const { rel, size } of files) {
    expect(size, rel).toBeGreaterThanOrEqual(min);
    expect(size, rel).toBeLessThanOrEqual(max);
  }
}

type LinkKind = 'file' | 'dir' | 'outside' | 'dangling';

function symlinkKinds(root: string): LinkKind[] {
  return walk(root)
    .filter((rel) => fs.lstatSync(path.join(root, rel)).isSymbolicLink())
    .map((rel) => {
      const abs = path.join(root, rel);
      const target = path.resolve(path.dirname(abs), fs.readlinkSync(abs));
      if (path.relative(root, target).startsWith('..')) return 'outside';
      try {
        return fs.statSync(abs).isDirectory() ? 'dir' : 'file';
      } catch (error) {
        expect(['ENOENT', 'ELOOP']).toContain((error as NodeJS.ErrnoException).code);
        return 'dangling';
      }
    });
}

function tempFiles(root: string): string[] {
  return walk(root).filter((rel) => rel.endsWith('.tmp'));
}

function expectTotals(store: GeneratedStore, root: string): void {
  const entries = walk(root).map((rel) => fs.lstatSync(path.join(root, rel)));
  const files = entries.filter((stat) => stat.isFile());
  expect(store).toEqual({
    root: path.resolve(root),
    files: files.length,
    bytes: files.reduce((sum, stat) => sum + stat.size, 0),
    dirs: entries.filter((stat) => stat.isDirectory()).length,
    symlinks: entries.filter((stat) => stat.isSymbolicLink()).length,
    tempFiles: tempFiles(root).length,
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
    const hash = treeHash(first);
    expect(treeHash(second)).toBe(hash);
    expect(treeHash(other)).not.toBe(hash);
  });

  it('oxios: scaled category counts and size ranges, 10 scaled-down indexes, 20 temp files, every symlink kind', async () => {
    const root = tempRoot();
    const store = await generateStore(root, { profile: 'oxios', scale: 0.02 });
    expectCategory(root, 'seeds', '.json', 40, 1 * KiB, 16 * KiB);
    expectCategory(root, 'evals', '.json', 20, 2 * KiB, 32 * KiB);
    expectCategory(root, 'memory/conversations', '.md', 100, 4 * KiB, 128 * KiB);
    expectCategory(root, 'memory/sessions', '.json', 100, 1 * KiB, 32 * KiB);
    expectCategory(root, 'memory/facts', '.json', 1_200, 128, 2 * KiB);
    expectCategory(root, 'memory/episodes', '.json', 400, 1 * KiB, 8 * KiB);
    expectCategory(root, 'memory/knowledge', '.md', 40, 8 * KiB, 256 * KiB);
    expectCategory(root, 'sessions', '.json', 100, 2 * KiB, 64 * KiB);
    expectCategory(root, 'agent_groups', '.json', 4, 1 * KiB, 4 * KiB);
    expectCategory(root, 'memory/knowledge', '.bin', 10, 256 * KiB, Math.round(64 * MiB * 0.02));
    const topics = fs
      .readdirSync(path.join(root, 'memory/knowledge'))
      .filter((name) => name.startsWith('topic-'));
    expect(topics).toHaveLength(20);

    const temps = tempFiles(root);
    expect(temps).toHaveLength(20);
    for (const temp of temps) expect(`/${temp}`).toMatch(TEMP_NAME);

    const kinds = symlinkKinds(root);
    expect(kinds).toHaveLength(10);
    expect(new Set(kinds)).toEqual(new Set(['file', 'dir', 'outside', 'dangling']));
    expect(fs.readlinkSync(path.join(root, 'seeds/host.json'))).toBe('/etc/hostname');
    expectTotals(store, root);
  });

  it('oxios: JSON files parse, Markdown has front matter, text does not collapse under gzip', async () => {
    const root = tempRoot();
    await generateStore(root, { profile: 'oxios', scale: 0.01 });
    for (const { rel } of filesIn(root, 'memory/facts', '.json')) {
      const document = JSON.parse(fs.readFileSync(path.join(root, rel), 'utf8'));
      expect(document, rel).toMatchObject({ id: path.basename(rel, '.json'), text: expect.any(String) });
    }
    const [conversation] = filesIn(root, 'memory/conversations', '.md');
    const markdown = fs.readFileSync(path.join(root, conversation!.rel));
    expect(markdown.toString('utf8')).toMatch(/^---\nid: conversation-\d{6}\n/);
    expect(gzipSync(markdown).length).toBeGreaterThan(markdown.length / 5);
    const index = fs.readFileSync(path.join(root, 'memory/knowledge/index-00.bin'));
    expect(gzipSync(index).length).toBeGreaterThan(index.length * 0.99);
  });

  it('tiny-files: 64 B–1 KiB JSON files in shard folders of at most 1,000', async () => {
    const root = tempRoot();
    const store = await generateStore(root, { profile: 'tiny-files', scale: 0.001 });
    expect(fs.readdirSync(path.join(root, 'memory/facts'))).toEqual(['shard-000']);
    expectCategory(root, 'memory/facts/shard-000', '.json', 1_000, 64, 1 * KiB);
    expect(store).toMatchObject({ files: 1_000, dirs: 3, symlinks: 0, tempFiles: 0 });
    expectTotals(store, root);
  });

  it('large-files: 16 binary files of 128 MiB × scale', async () => {
    const root = tempRoot();
    const store = await generateStore(root, { profile: 'large-files', scale: 0.01 });
    const blobSize = Math.round(128 * MiB * 0.01);
    expectCategory(root, 'memory/knowledge', '.bin', 16, blobSize, blobSize);
    expect(store).toMatchObject({ files: 16, symlinks: 0, tempFiles: 0 });
    expectTotals(store, root);
  });

  it('demo: ~3,000 files, 3 temp files, 4 symlink kinds, an empty dir and odd names', async () => {
    const root = tempRoot();
    const store = await generateStore(root, { profile: 'demo' });
    expect(store.files).toBeGreaterThan(2_500);
    expect(store.files).toBeLessThan(3_500);
    expect(tempFiles(root)).toHaveLength(3);
    expect(symlinkKinds(root).sort()).toEqual(['dangling', 'dir', 'file', 'outside']);
    expect(fs.readdirSync(path.join(root, 'memory/inbox'))).toEqual([]);
    expect(fs.lstatSync(path.join(root, 'seeds/seed with space.json')).isFile()).toBe(true);
    const unicodeName = 'fact-ünïcødé-日本語.json'.normalize('NFC');
    expect(fs.readdirSync(path.join(root, 'memory/facts'))).toContain(unicodeName);
    expect(JSON.parse(fs.readFileSync(path.join(root, 'memory/facts', unicodeName), 'utf8')).id).toBe(
      'fact-ünïcødé-日本語'.normalize('NFC'),
    );
    expectTotals(store, root);
  });

  it('refuses options it cannot honour before touching the disk', async () => {
    const root = tempRoot();
    await expect(generateStore(root, { profile: 'demo', scale: 0 })).rejects.toThrow(RangeError);
    await expect(generateStore(root, { profile: 'demo', seed: 1.5 })).rejects.toThrow(RangeError);
    await expect(generateStore(root, { profile: 'nope' as 'demo' })).rejects.toThrow(RangeError);
    expect(fs.existsSync(root)).toBe(false);
  });
});
