// Names that are not valid UTF-8 (`conv\xe9`, legal on Linux and made by real programs) and a valid name that
// collides with their U+FFFD rendering: backed up, verified, inspected and restored byte for byte, and recorded
// losslessly in the index (`path_b64`); hand-made spellings of such paths are refused.

import { lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { backup, restore, verify } from '../dist/src/index.js';
import { expectBackupConsistent, expectOneLineError, readBackupIndex } from './helpers/backup.js';
import {
  type HandEntry,
  restoreSiblings,
  sha256,
  writeHandBackup,
  writeOxiosManifest,
} from './helpers/restore.js';
import {
  cleanup,
  filterPrint,
  fingerprintTree,
  pathKey,
  runCli,
  type TreePrint,
  tempDir,
} from './helpers/tree.js';

afterEach(cleanup);

const LATIN1 = Buffer.from('conv\xe9.json', 'latin1'); // é in Latin-1: one byte, 0xE9, not UTF-8
const REPLACEMENT = 'conv\uFFFD.json'; // valid UTF-8 (EF BF BD): what a string readdir shows LATIN1 as
const BAD_DIR = Buffer.from('d\xff', 'latin1');
const BAD_FILE = Buffer.from('x\xe9', 'latin1');
const LINK = Buffer.from('link\xe9', 'latin1');
const LINK_KEY = pathKey(Buffer.from(`seeds/${LINK.toString('latin1')}`, 'latin1'));

/** A store's fingerprint without its symlink, which a backup lists but never copies. */
function withoutLink(print: TreePrint): TreePrint {
  return filterPrint(print, (rel) => rel !== LINK_KEY);
}

/** `root` and path segments (strings or raw bytes) as one path, as fs takes it. */
function at(root: string, ...segments: Array<string | Buffer>): Buffer {
  const parts: Buffer[] = [Buffer.from(root)];
  for (const segment of segments) parts.push(Buffer.from('/'), Buffer.from(segment));
  return Buffer.concat(parts);
}

/** A store whose names stress the encoding: two that render alike, a non-UTF-8 directory, a link. */
function makeStore(root: string): string {
  const store = join(root, 'store');
  mkdirSync(at(store, 'seeds'), { recursive: true });
  writeFileSync(at(store, 'seeds', LATIN1), 'the Latin-1 name');
  writeFileSync(at(store, 'seeds', REPLACEMENT), 'the U+FFFD name');
  writeFileSync(at(store, 'seeds', 'plain.json'), 'plain');
  mkdirSync(at(store, BAD_DIR, 'sub'), { recursive: true });
  writeFileSync(at(store, BAD_DIR, BAD_FILE), 'inside a non-UTF-8 directory');
  writeFileSync(at(store, BAD_DIR, 'sub', 'deep.json'), 'deep');
  symlinkSync('plain.json', at(store, 'seeds', LINK));
  return store;
}

describe('names that are not valid UTF-8', () => {
  it('are backed up byte for byte, even with --on-file-error abort, beside a name that renders alike', async () => {
    const root = tempDir();
    const store = makeStore(root);
    const dest = join(root, 'backup');
    const run = await runCli(['backup', '--on-file-error', 'abort', '--json', store, dest]);
    expect({ exitCode: run.exitCode, stderr: run.stderr }).toEqual({ exitCode: 0, stderr: '' });
    const result = JSON.parse(run.stdout);
    expect(result).toMatchObject({ files: 5, dirs: 3, warnings: { count: 0 }, skippedEntries: { count: 1 } });
    // The index: raw bytes for the names that are not UTF-8, text for the one that only looks like them.
    const index = readBackupIndex(dest);
    const b64 = (...segments: Array<string | Buffer>) =>
      at('', ...segments)
        .subarray(1)
        .toString('base64');
    expect(
      index
        .filter((line) => line.path_b64 !== undefined)
        .map((line) => line.path_b64)
        .sort(),
    ).toEqual(
      [
        b64('seeds', LATIN1),
        b64('seeds', LINK),
        b64(BAD_DIR),
        b64(BAD_DIR, BAD_FILE),
        b64(BAD_DIR, 'sub'),
        b64(BAD_DIR, 'sub', 'deep.json'),
      ].sort(),
    );
    for (const line of index)
      expect(line.path === undefined || line.path.isWellFormed(), line.path).toBe(true);
    expect(index.find((line) => line.path === `seeds/${REPLACEMENT}`)).toMatchObject({
      type: 'file',
      size: 15,
    });
    expectBackupConsistent(dest);
    const ownFiles = (rel: string) => rel === 'manifest.json' || rel.startsWith('.statesnap');
    expect(fingerprintTree(dest, { exclude: ownFiles })).toEqual(withoutLink(fingerprintTree(store)));
    expect(readFileSync(at(dest, 'seeds', LATIN1), 'utf8')).toBe('the Latin-1 name');
    expect(readFileSync(at(dest, 'seeds', REPLACEMENT), 'utf8')).toBe('the U+FFFD name');
  });

  it('are restored byte for byte in replace and merge mode, and verify and inspect handle them', async () => {
    const root = tempDir();
    const store = makeStore(root);
    const dest = join(root, 'backup');
    await backup({ source: store, dest, sync: false });
    expect(await verify({ backup: dest })).toMatchObject({ ok: true, files: 5, dirs: 3 });
    const inspected = await runCli(['inspect', '--json', dest]);
    expect(inspected.exitCode).toBe(0);
    expect(JSON.parse(inspected.stdout)).toMatchObject({ files: 5, dirs: 3, format: 2 });
    const expected = withoutLink(fingerprintTree(store));

    const replaced = join(root, 'replaced');
    await restore({ backup: dest, target: replaced, sync: false });
    expect(fingerprintTree(replaced)).toEqual(expected);

    // Merge over a target that has an older copy of the Latin-1 file and a file of its own.
    const merged = join(root, 'merged');
    mkdirSync(at(merged, 'seeds'), { recursive: true });
    writeFileSync(at(merged, 'seeds', LATIN1), 'an older Latin-1 file');
    writeFileSync(at(merged, 'seeds', 'own.json'), 'only the target has it');
    await restore({ backup: dest, target: merged, mode: 'merge', sync: false });
    expect(fingerprintTree(merged, { exclude: (rel) => rel === 'seeds/own.json' })).toEqual(expected);
    expect(readFileSync(at(merged, 'seeds', 'own.json'), 'utf8')).toBe('only the target has it');
    expect(
      readdirSync(at(merged, 'seeds'), { encoding: 'buffer' })
        .map((name) => name.toString('hex'))
        .sort(),
    ).toEqual(
      [LATIN1, Buffer.from(REPLACEMENT), Buffer.from('own.json'), Buffer.from('plain.json')]
        .map((name) => name.toString('hex'))
        .sort(),
    );
  });

  it('a backup or restored target holding them is removed whole when replaced (--force, --no-keep)', async () => {
    const root = tempDir();
    const store = makeStore(root);
    const dest = join(root, 'backup');
    await backup({ source: store, dest, sync: false });
    const again = await backup({ source: store, dest, force: true, sync: false });
    expect(again.replacedExisting).toBe(true);
    const target = join(root, 'target');
    await restore({ backup: dest, target, sync: false });
    await restore({ backup: dest, target, keep: false, sync: false });
    // Nothing is left beside either: the replaced backup and the rollback copy were removed, names and all.
    expect(readdirSync(root).sort()).toEqual(['backup', 'store', 'target']);
    expect(fingerprintTree(target)).toEqual(withoutLink(fingerprintTree(store)));
  });

  it('a dry run counts the files it would replace by their bytes, so the look-alikes are told apart', async () => {
    const root = tempDir();
    const store = makeStore(root);
    const dest = join(root, 'backup');
    await backup({ source: store, dest, sync: false });
    const target = join(root, 'target');
    mkdirSync(at(target, 'seeds'), { recursive: true });
    writeFileSync(at(target, 'seeds', LATIN1), 'an older Latin-1 file');
    for (const mode of ['replace', 'merge'] as const) {
      const plan = await restore({ backup: dest, target, mode, dryRun: true });
      expect(plan.filesReplaced, mode).toBe(1);
    }
  });

  it('verify reads each of the look-alike files itself: a change to one is reported for that one only', async () => {
    const root = tempDir();
    const store = makeStore(root);
    const dest = join(root, 'backup');
    await backup({ source: store, dest, sync: false });
    writeFileSync(at(dest, 'seeds', LATIN1), 'the Latin-1 nam!'); // same size, other content
    writeFileSync(at(dest, BAD_DIR, Buffer.from('extra\xff', 'latin1')), 'not in the index');
    const result = await verify({ backup: dest });
    expect(result.ok).toBe(false);
    expect(result.problems.list.map((p) => p.problem).sort()).toEqual(['corrupt', 'extra']);
    // The corrupt one is the Latin-1 file (escaped, so it renders as U+FFFD in text); the valid U+FFFD file
    // and everything else verified.
    expect(result.files).toBe(4);
    const corrupt = result.problems.list.find((p) => p.problem === 'corrupt')!;
    expect(corrupt.path).not.toBe(join(dest, 'seeds', REPLACEMENT));
    expect(corrupt.path.startsWith(join(dest, 'seeds', 'conv'))).toBe(true);
  });

  it('an Oxios tree holding them is inspected and restored byte for byte', async () => {
    const root = tempDir();
    const tree = join(root, 'oxios');
    mkdirSync(at(tree, 'seeds'), { recursive: true });
    writeFileSync(at(tree, 'seeds', LATIN1), 'Latin-1');
    writeFileSync(at(tree, 'seeds', REPLACEMENT), 'U+FFFD');
    writeOxiosManifest(tree, [{ name: 'seeds', entry_count: 2 }]);
    const inspected = await runCli(['inspect', '--json', tree]);
    expect(JSON.parse(inspected.stdout)).toMatchObject({ files: 2, totalsFrom: 'walk', format: null });
    const target = join(root, 'target');
    const result = await restore({ backup: tree, target, sync: false });
    expect(result).toMatchObject({ kind: 'oxios', files: 2, exitCode: 0 });
    expect(readFileSync(at(target, 'seeds', LATIN1), 'utf8')).toBe('Latin-1');
    expect(readFileSync(at(target, 'seeds', REPLACEMENT), 'utf8')).toBe('U+FFFD');
  });
});

describe('hand-made spellings of paths are refused before anything is created (ERR_INDEX_INVALID)', () => {
  const fileLine = (where: object) =>
    JSON.stringify({
      ...where,
      type: 'file',
      size: 2,
      mode: 0o644,
      mtime_ns: '1',
      ctime_ns: '1',
      ino: '7',
      uid: 0,
      gid: 0,
      sha256: sha256('{}'),
    });
  const cases: Array<[string, object]> = [
    ['a lone surrogate in path (a raw byte is path_b64’s to spell)', { path: 'seeds/conv\udce9.json' }],
    ['path_b64 holding a UTF-8 path', { path_b64: Buffer.from('seeds/x.json').toString('base64') }],
    [
      'both path and path_b64',
      { path: 'seeds/x.json', path_b64: Buffer.from('seeds/x\xe9', 'latin1').toString('base64') },
    ],
    ['neither path nor path_b64', {}],
    ['path_b64 climbing out', { path_b64: Buffer.from('seeds/../../x\xe9', 'latin1').toString('base64') }],
    ['path_b64 absolute', { path_b64: Buffer.from('/etc/x\xe9', 'latin1').toString('base64') }],
    ['path_b64 that is not canonical base64', { path_b64: 'c2VlZHMveOk' }],
  ];
  for (const [what, where] of cases) {
    it(`${what}`, async () => {
      const root = tempDir();
      const backupDir = join(root, 'backup');
      const entries: HandEntry[] = [
        { type: 'dir', path: 'seeds' },
        { type: 'file', path: 'seeds/ok.json', content: '{}' },
        { type: 'raw', line: fileLine(where) },
      ];
      writeHandBackup(backupDir, entries, { format: 2 });
      const target = join(root, 'target');
      mkdirSync(target);
      writeFileSync(join(target, 'live.json'), 'live');
      const before = fingerprintTree(target);
      const run = await runCli(['restore', backupDir, target]);
      expect(run.exitCode).toBe(1);
      expectOneLineError(run, 'ERR_INDEX_INVALID');
      expect(fingerprintTree(target)).toEqual(before);
      expect(restoreSiblings(target)).toEqual([]);
      expect(lstatSync(target).isDirectory()).toBe(true);
    });
  }
});
