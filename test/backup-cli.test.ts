// `statesnap backup` as a user and a script see it: the real built binary, its stdout/stderr contract (one
// --json document, one line per warning or error), exit codes, SIGINT, and a manifest.json of the Oxios
// version-1 shape that Oxios' own restore reads.

import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { generateStore } from '../dist/src/demo/generator.js';
import type { BackupResult } from '../dist/src/index.js';
import {
  expectBackupConsistent,
  expectOneLineError,
  readManifestJson,
  sha256,
  siblingsOf,
} from './helpers/backup.js';
import { startPausedCli } from './helpers/pause.js';
import { cleanup, createTree, dir, file, runCli, symlink, tempDir } from './helpers/tree.js';

afterEach(cleanup);

const PACKAGE_VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

async function store(root: string): Promise<string> {
  const source = join(root, 'src');
  await createTree(source, {
    seeds: { 'a.json': file('{"a":1}'), 'b.md': file('# b'), 'link.json': symlink('a.json') },
    memory: { facts: { 'f.json': file('{"f":2}'), 'x.json.1.ab.tmp': file('temp') }, empty: dir() },
    'notes.txt': file('n'),
  });
  return source;
}

describe('output', () => {
  it('--json prints exactly one JSON document whose totals are the manifest totals', async () => {
    const root = tempDir();
    const source = await store(root);
    const dest = join(root, 'out');
    const run = await runCli(['backup', '--json', '--no-sync', source, dest]);
    expect(run.exitCode).toBe(0);
    expect(run.stderr).toBe('');
    // One document: the whole of stdout parses, and it is an object (not several concatenated values).
    const result = JSON.parse(run.stdout) as BackupResult;
    expect(run.stdout.trimEnd().startsWith('{') && run.stdout.trimEnd().endsWith('}')).toBe(true);
    expect(
      run.stdout
        .trimEnd()
        .split('\n')
        .filter((line) => line === '}'),
    ).toHaveLength(1);
    const manifest = readManifestJson(dest) as {
      created_at: string;
      sections: unknown;
      statesnap: {
        totals: unknown;
        skipped: unknown;
        index: { entries: number; sha256: string };
        warnings: { count: number };
        hash_algorithm: string;
      };
    };
    expect({ files: result.files, dirs: result.dirs, bytes: result.bytes }).toEqual(
      manifest.statesnap.totals,
    );
    expect(result).toMatchObject({
      command: 'backup',
      source,
      dest,
      files: 4,
      dirs: 4,
      bytes: 7 + 3 + 7 + 1,
      exitCode: 0,
      createdAt: manifest.created_at,
      sections: manifest.sections,
      skipped: manifest.statesnap.skipped,
      hashAlgorithm: manifest.statesnap.hash_algorithm,
      index: { path: '.statesnap/index.jsonl', ...manifest.statesnap.index },
    });
    expect(result.warnings.count).toBe(manifest.statesnap.warnings.count);
    expect(result.index.sha256).toBe(sha256(readFileSync(join(dest, '.statesnap/index.jsonl'))));
    expectBackupConsistent(dest);
  });

  it('without --json prints a short summary on stdout and nothing on stderr (not a TTY)', async () => {
    const root = tempDir();
    const run = await runCli(['backup', '--no-sync', await store(root), join(root, 'out')]);
    expect(run).toMatchObject({ exitCode: 0, stderr: '' });
    expect(run.stdout).toContain(`backup ${join(root, 'out')}: 4 files, 4 dirs`);
    expect(run.stdout).toContain('sections: seeds 3, memory/facts 1');
    expect(run.stdout).toContain('skipped: 1 symlink, 1 excluded');
    expectBackupConsistent(join(root, 'out'));
  });

  it('--quiet prints nothing on success, one summary line for warnings; --quiet --json still prints the result', async () => {
    const root = tempDir();
    const source = await store(root);
    const quiet = await runCli(['backup', '--quiet', '--no-sync', source, join(root, 'a')]);
    expect(quiet).toMatchObject({ exitCode: 0, stdout: '', stderr: '' });
    writeFileSync(join(source, 'back\\slash.json'), 'a name the index cannot hold');
    const summary = 'statesnap: warning: completed with 1 warning: 1 unsupported-name\n';
    const warned = await runCli(['backup', '-q', '--no-sync', source, join(root, 'b')]);
    expect(warned).toMatchObject({ exitCode: 3, stdout: '', stderr: summary });
    const json = await runCli(['backup', '--quiet', '--json', '--no-sync', source, join(root, 'c')]);
    expect(json.exitCode).toBe(3);
    expect(JSON.parse(json.stdout).warnings.byProblem).toEqual({ 'unsupported-name': 1 });
    expect(json.stderr).toBe(summary);
    for (const name of ['a', 'b', 'c']) expectBackupConsistent(join(root, name));
  });
});

