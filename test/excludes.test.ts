// Exclude and include patterns as rsync and .gitignore users expect them: where a pattern matches (any depth,
// anchored, directories only), includes, --exclude-from files, and patterns that matched nothing. Through the
// real binary on real trees, plus the matcher's own API (the manifest's sections ask it about single paths).

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ExcludeRules } from '../dist/src/core/excludes.js';
import type { BackupResult } from '../dist/src/index.js';
import { expectBackupConsistent } from './helpers/backup.js';
import { cleanup, createTree, file, runCli, tempDir } from './helpers/tree.js';

afterEach(cleanup);

async function store(root: string): Promise<string> {
  const source = join(root, 'src');
  await createTree(source, {
    'top.md': file('t'),
    'top.json': file('{}'),
    cache: file('a file named cache'),
    a: {
      'top.md': file('nested top'),
      b: { 'c.md': file('deep'), 'c.json': file('{}') },
      cache: { 'x.json': file('{}') },
      'keep.md': file('keep'),
      'w.tmp': file('temp'),
    },
    docs: { api: { 'i.md': file('api') }, 'guide.md': file('g') },
    x: { a: { b: { 'n.json': file('{}') } }, docs: { api: { 'j.md': file('other api') } } },
  });
  return source;
}

/** Backs up with `args` and returns the result and the backed-up files (excluding the backup's own). */
async function backupWith(
  args: string[],
): Promise<{ result: BackupResult; files: string[]; stderr: string }> {
  const root = tempDir();
  const source = await store(root);
  const dest = join(root, 'out');
  const run = await runCli(['backup', '--json', '--no-sync', ...args, source, dest], { cwd: root });
  expect(run.exitCode, run.stderr).toBe(0);
  const files = expectBackupConsistent(dest)
    .filter((entry) => entry.type === 'file')
    .map((entry) => entry.path)
    .sort();
  return { result: JSON.parse(run.stdout) as BackupResult, files, stderr: run.stderr };
}

describe('where a pattern matches', () => {
  it('a pattern without a slash matches a name at any depth: *.md leaves out a/b/c.md', async () => {
    const { files } = await backupWith(['--exclude', '*.md']);
    expect(files).toEqual(['a/b/c.json', 'a/cache/x.json', 'cache', 'top.json', 'x/a/b/n.json']);
  });

  it('a leading slash anchors a pattern at the source root', async () => {
    const { files } = await backupWith(['--exclude', '/top.md']);
    expect(files).not.toContain('top.md');
    expect(files).toContain('a/top.md');
  });

  it('a slash inside anchors it too: a/b leaves out a/b, not x/a/b', async () => {
    const { files } = await backupWith(['--exclude', 'a/b']);
    expect(files.filter((path) => path.startsWith('a/b/'))).toEqual([]);
    expect(files).toContain('x/a/b/n.json');
  });

  it('a trailing slash matches directories only, at any depth unless anchored otherwise', async () => {
    const dirOnly = await backupWith(['--exclude', 'cache/']);
    expect(dirOnly.files).toContain('cache'); // the file named cache stays
    expect(dirOnly.files).not.toContain('a/cache/x.json');
    const anchored = await backupWith(['--exclude', 'docs/api/']);
    expect(anchored.files).not.toContain('docs/api/i.md');
    expect(anchored.files).toContain('x/docs/api/j.md');
  });

  it('** crosses folders and a folder left out is left out whole, counted once', async () => {
    const { files, result } = await backupWith(['--exclude', 'x/**', '--no-default-excludes']);
    expect(files.filter((path) => path.startsWith('x/'))).toEqual([]);
    expect(result.skippedEntries.byKind.excluded).toBe(1);
  });

  it('** and a bare name cross a directory whose name holds a newline', async () => {
    const root = tempDir();
    const source = join(root, 'src');
    await createTree(source, {
      'odd\ndir': { 'secret.key': file('k'), 'keep.md': file('m') },
      'kept\nfile.md': file('n'),
    });
    const dest = join(root, 'out');
    const run = await runCli(['backup', '--json', '--no-sync', '--exclude', '**/*.key', source, dest]);
    expect(run.exitCode, run.stderr).toBe(0);
    const files = expectBackupConsistent(dest)
      .filter((entry) => entry.type === 'file')
      .map((entry) => entry.path)
      .sort();
    expect(files).toEqual(['kept\nfile.md', 'odd\ndir/keep.md']);
  });
});

describe('--include', () => {
  it('copies a path an exclude pattern matches, whatever the order of the options', async () => {
    for (const args of [
      ['--exclude', '*.md', '--include', 'a/keep.md'],
      ['--include', 'a/keep.md', '--exclude', '*.md'],
    ]) {
      const { files } = await backupWith(args);
      expect(files.filter((path) => path.endsWith('.md'))).toEqual(['a/keep.md']);
    }
  });

  it('an exclude pattern written !pattern is an include, and an include can take back a default exclude', async () => {
    const { files } = await backupWith(['--exclude', '*.md', '--exclude', '!keep.md', '--include', 'w.tmp']);
    expect(files).toContain('a/keep.md');
    expect(files).toContain('a/w.tmp');
    expect(files).not.toContain('a/b/c.md');
  });

  it('cannot reach inside a folder that is left out (rsync and git behave the same)', async () => {
    const { files, result } = await backupWith(['--exclude', 'a/', '--include', 'keep.md']);
    expect(files.filter((path) => path.startsWith('a/'))).toEqual([]);
    // The include was never asked about a/keep.md: nothing below a/ is looked at.
    expect(result.unmatchedPatterns).toEqual([{ pattern: 'keep.md', kind: 'include' }]);
  });

  it("rsync's include-folders-exclude-the-rest idiom keeps only the included files", async () => {
    const { files } = await backupWith(['--include', '*/', '--include', '*.json', '--exclude', '*']);
    expect(files).toEqual(['a/b/c.json', 'a/cache/x.json', 'top.json', 'x/a/b/n.json']);
  });
});

