// What a backup holds: regular files (content, mode, mtime) and directories copied, symlinks and special files
// never followed nor copied but listed as skipped; the Oxios `sections` rule; excludes. Real trees on disk,
// the real worker pool.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManifestSchema } from '../dist/src/format/manifest-schema.js';
import { backup, restore, verify } from '../dist/src/index.js';
import {
  atFirstProgress,
  expectBackupConsistent,
  type IndexLine,
  readManifestJson,
} from './helpers/backup.js';
import {
  cleanup,
  closeSockets,
  createTree,
  dir,
  entryPrint,
  fifo,
  file,
  filterPrint,
  fingerprintTree,
  runCli,
  socket,
  symlink,
  type Tree,
  tempDir,
} from './helpers/tree.js';

afterEach(async () => {
  await closeSockets();
  cleanup();
});

const MARKER = 'OUTSIDE-SECRET-5f1c0b9e';
const T1 = 1_600_000_000.123; // mtimes with a millisecond part, so sub-second precision is really checked
const T2 = 1_500_000_000.987;

function nested(depth: number): Tree {
  let tree: Tree = { 'leaf.json': file('{"deep":true}', { mtime: T2 }) };
  for (let level = depth; level >= 1; level--) tree = { [`d${level}`]: tree };
  return tree;
}

function byPath(index: IndexLine[]): Map<string, IndexLine> {
  return new Map(index.map((entry) => [entry.path, entry]));
}