describe('exit codes and errors', () => {
  it('0 for a clean backup, 3 for one with warnings (listed on stderr, in the result and manifest)', async () => {
    const root = tempDir();
    const source = await store(root);
    expect((await runCli(['backup', '--no-sync', source, join(root, 'clean')])).exitCode).toBe(0);
    writeFileSync(join(source, 'seeds', 'back\\slash.json'), 'x');
    const run = await runCli(['backup', '--json', '--no-sync', source, join(root, 'warned')]);
    expect(run.exitCode).toBe(3);
    const warning = {
      path: join(source, 'seeds', 'back\\slash.json'),
      problem: 'unsupported-name',
      message: 'a backslash in a name cannot be stored in a portable index',
    };
    expect(run.stderr).toBe(`statesnap: warning: ${warning.path}: ${warning.message}\n`);
    const result = JSON.parse(run.stdout) as BackupResult;
    expect(result.exitCode).toBe(3);
    expect(result.warnings).toEqual({ count: 1, byProblem: { 'unsupported-name': 1 }, list: [warning] });
    expectBackupConsistent(join(root, 'clean'));
    expectBackupConsistent(join(root, 'warned'));
    const manifest = readManifestJson(join(root, 'warned')) as { statesnap: { warnings: unknown } };
    expect(manifest.statesnap.warnings).toEqual({
      count: 1,
      by_problem: { 'unsupported-name': 1 },
      list: [warning],
    });
  });

  it('a path with a newline in a warning or an error still makes one line on stderr', async () => {
    const root = tempDir();
    const source = await store(root);
    const odd = join(source, 'seeds', 'odd\\name\nsecond line.json');
    writeFileSync(odd, 'x');
    const warned = await runCli(['backup', '--json', '--no-sync', source, join(root, 'out')]);
    expect(warned.exitCode).toBe(3);
    expect(warned.stderr.endsWith('\n')).toBe(true);
    expect(warned.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(warned.stderr).toContain('odd\\name\\nsecond line.json: a backslash');
    expect((JSON.parse(warned.stdout) as BackupResult).warnings.list[0]?.path).toBe(odd); // data stays exact
    expectBackupConsistent(join(root, 'out'));

    const failed = await runCli(['backup', source, join(root, 'no\nsuch', 'out')]);
    expect(failed.exitCode).toBe(1);
    expectOneLineError(failed, 'ERR_DEST_WRITE');
    expect(failed.stderr).toContain('no\\nsuch');
  });

  it.each([
    {
      name: 'a missing source',
      args: ['nope', 'out'],
      exitCode: 1,
      code: 'ERR_SOURCE_UNREADABLE',
      names: 'nope',
    },
    {
      name: 'a source that is a file',
      args: ['src/notes.txt', 'out'],
      exitCode: 1,
      code: 'ERR_SOURCE_NOT_DIRECTORY',
      names: 'src/notes.txt',
    },
    {
      name: 'a dest whose parent is missing',
      args: ['src', 'no/such/out'],
      exitCode: 1,
      code: 'ERR_DEST_WRITE',
      names: 'no/such/out',
    },
    {
      name: 'a category escaping the source',
      args: ['--category', '../x', 'src', 'out'],
      exitCode: 2,
      code: 'ERR_INVALID_OPTION',
      names: 'got `../x`',
    },
  ])('$name: exit $exitCode, one line on stderr naming the path or value, code $code', async (c) => {
    const root = tempDir();
    await store(root);
    const run = await runCli(['backup', ...c.args], { cwd: root });
    expect(run.exitCode).toBe(c.exitCode);
    expectOneLineError(run, c.code);
    expect(run.stderr).toContain(c.names);
    expect(readdirSync(root)).toEqual(['src']);
  });

  it.each([
    ['an unknown option', ['--frobnicate']],
    ['a bad --on-file-error', ['--on-file-error', 'ignore']],
    ['a non-numeric --threads', ['--threads', 'many']],
  ])('usage errors exit 2 with nothing on stdout: %s', async (_name, extra) => {
    const root = tempDir();
    await store(root);
    const run = await runCli(['backup', ...extra, join(root, 'src'), join(root, 'out')]);
    expect(run.exitCode).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).not.toBe('');
    expect(readdirSync(root)).toEqual(['src']);
  });

  it('SIGINT stops a running backup: exit 130, one line on stderr, no dest, partial removed', async () => {
    const root = tempDir();
    const source = join(root, 'src');
    const generated = await generateStore(source, { profile: 'tiny-files', scale: 0.0006 });
    const dest = join(root, 'out');
    // Stopped after its first batch of files (of several), signalled, then let go on: mid-copy for certain.
    const running = startPausedCli(['backup', '--threads', '1', source, dest], ['copying']);
    await running.reached('copying');
    expect(siblingsOf(dest)).toHaveLength(1);
    running.child.kill('SIGINT');
    running.resume();
    const run = await running.done;
    expect(run.exitCode).toBe(130);
    expectOneLineError(run, 'ERR_ABORTED');
    expect(readdirSync(root)).toEqual(['src']);
    expect(generated.files).toBeGreaterThan(2 * 256);
  });
});