describe('patterns that matched nothing', () => {
  it('are reported on stderr, one line each, and in the result; the backup still succeeds', async () => {
    const { result, stderr, files } = await backupWith([
      '--exclude',
      '*.mdx',
      '--exclude',
      '*.md',
      '--include',
      'nothing/here',
    ]);
    expect(result.exitCode).toBe(0);
    expect(result.unmatchedPatterns).toEqual([
      { pattern: '*.mdx', kind: 'exclude' },
      { pattern: 'nothing/here', kind: 'include' },
    ]);
    expect(stderr.split('\n').filter((line) => line !== '')).toEqual([
      `statesnap: note: exclude pattern '*.mdx' matched nothing in ${result.source}`,
      `statesnap: note: include pattern nothing/here matched nothing in ${result.source}`,
    ]);
    expect(files).not.toContain('top.md');
  });

  it('a default exclude that matched nothing is not reported', async () => {
    const root = tempDir();
    const source = join(root, 'src');
    await createTree(source, { 'a.json': file('{}') });
    const run = await runCli(['backup', '--no-sync', source, join(root, 'out')]);
    expect(run.exitCode).toBe(0);
    expect(run.stderr).toBe('');
  });

  it('--quiet hides the note', async () => {
    const root = tempDir();
    const source = await store(root);
    const run = await runCli(['backup', '-q', '--no-sync', '--exclude', 'nope', source, join(root, 'out')]);
    expect(run).toMatchObject({ exitCode: 0, stdout: '', stderr: '' });
  });
});

describe('--exclude-from', () => {
  it('reads one pattern per line, ignoring comments, blank lines and trailing whitespace (CRLF too)', async () => {
    const root = tempDir();
    const list = join(root, 'excludes.txt');
    writeFileSync(list, '# store excludes\r\n\r\n*.md   \r\n!a/keep.md\r\n  \r\n/cache\r\n');
    const { files, result } = await backupWith(['--exclude-from', list, '--exclude', 'docs/']);
    expect(files).toEqual(['a/b/c.json', 'a/cache/x.json', 'top.json', 'x/a/b/n.json', 'a/keep.md'].sort());
    expect(result.unmatchedPatterns).toEqual([]);
  });

  it('a file that cannot be read is a usage error naming it (exit 2), before anything is written', async () => {
    const root = tempDir();
    const source = await store(root);
    const missing = join(root, 'nope.txt');
    const run = await runCli(['backup', '--json', '--exclude-from', missing, source, join(root, 'out')]);
    expect(run.exitCode).toBe(2);
    const failure = JSON.parse(run.stdout) as { error: { code: string; path: string } };
    expect(failure.error).toMatchObject({ code: 'ERR_INVALID_OPTION', path: missing });
    expect(run.stderr).toContain(`cannot read --exclude-from file ${missing}: ENOENT`);
  });
});

describe('refused patterns', () => {
  it('a pattern that names no path (/, //) is refused with exit 2', async () => {
    const root = tempDir();
    const source = await store(root);
    for (const pattern of ['/', '//', '!']) {
      const run = await runCli(['backup', '--json', '--exclude', pattern, source, join(root, 'out')]);
      expect(run.exitCode, pattern).toBe(2);
      expect(JSON.parse(run.stdout).error.code).toBe('ERR_INVALID_OPTION');
    }
  });
});

describe('ExcludeRules (the one matcher, for callers outside the walk)', () => {
  const rules = () =>
    new ExcludeRules({
      exclude: ['memory/episodes', '*.md', 'cache/'],
      include: ['keep.md'],
      defaults: ['**/*.tmp'],
    });

  it('isExcluded(rel, isDirectory) also answers for paths below a folder that is left out', () => {
    const r = rules();
    expect(r.isExcluded('memory/episodes/e1.json', false)).toBe(true);
    expect(r.isExcluded('memory/episodes', true)).toBe(true);
    expect(r.isExcluded('memory/facts/f.json', false)).toBe(false);
    expect(r.isExcluded('x/cache/y.json', false)).toBe(true);
    expect(r.isExcluded('x/cache', false)).toBe(false);
    expect(r.isExcluded('seeds/a.md', false)).toBe(true);
    expect(r.isExcluded('seeds/keep.md', false)).toBe(false);
    expect(r.isExcluded('seeds/a.json.1.ab.tmp', false)).toBe(true);
  });

  it('excludes(rel, isDirectory) answers for the entry alone, as the walk asks', () => {
    const r = rules();
    expect(r.excludes('memory/episodes/e1.json', false)).toBe(false);
    expect(r.unmatched()).toEqual([
      { pattern: 'memory/episodes', kind: 'exclude' },
      { pattern: '*.md', kind: 'exclude' },
      { pattern: 'cache/', kind: 'exclude' },
      { pattern: 'keep.md', kind: 'include' },
    ]);
    expect(r.excludes('a/cache', true)).toBe(true);
    expect(r.unmatched().map((u) => u.pattern)).not.toContain('cache/');
  });
});