describe('backup of a tree holding every kind of entry', () => {
  it('copies regular files and dirs with content, mode and mtime, and only lists links and specials', async () => {
    const root = tempDir();
    const outside = join(root, 'outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'secret.json'), MARKER);
    const source = join(root, 'src');
    const stream = randomBytes(1536 * 1024); // read in chunks by the worker (> 1 MiB)
    const large = randomBytes(4608 * 1024); // a task of its own (>= 4 MiB)
    const exactlyOneMiB = randomBytes(1024 * 1024);
    await createTree(source, {
      'plain.json': file('{"a":1}', { mode: 0o640, mtime: T1 }),
      'empty.md': file('', { mtime: T2 }),
      'with space.json': file('space'),
      'ünïcødé-日本語.md': file('unicode ✓'),
      'new\nline.json': file('newline in the name'),
      '.hidden.json': file('hidden'),
      'run.sh': file('#!/bin/sh\n', { mode: 0o755 }),
      'locked.json': file('no bits at all', { mode: 0o000 }),
      'setgid-dir': dir({ 'x.json': file('x') }, { mode: 0o2750 }),
      'empty-dir': dir({}, { mode: 0o750, mtime: T1 }),
      'read-only-dir': dir({ 'inside.json': file('inside', { mode: 0o444 }) }, { mode: 0o555, mtime: T2 }),
      deep: nested(40),
      big: { 'stream.bin': file(stream), 'large.bin': file(large), 'one-mib.bin': file(exactlyOneMiB) },
      links: {
        'to-file.json': symlink('../plain.json'),
        'to-dir': symlink('../deep'),
        'outside.json': symlink(join(outside, 'secret.json')),
        'outside-dir': symlink(outside),
        'dangling.md': symlink('./nothing-here'),
      },
      special: { fifo: fifo(), 'sock.json': socket() },
    });
    const dest = join(root, 'backup');

    const result = await backup({ source, dest, sync: false });

    // Everything that is a regular file or a directory in the source is in the backup, identical: content,
    // mode and mtime (to the microsecond), the backup's root included.
    const sourcePrint = fingerprintTree(source);
    const copied = filterPrint(sourcePrint, (_rel, entry) => entry.kind === 'file' || entry.kind === 'dir');
    const ownFiles = new Set(['manifest.json', '.statesnap']);
    expect(fingerprintTree(dest, { exclude: (rel) => ownFiles.has(rel) })).toEqual(copied);
    expect(entryPrint(dest)).toEqual(entryPrint(source));
    // The fixture's mtimes really have a millisecond part, so the comparison above checks sub-second precision.
    expect(sourcePrint['plain.json']!.mtime).not.toMatch(/\.000\d{3}Z$/);
    expect(sourcePrint['read-only-dir']!.mtime).not.toMatch(/\.000\d{3}Z$/);
    expect(readFileSync(join(dest, 'new\nline.json'), 'utf8')).toBe('newline in the name');
    expect(copied['empty.md']).toMatchObject({ kind: 'file', size: 0 });

    // Links and specials: counted and listed, never copied; nothing from outside the source.
    expect(result.skipped).toEqual({
      symlink: 5,
      fifo: 1,
      socket: 1,
      char_device: 0,
      block_device: 0,
      excluded: 0,
      reserved: 0,
    });
    const index = byPath(expectBackupConsistent(dest));
    for (const link of ['to-file.json', 'to-dir', 'outside.json', 'outside-dir', 'dangling.md']) {
      expect(index.get(`links/${link}`)).toEqual({ path: `links/${link}`, type: 'symlink', skipped: true });
    }
    expect(index.get('special/fifo')).toEqual({ path: 'special/fifo', type: 'fifo', skipped: true });
    expect(index.get('special/sock.json')).toEqual({
      path: 'special/sock.json',
      type: 'socket',
      skipped: true,
    });

    // The index records the source's attributes for every file and directory, mtimes to the nanosecond.
    for (const [rel, print] of Object.entries(copied)) {
      const entry = index.get(rel)!;
      expect({ rel, type: entry.type, mode: entry.mode?.toString(8), size: entry.size }).toEqual({
        rel,
        type: print.kind,
        mode: print.mode,
        size: print.size,
      });
      expect(entry.mtime_ns).toBe(lstatSync(join(source, rel), { bigint: true }).mtimeNs.toString());
    }
    expect(index.get('big/large.bin')?.size).toBe(large.length);

    // Result, manifest totals and the index agree.
    const manifest = ManifestSchema.parse(readManifestJson(dest));
    const files = Object.values(copied).filter((print) => print.kind === 'file');
    const bytes = files.reduce((sum, print) => sum + print.size!, 0);
    expect(manifest.statesnap?.totals).toEqual({
      files: files.length,
      dirs: Object.keys(copied).length - files.length,
      bytes,
    });
    expect({ files: result.files, dirs: result.dirs, bytes: result.bytes }).toEqual(
      manifest.statesnap?.totals,
    );
    expect(manifest.statesnap?.skipped).toEqual(result.skipped);
    expect(result.exitCode).toBe(0);
    expect(result.warnings.count).toBe(0);
    expect(readFileSync(join(source, 'links/outside.json'), 'utf8')).toBe(MARKER); // the link did resolve
  });

  it('an empty source gives a valid backup with no files and no sections', async () => {
    const root = tempDir();
    await createTree(join(root, 'src'), {});
    const result = await backup({ source: join(root, 'src'), dest: join(root, 'out'), sync: false });
    expect(result).toMatchObject({ files: 0, dirs: 0, bytes: 0, sections: [], exitCode: 0 });
    expect(expectBackupConsistent(join(root, 'out'))).toEqual([]);
  });

  it('keeps the root manifest.json and .statesnap of a source out of the way of its own, and counts them', async () => {
    // A store restored by Oxios holds the backup's manifest.json at its root (Oxios copies it back).
    const root = tempDir();
    const source = join(root, 'src');
    await createTree(source, {
      'manifest.json': file('{"version":1,"from":"an older backup"}'),
      '.statesnap': { 'index.jsonl': file('not ours') },
      seeds: { 'manifest.json': file('a seed is not reserved') },
    });
    const result = await backup({ source, dest: join(root, 'out'), sync: false });
    expect(result.skipped.reserved).toBe(2);
    expect(readManifestJson(join(root, 'out')).version).toBe(1);
    expect(readManifestJson(join(root, 'out')).from).toBeUndefined();
    expect(readFileSync(join(root, 'out/seeds/manifest.json'), 'utf8')).toBe('a seed is not reserved');
    expectBackupConsistent(join(root, 'out'));
  });
});

describe('manifest sections (the Oxios list_category rule)', () => {
  it('counts .md/.json entries of any type directly in each category, in the Oxios order', async () => {
    const root = tempDir();
    const source = join(root, 'src');
    // Created out of order: the manifest order must be the category list's, not the filesystem's.
    await createTree(source, {
      sessions: { 'dangling.json': symlink('missing'), 's.md': file('s') },
      memory: {
        facts: { 'f1.json': file('1'), 'f2.json': file('2'), 'f3.json': file('3'), 'notes.txt': file('no') },
        conversations: { 'c.md': file('c') },
        episodes: {}, // empty: left out
        knowledge: { topic: { 'nested.md': file('nested entries are not counted') } },
      },
      seeds: {
        'a.json': file('{}'),
        'b.md': file('b'),
        'c.txt': file('not counted'),
        'x.json': dir({ 'inner.json': file('not counted') }), // a folder whose name ends in .json counts
        'y.md': symlink('a.json'), // a symlink counts
        'z.json.123.abc.tmp': file('an in-flight temp file does not end in .json'),
        '.hidden.json': file('counted: read_dir lists dot files'),
        json: file('no dot, not counted'),
        'README.MD': file('case matters'),
      },
      agent_groups: { 'g.json': file('g') },
      evals: { 'only.txt': file('no') }, // holds no .md/.json: left out
      other: { 'o.json': file('not a category') },
    });
    const result = await backup({ source, dest: join(root, 'out'), sync: false });
    const expected = [
      { name: 'seeds', entry_count: 5 },
      { name: 'memory/conversations', entry_count: 1 },
      { name: 'memory/facts', entry_count: 3 },
      { name: 'sessions', entry_count: 2 },
      { name: 'agent_groups', entry_count: 1 },
    ];
    expect(result.sections).toEqual(expected);
    expect(readManifestJson(join(root, 'out')).sections).toEqual(expected);
    expectBackupConsistent(join(root, 'out'));
    // The temp file is excluded from the copy too, and the counted symlinks are not copied.
    expect(result.skipped).toMatchObject({ symlink: 2, excluded: 1 });
  });

  it('are counted from what the walk listed: a file written mid-run is counted exactly when it is copied', async () => {
    const root = tempDir();
    const source = join(root, 'src');
    const facts: Record<string, ReturnType<typeof file>> = {};
    // Enough files between the first and the last category that the walk is held back by the copy.
    for (let i = 0; i < 5000; i++) facts[`f-${i}.json`] = file(`{"f":${i}}`);
    await createTree(source, {
      agent_groups: { 'g.json': file('g') },
      memory: { facts },
      sessions: { 's.md': file('s') },
    });
    const dest = join(root, 'out');
    const late = atFirstProgress(() => {
      // The walk has listed agent_groups (the first folder) and not yet reached sessions (the last).
      writeFileSync(join(source, 'agent_groups', 'late.json'), 'late');
      writeFileSync(join(source, 'sessions', 'late.json'), 'late');
    });
    const result = await backup({ source, dest, sync: false, threads: 1, onProgress: late.onProgress });
    expect(late.ran).toBe(true);
    const held = (category: string) =>
      readdirSync(join(dest, category)).filter((name) => name.endsWith('.json') || name.endsWith('.md'));
    expect(held('agent_groups')).toEqual(['g.json']);
    expect(held('sessions').sort()).toEqual(['late.json', 's.md']);
    const expected = [
      { name: 'memory/facts', entry_count: 5000 },
      { name: 'sessions', entry_count: 2 },
      { name: 'agent_groups', entry_count: 1 },
    ];
    expect(result.sections).toEqual(expected);
    expect(readManifestJson(dest).sections).toEqual(expected);
    expect((await verify({ backup: dest })).notes).toEqual([]);
  });

  it('--category replaces the list, keeps its order, and ignores missing folders', async () => {
    const root = tempDir();
    const source = join(root, 'src');
    await createTree(source, {
      seeds: { 'a.json': file('a') },
      notes: { 'n1.md': file('1'), 'n2.md': file('2') },
      'deep/er': { 'x.json': file('x') },
    });
    const run = await runCli([
      'backup',
      '--json',
      '--no-sync',
      '--category',
      'notes',
      '--category',
      'missing',
      '--category',
      'deep/er',
      '--category',
      'seeds',
      source,
      join(root, 'out'),
    ]);
    expect(run.exitCode).toBe(0);
    const sections = [
      { name: 'notes', entry_count: 2 },
      { name: 'deep/er', entry_count: 1 },
      { name: 'seeds', entry_count: 1 },
    ];
    expect(JSON.parse(run.stdout).sections).toEqual(sections);
    const manifest = readManifestJson(join(root, 'out'));
    expect(manifest.sections).toEqual(sections);
    expect((manifest.statesnap as { categories: string[] }).categories).toEqual([
      'notes',
      'missing',
      'deep/er',
      'seeds',
    ]);
    expectBackupConsistent(join(root, 'out'));
  });

  it('leave out what --exclude leaves out (a file, a glob, a whole folder), so inspect never claims content the backup lacks', async () => {
    const root = tempDir();
    const source = join(root, 'src');
    await createTree(source, {
      seeds: { 'a.json': file('a'), 'b.json': file('b') },
      memory: {
        facts: { 'f1.json': file('1'), 'f2.json': file('2'), 'f3.json': file('3') },
        episodes: { 'e1.md': file('1'), 'e2.md': file('2') },
        knowledge: { 'k.md': file('k') },
      },
    });
    const dest = join(root, 'out');
    const run = await runCli([
      'backup',
      '--json',
      '--no-sync',
      ...['--exclude', 'memory/episodes/**', '--exclude', 'memory/facts/f2.json'],
      ...['--exclude', 'memory/knowledge'], // a folder left out whole: nothing in it is counted
      source,
      dest,
    ]);
    expect(run.exitCode).toBe(0);
    const sections = [
      { name: 'seeds', entry_count: 2 },
      { name: 'memory/facts', entry_count: 2 },
    ];
    expect(JSON.parse(run.stdout).sections).toEqual(sections);
    expect(readManifestJson(dest).sections).toEqual(sections);
    const inspected = await runCli(['inspect', '--json', dest]);
    expect(JSON.parse(inspected.stdout)).toMatchObject({ sections, notes: [] });
  });

  it('refuses a category that would count entries outside the source', async () => {
    const root = tempDir();
    await createTree(join(root, 'src'), { seeds: { 'a.json': file('a') } });
    await createTree(join(root, 'elsewhere'), { 'x.json': file('x') });
    for (const category of ['../elsewhere', '/etc', 'seeds/../../elsewhere']) {
      await expect(
        backup({ source: join(root, 'src'), dest: join(root, 'out'), categories: [category] }),
      ).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
    }
    expect(existsSync(join(root, 'out'))).toBe(false);
  });
});

describe('excludes', () => {
  async function storeWithTemps(root: string): Promise<string> {
    const source = join(root, 'src');
    await createTree(source, {
      'keep.json': file('k'),
      'root.json.1234.0a1b.tmp': file('temp'),
      'x.log': file('root log'),
      'cache.tmp': { 'inside.json': file('a folder named *.tmp is excluded whole') },
      memory: {
        facts: { 'f.json': file('f'), 'f.json.99.ff.tmp': file('temp'), '.hidden.tmp': file('temp') },
        episodes: { 'e1.md': file('e1'), sub: { 'e2.md': file('e2') } },
      },
      sub: { 'y.log': file('nested log') },
    });
    return source;
  }

  it('leaves out **/*.tmp by default, at any depth and for hidden names, and counts them', async () => {
    const root = tempDir();
    const source = await storeWithTemps(root);
    const result = await backup({ source, dest: join(root, 'out'), sync: false });
    const paths = expectBackupConsistent(join(root, 'out')).map((entry) => entry.path);
    expect(paths.filter((path) => path.includes('.tmp'))).toEqual([]);
    expect(paths).toContain('memory/facts/f.json');
    expect(result.skipped.excluded).toBe(4);
  });

  it('--exclude takes fast-glob patterns placed as in .gitignore; a directory pattern leaves out the folder and all below it', async () => {
    const root = tempDir();
    const source = await storeWithTemps(root);
    const dest = join(root, 'out');
    const run = await runCli([
      'backup',
      '--json',
      '--no-sync',
      '--exclude',
      'memory/episodes/**',
      '--exclude',
      '*.log',
      source,
      dest,
    ]);
    expect(run.exitCode).toBe(0);
    const paths = expectBackupConsistent(dest).map((entry) => entry.path);
    expect(paths.filter((path) => path.startsWith('memory/episodes'))).toEqual([]);
    expect(existsSync(join(dest, 'memory/episodes'))).toBe(false);
    expect(paths).not.toContain('x.log');
    expect(paths).not.toContain('sub/y.log'); // no slash in the pattern: a name at any depth (.gitignore)
    expect(paths).toContain('memory/facts/f.json');
    // The folder counts once (its contents are never walked), plus the two logs and the four default temp entries.
    expect(JSON.parse(run.stdout).skipped.excluded).toBe(7);
  });

  it('--no-default-excludes keeps the .tmp files', async () => {
    const root = tempDir();
    const source = await storeWithTemps(root);
    const dest = join(root, 'out');
    const run = await runCli(['backup', '--json', '--no-sync', '--no-default-excludes', source, dest]);
    expect(run.exitCode).toBe(0);
    const paths = expectBackupConsistent(dest).map((entry) => entry.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'root.json.1234.0a1b.tmp',
        'cache.tmp',
        'cache.tmp/inside.json',
        'memory/facts/f.json.99.ff.tmp',
        'memory/facts/.hidden.tmp',
      ]),
    );
    expect(readFileSync(join(dest, 'root.json.1234.0a1b.tmp'), 'utf8')).toBe('temp');
    expect(JSON.parse(run.stdout).skipped.excluded).toBe(0);
  });
});

