// The format of statesnap's part of a backup (docs/format.md): what a new backup records (format 2), that a
// backup in the older format still reads, and that a newer format is refused as made by a newer statesnap.

import { lstatSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readIndex } from '../dist/src/format/index-reader.js';
import { backup, inspect, restore, verify } from '../dist/src/index.js';
import { expectOneLineError, readBackupIndex, readManifestJson } from './helpers/backup.js';
import { type HandEntry, restoreSiblings, sha256, writeHandBackup } from './helpers/restore.js';
import { cleanup, createTree, file, fingerprintTree, runCli, tempDir } from './helpers/tree.js';

afterEach(cleanup);

describe('what a backup records (format 2)', () => {
  it('the format, the root, the start, and per entry its owner and (files) the source inode and ctime', async () => {
    const root = tempDir();
    const store = join(root, 'store');
    await createTree(store, { seeds: { 'a.json': file('{"a":1}') }, 'top.md': file('# top') });
    const dest = join(root, 'backup');
    const before = BigInt(Date.now()) * 1_000_000n;
    await backup({ source: store, dest, sync: false });
    const extras = readManifestJson(dest).statesnap as Record<string, unknown>;
    const rootStats = lstatSync(store, { bigint: true });
    expect(extras).toMatchObject({
      format: 2,
      root: {
        mode: Number(rootStats.mode & 0o7777n),
        mtime_ns: rootStats.mtimeNs.toString(),
        uid: Number(rootStats.uid),
        gid: Number(rootStats.gid),
      },
    });
    const started = BigInt(extras.started_at_ns as string);
    expect(started >= before - 1_000_000n && started <= BigInt(Date.now()) * 1_000_000n).toBe(true);
    expect(readManifestJson(dest).version).toBe(1);
    for (const line of readBackupIndex(dest)) {
      const stats = lstatSync(join(store, line.path), { bigint: true });
      const owner = { uid: Number(stats.uid), gid: Number(stats.gid) };
      if (line.type === 'file') {
        expect(line, line.path).toMatchObject({
          ...owner,
          ino: stats.ino.toString(),
          ctime_ns: stats.ctimeNs.toString(),
          mtime_ns: stats.mtimeNs.toString(),
        });
      } else {
        expect(line, line.path).toMatchObject(owner);
        expect(line.ino).toBeUndefined();
      }
    }
    expect((await inspect({ backup: dest })).format).toBe(2);
  });
});

describe('a backup in format 1 (made before format 2)', () => {
  it('restores, verifies and inspects as before', async () => {
    const root = tempDir();
    const backupDir = join(root, 'backup');
    writeHandBackup(backupDir, [
      { type: 'dir', path: 'seeds' },
      { type: 'file', path: 'seeds/a.json', content: '{"a":1}' },
    ]);
    expect((readManifestJson(backupDir).statesnap as Record<string, unknown>).format).toBeUndefined();
    expect(await verify({ backup: backupDir })).toMatchObject({ ok: true, files: 1 });
    expect((await inspect({ backup: backupDir })).format).toBe(1);
    const target = join(root, 'target');
    expect(await restore({ backup: backupDir, target, sync: false })).toMatchObject({
      exitCode: 0,
      ownersRestored: false,
    });
    expect(readFileSync(join(target, 'seeds', 'a.json'), 'utf8')).toBe('{"a":1}');
  });
});