describe('Oxios compatibility of manifest.json', () => {
  it('has the Oxios v1 shape: 2-space pretty JSON, the Oxios keys first with their JSON types', async () => {
    const root = tempDir();
    const source = await store(root);
    const before = Date.now();
    const run = await runCli(['backup', '--no-sync', source, join(root, 'out')]);
    expect(run.exitCode).toBe(0);
    const text = readFileSync(join(root, 'out', 'manifest.json'), 'utf8');
    const manifest = JSON.parse(text) as Record<string, unknown>;
    // serde_json::to_string_pretty: two-space indentation, `"key": value`.
    expect(text).toBe(`${JSON.stringify(manifest, null, 2)}\n`);
    expect(text.startsWith('{\n  "version": 1,\n  "created_at": "')).toBe(true);
    expect(Object.keys(manifest).slice(0, 4)).toEqual(['version', 'created_at', 'oxios_version', 'sections']);
    // The types serde needs for BackupManifest { version: u32, created_at: String, oxios_version: String,
    // sections: Vec<BackupSection { name: String, entry_count: usize }> }.
    expect(manifest.version).toBe(1);
    expect(Number.isInteger(manifest.version)).toBe(true);
    expect(typeof manifest.created_at).toBe('string');
    expect(manifest.created_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/);
    const created = Date.parse(manifest.created_at as string);
    expect(created).toBeGreaterThanOrEqual(before - 1000);
    expect(created).toBeLessThanOrEqual(Date.now());
    expect(manifest.oxios_version).toBe(PACKAGE_VERSION);
    expect(Array.isArray(manifest.sections)).toBe(true);
    for (const section of manifest.sections as Array<Record<string, unknown>>) {
      expect(Object.keys(section)).toEqual(['name', 'entry_count']);
      expect(typeof section.name).toBe('string');
      expect(Number.isInteger(section.entry_count) && (section.entry_count as number) >= 0).toBe(true);
    }
    expect(manifest.sections).toEqual([
      { name: 'seeds', entry_count: 3 },
      { name: 'memory/facts', entry_count: 1 },
    ]);
    // Everything else lives under keys Oxios' reader ignores.
    expect(Object.keys(manifest)).toEqual([
      'version',
      'created_at',
      'oxios_version',
      'sections',
      'statesnap',
    ]);
    expectBackupConsistent(join(root, 'out'));
  });

  it('--app-version sets oxios_version', async () => {
    const root = tempDir();
    const run = await runCli([
      'backup',
      '--json',
      '--no-sync',
      '--app-version',
      '0.42.0-oxios',
      await store(root),
      join(root, 'out'),
    ]);
    expect(run.exitCode).toBe(0);
    const manifest = readManifestJson(join(root, 'out')) as {
      oxios_version: string;
      statesnap: { tool_version: string };
    };
    expect(manifest.oxios_version).toBe('0.42.0-oxios');
    expect(manifest.statesnap.tool_version).toBe(PACKAGE_VERSION);
    expectBackupConsistent(join(root, 'out'));
  });
});