/** The names of `path`'s extended attributes (Node has no xattr API; Python does), or null where unavailable. */
function xattrs(path: string, set?: string): string[] | null {
  const code = set
    ? `import os, sys; os.setxattr(sys.argv[1], ${JSON.stringify(set)}, b"v"); print("\\n".join(os.listxattr(sys.argv[1])))`
    : 'import os, sys; print("\\n".join(os.listxattr(sys.argv[1])))';
  const run = spawnSync('python3', ['-c', code, path], { encoding: 'utf8' });
  return run.status === 0 ? run.stdout.split('\n').filter(Boolean) : null;
}

describe('what the README says a backup does not keep', () => {
  /** Backs `source` up and restores it; returns both trees. */
  async function backupAndRestore(root: string, source: string): Promise<string[]> {
    const dest = join(root, 'backup');
    await backup({ source, dest, sync: false });
    const target = join(root, 'restored');
    await restore({ backup: dest, target, sync: false });
    return [dest, target];
  }

  it('says so', () => {
    const readme = readFileSync(resolve(import.meta.dirname, '../README.md'), 'utf8');
    const start = readme.indexOf('### What is not kept');
    expect(start).toBeGreaterThan(0);
    const section = readme.slice(start, readme.indexOf('\n## ', start));
    for (const limit of ['Hard links', 'Extended attributes', 'POSIX ACLs', 'SELinux labels']) {
      expect(section).toContain(limit);
    }
  });

  it('hard links in the source become separate files, in the backup and on restore', async () => {
    const root = tempDir();
    const source = join(root, 'src');
    await createTree(source, { seeds: { 'a.json': file('{"linked":1}') } });
    linkSync(join(source, 'seeds/a.json'), join(source, 'seeds/b.json'));
    for (const tree of await backupAndRestore(root, source)) {
      const [a, b] = ['a.json', 'b.json'].map((name) => lstatSync(join(tree, 'seeds', name)));
      expect([a!.nlink, b!.nlink]).toEqual([1, 1]);
      expect(a!.ino).not.toBe(b!.ino);
      expect(readFileSync(join(tree, 'seeds/b.json'), 'utf8')).toBe('{"linked":1}');
    }
  });

  it('extended attributes (the home of ACLs and SELinux labels) are not kept', async (ctx) => {
    const root = tempDir();
    const source = join(root, 'src');
    await createTree(source, { seeds: { 'a.json': file('{}') } });
    const set = xattrs(join(source, 'seeds/a.json'), 'user.statesnap-test');
    if (!set?.includes('user.statesnap-test'))
      return ctx.skip('no python3, or no user xattrs on this filesystem');
    for (const tree of await backupAndRestore(root, source)) {
      expect(xattrs(join(tree, 'seeds/a.json'))).toEqual([]);
    }
  });
});