describe('a manifest or index in a format this statesnap does not read', () => {
  it('format 3 is refused as made by a newer statesnap (ERR_FORMAT_NEWER), by every command', async () => {
    const root = tempDir();
    const backupDir = join(root, 'backup');
    writeHandBackup(backupDir, [{ type: 'file', path: 'a.json', content: '{}' }], {
      format: 2,
      editManifest: (manifest) => {
        const extras = manifest.statesnap as Record<string, unknown>;
        extras.format = 3;
        extras.tool_version = '9.0.0';
        // A newer format may change anything in the block: the refusal comes before its shape is checked.
        extras.index = { path: 'index.v3', chunks: 4 };
      },
    });
    const target = join(root, 'target');
    mkdirSync(target);
    writeFileSync(join(target, 'live.json'), 'live');
    const before = fingerprintTree(target);
    for (const args of [
      ['restore', backupDir, target],
      ['verify', backupDir],
      ['inspect', backupDir],
    ]) {
      const run = await runCli(args);
      expectOneLineError(run, 'ERR_FORMAT_NEWER');
      expect(run.exitCode).toBe(1);
      expect(run.stderr).toContain('made by a newer statesnap "9.0.0" (format 3)');
    }
    await expect(restore({ backup: backupDir, target })).rejects.toMatchObject({ code: 'ERR_FORMAT_NEWER' });
    expect(fingerprintTree(target)).toEqual(before);
    expect(restoreSiblings(target)).toEqual([]);
  });

  const badManifests: Array<[string, (extras: Record<string, unknown>) => void]> = [
    ['format 0', (extras) => (extras.format = 0)],
    ['format "2" (a string)', (extras) => (extras.format = '2')],
    ['format 2 without the root record', (extras) => delete extras.root],
    ['format 2 without started_at_ns', (extras) => delete extras.started_at_ns],
    [
      'a root uid of 2^32 - 1 (chown’s "no change")',
      (extras) => ((extras.root as { uid: number }).uid = 0xffffffff),
    ],
  ];
  for (const [what, edit] of badManifests) {
    it(`${what}: ERR_MANIFEST_INVALID`, async () => {
      const root = tempDir();
      const backupDir = join(root, 'backup');
      writeHandBackup(backupDir, [{ type: 'file', path: 'a.json', content: '{}' }], {
        format: 2,
        editManifest: (manifest) => edit(manifest.statesnap as Record<string, unknown>),
      });
      await expect(inspect({ backup: backupDir })).rejects.toMatchObject({ code: 'ERR_MANIFEST_INVALID' });
    });
  }

  const fileLine = { type: 'file', size: 2, mode: 0o644, mtime_ns: '1', sha256: sha256('{}') };
  const identity = { ctime_ns: '1', ino: '9', uid: 0, gid: 0 };
  const badLines: Array<[string, 1 | 2, object]> = [
    ['a format-1 line with format-2 fields', 1, { path: 'b.json', ...fileLine, ...identity }],
    ['a format-2 file line without an owner', 2, { path: 'b.json', ...fileLine, ctime_ns: '1', ino: '9' }],
    [
      'a format-2 file line without its inode',
      2,
      { path: 'b.json', ...fileLine, ctime_ns: '1', uid: 0, gid: 0 },
    ],
    ['a format-2 directory line without an owner', 2, { path: 'd', type: 'dir', mode: 0o755, mtime_ns: '1' }],
    ['a uid of 2^32 - 1', 2, { path: 'b.json', ...fileLine, ...identity, uid: 0xffffffff }],
    ['a negative gid', 2, { path: 'b.json', ...fileLine, ...identity, gid: -1 }],
    ['an inode past 2^64', 2, { path: 'b.json', ...fileLine, ...identity, ino: '18446744073709551616' }],
    ['linked: false', 2, { path: 'b.json', ...fileLine, ...identity, linked: false }],
  ];
  for (const [what, format, line] of badLines) {
    it(`${what}: ERR_INDEX_INVALID before the target changes`, async () => {
      const root = tempDir();
      const backupDir = join(root, 'backup');
      const entries: HandEntry[] = [
        { type: 'file', path: 'a.json', content: '{}' },
        { type: 'raw', line: JSON.stringify(line) },
      ];
      writeHandBackup(backupDir, entries, { format });
      const target = join(root, 'target');
      await expect(restore({ backup: backupDir, target })).rejects.toMatchObject({
        code: 'ERR_INDEX_INVALID',
      });
      expect(() => lstatSync(target)).toThrow();
      expect(restoreSiblings(target)).toEqual([]);
    });
  }

  it('a format-2 line with the largest values each field allows is read', async () => {
    const root = tempDir();
    const backupDir = join(root, 'backup');
    const line = {
      path: 'b.json',
      ...fileLine,
      mtime_ns: '17179869183999999999',
      ctime_ns: '-17179869183999999999',
      ino: '18446744073709551615',
      uid: 0xfffffffe,
      gid: 0xfffffffe,
      linked: true,
    };
    writeHandBackup(backupDir, [{ type: 'raw', line: JSON.stringify(line) }], {
      format: 2,
      editManifest: (manifest) => {
        (manifest.statesnap as Record<string, unknown>).totals = { files: 1, dirs: 0, bytes: 2 };
      },
    });
    writeFileSync(join(backupDir, 'b.json'), '{}');
    expect(await verify({ backup: backupDir })).toMatchObject({ ok: true, files: 1 });
  });
});

describe('the index reader’s fast path for format-2 file lines', () => {
  const valid = {
    path: 'b.json',
    type: 'file',
    size: 2,
    mode: 0o644,
    mtime_ns: '1',
    ctime_ns: '1',
    ino: '9',
    uid: 0,
    gid: 0,
    sha256: sha256('{}'),
  };
  // Each field broken every way its schema refuses, plus keys added and removed: the fast path must pass on
  // every one of them to the schema, which refuses it.
  const broken: Array<[string, Record<string, unknown>]> = [
    ...['size', 'mode', 'uid', 'gid'].flatMap(
      (key): Array<[string, Record<string, unknown>]> => [
        [`${key}: -1`, { [key]: -1 }],
        [`${key}: 1.5`, { [key]: 1.5 }],
        [`${key}: "1"`, { [key]: '1' }],
        [`${key}: null`, { [key]: null }],
      ],
    ),
    ['size: 2^53', { size: 2 ** 53 }],
    ['mode: 0o10000', { mode: 0o10000 }],
    ['uid: 2^32 - 1', { uid: 0xffffffff }],
    ...['mtime_ns', 'ctime_ns'].flatMap(
      (key): Array<[string, Record<string, unknown>]> => [
        [`${key}: 1 (a number)`, { [key]: 1 }],
        [`${key}: "1.5"`, { [key]: '1.5' }],
        [`${key}: "+1"`, { [key]: '+1' }],
        [`${key}: ""`, { [key]: '' }],
        [`${key}: 2^34 s`, { [key]: '17179869184000000000' }],
        [`${key}: -2^34 s`, { [key]: '-17179869184000000000' }],
        [`${key}: 21 digits`, { [key]: '100000000000000000000' }],
      ],
    ),
    ['ino: "-1"', { ino: '-1' }],
    ['ino: 2^64', { ino: '18446744073709551616' }],
    ['ino: 9 (a number)', { ino: 9 }],
    ['sha256 in upper case', { sha256: sha256('{}').toUpperCase() }],
    ['sha256 of 63 digits', { sha256: sha256('{}').slice(1) }],
    ['type: "dir"', { type: 'dir' }],
    ['path: ""', { path: '' }],
    ['path: "../b.json"', { path: '../b.json' }],
    ['path: "/b.json"', { path: '/b.json' }],
    ['path: "a//b.json"', { path: 'a//b.json' }],
    ['path: "a\\\\b.json"', { path: 'a\\b.json' }],
    ['path with a lone surrogate', { path: 'b\udce9.json' }],
    ['path: 7', { path: 7 }],
    ['path and path_b64', { path_b64: Buffer.from('b.json').toString('base64') }],
    ['linked: false', { linked: false }],
    ['linked: 1', { linked: 1 }],
    ['an extra key', { extra: 1 }],
    ['an own __proto__ key', { ['__proto__']: { a: 1 } }],
  ];
  const missing = Object.keys(valid).map((key): [string, string] => [`without ${key}`, key]);

  it('refuses every line its schema refuses (ERR_INDEX_INVALID), and reads the valid one', async () => {
    const read = async (line: string) => {
      const backupDir = join(tempDir(), 'backup');
      writeHandBackup(backupDir, [{ type: 'raw', line }], {
        format: 2,
        editManifest: (manifest) => {
          (manifest.statesnap as Record<string, unknown>).totals = { files: 1, dirs: 0, bytes: 2 };
        },
      });
      const { index } = readManifestJson(backupDir).statesnap as {
        index: { entries: number; sha256: string };
      };
      const entries = [];
      for await (const entry of readIndex(
        backupDir,
        { format: 2, ...index },
        { refuseCaseCollisions: false },
      ))
        entries.push(entry);
      return entries;
    };
    await expect(read(JSON.stringify(valid))).resolves.toEqual([valid]);
    await expect(read(JSON.stringify({ ...valid, linked: true }))).resolves.toEqual([
      { ...valid, linked: true },
    ]);
    for (const [what, change] of broken) {
      // JSON.stringify drops an own __proto__ set through a literal's computed key: spelt out instead.
      const line =
        '__proto__' in change && Object.hasOwn(change, '__proto__')
          ? `${JSON.stringify(valid).slice(0, -1)},"__proto__":{"a":1}}`
          : JSON.stringify({ ...valid, ...change });
      await expect(read(line), what).rejects.toMatchObject({ code: 'ERR_INDEX_INVALID' });
    }
    for (const [what, key] of missing) {
      const line = { ...valid } as Record<string, unknown>;
      delete line[key];
      await expect(read(JSON.stringify(line)), what).rejects.toMatchObject({ code: 'ERR_INDEX_INVALID' });
    }
  });
});
