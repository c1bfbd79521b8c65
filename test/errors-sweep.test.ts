// The CLI through many ways to fail, as root and as an unprivileged user (uid 65534; root's permission bypass
// hides a whole class of failures): every one must end the same way. The documented exit code, exactly one
// stderr line `statesnap: error: … [ERR_…]` that names the path concerned (a long one shortened), nothing on
// stdout, no "internal error", no stack trace, nothing created or changed; with --json, the one failure
// document whose `error.path` is the whole path.

import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { walk } from '../dist/src/core/walk.js';
import { backup } from '../dist/src/index.js';
import { writeHandBackup } from './helpers/restore.js';
import { CLI, type CliRun, cleanup, createTree, file, isRoot, runProgram, tempDir } from './helpers/tree.js';

const UNPRIVILEGED = ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all'];

/** Who runs the CLI: root (as tests run here), or uid 65534 through setpriv; a non-root run is just itself. */
type User = 'root' | 'unprivileged';

function runAs(user: User, args: readonly string[], shellPrefix = ''): Promise<CliRun> {
  const node = [process.execPath, CLI, ...args];
  const command = user === 'unprivileged' && isRoot ? ['setpriv', ...UNPRIVILEGED, ...node] : node;
  // A shell only when a limit must be set first (`ulimit -n 64 && exec …`).
  const [file, ...rest] =
    shellPrefix === '' ? command : ['sh', '-c', `${shellPrefix} exec "$@"`, 'sh', ...command];
  return runProgram(file!, rest);
}

const USERS: User[] = isRoot ? ['root', 'unprivileged'] : ['unprivileged'];
const setprivWorks = !isRoot || spawnSync('setpriv', [...UNPRIVILEGED, 'true']).status === 0;

/**
 * Every path below `root` that this process can list, sorted: equal listings before and after a run mean it
 * created nothing. (Run as uid 65534 by scripts/test-unprivileged.sh, the folders made unreadable stay shut.)
 */
function listing(root: string, rel = ''): string[] {
  let names: string[];
  try {
    names = readdirSync(join(root, rel)).sort();
  } catch {
    return [];
  }
  return names.flatMap((name) => {
    const child = rel === '' ? name : `${rel}/${name}`;
    return [child, ...listing(root, child)];
  });
}

interface World {
  root: string;
  src: string;
  bk: string;
  aFile: string;
  /** A directory every user may enter but only root may write. */
  readOnly: string;
  /** A directory only root may enter. */
  secret: string;
  long: string;
  /** 3,000 files: enough batches to want many threads. */
  many: string;
}

let world: World;

/** `bad/<name>`: a copy of the good backup with `text` as its manifest. */
function badManifest(root: string, name: string, text: string): void {
  const dir = join(root, 'bad', name);
  spawnSync('cp', ['-a', join(root, 'bk'), dir]);
  writeFileSync(join(dir, 'manifest.json'), text);
}

beforeAll(async () => {
  const root = tempDir('statesnap-sweep-');
  const src = join(root, 'src');
  await createTree(src, {
    seeds: { 'a.json': file('{"a":1}') },
    memory: { facts: { 'f.json': file('{}') } },
  });
  const bk = join(root, 'bk');
  await backup({ source: src, dest: bk, sync: false });
  writeFileSync(join(root, 'a-file'), 'not a directory');
  mkdirSync(join(root, 'read-only'));
  mkdirSync(join(root, 'bad'));
  await createTree(join(root, 'secret'), { 'x.json': file('root only') });
  world = {
    root,
    src,
    bk,
    aFile: join(root, 'a-file'),
    readOnly: join(root, 'read-only'),
    secret: join(root, 'secret'),
    long: join(root, 'n'.repeat(100_000)),
    many: join(root, 'many'),
  };
  for (let folder = 0; folder < 10; folder++) {
    mkdirSync(join(root, 'many', `d${folder}`), { recursive: true });
    for (let n = 0; n < 300; n++) writeFileSync(join(root, 'many', `d${folder}`, `f${n}.json`), '{}');
  }
  const manifest = readFileSync(join(bk, 'manifest.json'), 'utf8');
  badManifest(root, 'not-json', manifest.slice(0, 40));
  badManifest(root, 'version-2', manifest.replace('"version": 1', '"version": 2'));
  badManifest(
    root,
    'version-huge',
    manifest.replace('"version": 1', `"version": "${'9'.repeat(1_000_000)}"`),
  );
  writeHandBackup(join(root, 'bad', 'escaping-path'), [{ type: 'file', path: '../evil.json', content: 'x' }]);
  writeHandBackup(join(root, 'bad', 'empty'), [{ type: 'dir', path: 'seeds' }]);
  writeHandBackup(join(root, 'bad', 'corrupt'), [
    { type: 'dir', path: 'seeds' },
    { type: 'file', path: 'seeds/a.json', content: 'x', sha256: '0'.repeat(64) },
  ]);
  writeHandBackup(join(root, 'bad', 'absurd-mtime'), [
    { type: 'dir', path: 'seeds' },
    { type: 'file', path: 'seeds/a.json', content: 'x', mtimeNs: '9'.repeat(30) },
  ]);
  writeHandBackup(join(root, 'bad', 'long-name'), [
    { type: 'file', path: 'l'.repeat(50_000), content: 'x', onDisk: false },
  ]);
  writeHandBackup(join(root, 'bad', 'unreadable-file'), [
    { type: 'dir', path: 'seeds' },
    { type: 'file', path: 'seeds/a.json', content: 'x' },
  ]);
  mkdirSync(join(root, 'journalled'));
  writeFileSync(join(root, 'journalled.restore-journal'), 'not a journal');
  mkdirSync(join(root, 'journal-root-only'));
  writeFileSync(join(root, 'journal-root-only.restore-journal'), 'not a journal');
  // Everything readable by uid 65534 and the root folder writable by it; then the places it must not reach,
  // shut to their owner too (the tests also run as uid 65534 itself, owning what they made).
  spawnSync('chmod', ['-R', 'a+rX', root]);
  chmodSync(root, 0o777);
  chmodSync(join(root, 'read-only'), 0o555);
  chmodSync(join(root, 'secret'), 0o000);
  chmodSync(join(root, 'bad', 'unreadable-file', 'seeds', 'a.json'), 0o000);
  chmodSync(join(root, 'journal-root-only.restore-journal'), 0o000);
}, 60_000);

afterAll(cleanup);

interface Case {
  name: string;
  args: () => string[];
  code: string;
  exitCode: number;
  /** The path the error must name (and `error.path` must be). */
  path: () => string;
  /** Only where root's permission bypass does not make the failure disappear. */
  unprivilegedOnly?: boolean;
}

const w = () => world;
const CASES: Case[] = [
  // backup
  {
    name: 'backup: the source does not exist',
    args: () => ['backup', join(w().root, 'nope'), join(w().root, 'out')],
    code: 'ERR_SOURCE_UNREADABLE',
    exitCode: 1,
    path: () => join(w().root, 'nope'),
  },
  {
    name: 'backup: the source is a file',
    args: () => ['backup', w().aFile, join(w().root, 'out')],
    code: 'ERR_SOURCE_NOT_DIRECTORY',
    exitCode: 1,
    path: () => w().aFile,
  },
  {
    name: 'backup: the source cannot be read (EACCES)',
    args: () => ['backup', w().secret, join(w().root, 'out')],
    code: 'ERR_SOURCE_UNREADABLE',
    exitCode: 1,
    path: () => w().secret,
    unprivilegedOnly: true,
  },
  {
    name: "backup: the destination's parent does not exist",
    args: () => ['backup', w().src, join(w().root, 'no/such/out')],
    code: 'ERR_DEST_WRITE',
    exitCode: 1,
    path: () => join(w().root, 'no/such/out'),
  },
  {
    name: "backup: the destination's parent is a file (ENOTDIR)",
    args: () => ['backup', w().src, join(w().aFile, 'out')],
    code: 'ERR_DEST_WRITE',
    exitCode: 1,
    path: () => join(w().aFile, 'out'),
  },
  {
    name: 'backup: the destination is in a place this user cannot reach (/root/bk, EACCES)',
    args: () => ['backup', w().src, '/root/statesnap-sweep-bk'],
    code: 'ERR_DEST_WRITE',
    exitCode: 1,
    path: () => '/root/statesnap-sweep-bk',
    unprivilegedOnly: true,
  },
  {
    name: 'backup: the destination is in a folder this user cannot write',
    args: () => ['backup', w().src, join(w().readOnly, 'out')],
    code: 'ERR_DEST_WRITE',
    exitCode: 1,
    path: () => join(w().readOnly, 'out'),
    unprivilegedOnly: true,
  },
  {
    name: 'backup: the destination exists',
    args: () => ['backup', w().src, w().bk],
    code: 'ERR_DEST_EXISTS',
    exitCode: 1,
    path: () => w().bk,
  },
  {
    name: 'backup: the destination is inside the source',
    args: () => ['backup', w().src, join(w().src, 'out')],
    code: 'ERR_DEST_OVERLAPS_SOURCE',
    exitCode: 2,
    path: () => join(w().src, 'out'),
  },
  {
    name: 'backup: a 100 KB destination name (ENAMETOOLONG)',
    args: () => ['backup', w().src, w().long],
    code: 'ERR_DEST_WRITE',
    exitCode: 1,
    path: () => w().long,
  },
  // restore
  {
    name: 'restore: the backup does not exist',
    args: () => ['restore', join(w().root, 'nope'), join(w().root, 't')],
    code: 'ERR_MANIFEST_MISSING',
    exitCode: 1,
    path: () => join(w().root, 'nope', 'manifest.json'),
  },
  {
    name: 'restore: a manifest that is not JSON',
    args: () => ['restore', join(w().root, 'bad/not-json'), join(w().root, 't')],
    code: 'ERR_MANIFEST_INVALID',
    exitCode: 1,
    path: () => join(w().root, 'bad/not-json/manifest.json'),
  },
  {
    name: 'restore: a version-2 manifest',
    args: () => ['restore', join(w().root, 'bad/version-2'), join(w().root, 't')],
    code: 'ERR_MANIFEST_VERSION',
    exitCode: 1,
    path: () => join(w().root, 'bad/version-2/manifest.json'),
  },
  {
    name: 'restore: a manifest whose version is a 1 MB string',
    args: () => ['restore', join(w().root, 'bad/version-huge'), join(w().root, 't')],
    code: 'ERR_MANIFEST_VERSION',
    exitCode: 1,
    path: () => join(w().root, 'bad/version-huge/manifest.json'),
  },
  {
    name: 'restore: an index path that climbs out',
    args: () => ['restore', join(w().root, 'bad/escaping-path'), join(w().root, 't')],
    code: 'ERR_INDEX_INVALID',
    exitCode: 1,
    path: () => join(w().root, 'bad/escaping-path/.statesnap/index.jsonl'),
  },
  {
    name: 'restore: a backup with no files',
    args: () => ['restore', join(w().root, 'bad/empty'), join(w().root, 't')],
    code: 'ERR_BACKUP_EMPTY',
    exitCode: 1,
    path: () => join(w().root, 'bad/empty'),
  },
  {
    name: 'restore: a file whose hash differs from the index',
    args: () => ['restore', join(w().root, 'bad/corrupt'), join(w().root, 't')],
    code: 'ERR_BACKUP_CORRUPT',
    exitCode: 1,
    path: () => join(w().root, 'bad/corrupt/seeds/a.json'),
  },
  {
    name: 'restore: an index entry with a 50,000-character name',
    args: () => ['restore', join(w().root, 'bad/long-name'), join(w().root, 't')],
    code: 'ERR_FILE_UNREADABLE',
    exitCode: 1,
    path: () => join(w().root, 'bad/long-name', 'l'.repeat(50_000)),
  },
  {
    name: 'restore: a backup file this user cannot read',
    args: () => ['restore', join(w().root, 'bad/unreadable-file'), join(w().root, 't')],
    code: 'ERR_FILE_UNREADABLE',
    exitCode: 1,
    path: () => join(w().root, 'bad/unreadable-file/seeds/a.json'),
    unprivilegedOnly: true,
  },
  {
    name: 'restore: the target is inside the backup',
    args: () => ['restore', w().bk, join(w().bk, 'inside')],
    code: 'ERR_TARGET_OVERLAPS_BACKUP',
    exitCode: 2,
    path: () => join(w().bk, 'inside'),
  },
  {
    name: 'restore: the target contains the backup',
    args: () => ['restore', w().bk, w().root],
    code: 'ERR_TARGET_OVERLAPS_BACKUP',
    exitCode: 2,
    path: () => w().root,
  },
  {
    name: 'restore: the target is a file',
    args: () => ['restore', w().bk, w().aFile],
    code: 'ERR_TARGET_INVALID',
    exitCode: 1,
    path: () => w().aFile,
  },
  {
    name: "restore: the target's parent is a file",
    args: () => ['restore', w().bk, join(w().aFile, 't')],
    code: 'ERR_TARGET_INVALID',
    exitCode: 1,
    path: () => join(w().aFile, 't'),
  },
  {
    name: 'restore: the target is in a place this user cannot reach (/root, EACCES)',
    args: () => ['restore', w().bk, '/root/statesnap-sweep-target'],
    code: 'ERR_TARGET_INVALID',
    exitCode: 1,
    path: () => '/root/statesnap-sweep-target',
    unprivilegedOnly: true,
  },
  {
    name: 'restore: the target is in a folder this user cannot write',
    args: () => ['restore', w().bk, join(w().readOnly, 't')],
    code: 'ERR_TARGET_WRITE',
    exitCode: 1,
    // The first thing a restore writes is its lock beside the target.
    path: () => `${join(w().readOnly, 't')}.restore-journal`,
    unprivilegedOnly: true,
  },
  // inspect, recover
  {
    name: 'inspect: the backup does not exist',
    args: () => ['inspect', join(w().root, 'nope')],
    code: 'ERR_MANIFEST_MISSING',
    exitCode: 1,
    path: () => join(w().root, 'nope', 'manifest.json'),
  },
  {
    name: 'inspect: a manifest whose version is a 1 MB string',
    args: () => ['inspect', join(w().root, 'bad/version-huge')],
    code: 'ERR_MANIFEST_VERSION',
    exitCode: 1,
    path: () => join(w().root, 'bad/version-huge/manifest.json'),
  },
  {
    name: 'recover: the target is in a place this user cannot reach (/root, EACCES)',
    args: () => ['recover', '/root/statesnap-sweep-target'],
    code: 'ERR_TARGET_INVALID',
    exitCode: 1,
    path: () => '/root/statesnap-sweep-target',
    unprivilegedOnly: true,
  },
  {
    name: 'recover: a restore journal that is not one',
    args: () => ['recover', join(w().root, 'journalled')],
    code: 'ERR_RECOVERY_NEEDED',
    exitCode: 1,
    path: () => join(w().root, 'journalled'),
  },
];

const ONE_ERROR_LINE = /^statesnap: error: .+ \[(ERR_[A-Z_]+)\]$/;

/** The one-line error every failure ends with, naming the path (its first 200 characters when long). */
function expectOneErrorLine(run: CliRun, expected: { code: string; path: string }): void {
  const lines = run.stderr.split('\n');
  expect(lines.at(-1), 'stderr ends with a newline').toBe('');
  expect(lines.slice(0, -1), 'exactly one line on stderr').toHaveLength(1);
  const line = lines[0]!;
  expect(line.length, 'a line a person can read').toBeLessThan(8_000);
  expect(ONE_ERROR_LINE.exec(line)?.[1]).toBe(expected.code);
  expect(line).not.toContain('internal error');
  expect(line).toContain(expected.path.length > 1000 ? expected.path.slice(0, 200) : expected.path);
}

describe.each(USERS)('as %s', (user) => {
  it.for(CASES)('$name', async (failure, ctx) => {
    if (user === 'root' && failure.unprivilegedOnly) return ctx.skip('root may do this');
    if (!setprivWorks) return ctx.skip('setpriv cannot drop to uid 65534 here');
    const before = listing(world.root);
    // One after the other: two restores of one target at once are refused (ERR_TARGET_BUSY), as they should be.
    const plain = await runAs(user, failure.args());
    const json = await runAs(user, ['--json', ...failure.args()]);
    const path = failure.path();
    expect(plain.exitCode, plain.stderr.slice(0, 2000)).toBe(failure.exitCode);
    expect(plain.stdout).toBe('');
    expectOneErrorLine(plain, { code: failure.code, path });
    expect(json.exitCode).toBe(failure.exitCode);
    expectOneErrorLine(json, { code: failure.code, path });
    const document = JSON.parse(json.stdout);
    expect(document).toEqual({
      command: failure.args()[0],
      error: { code: failure.code, message: expect.any(String), path },
      exitCode: failure.exitCode,
    });
    expect(document.error.message.length).toBeLessThan(8_000);
    expect(listing(world.root)).toEqual(before);
  });
});

describe('an index timestamp no filesystem can hold (30 digits of nanoseconds)', () => {
  // It once passed validation and failed at the first futimes as ERR_TARGET_WRITE, blaming the target.
  it('is refused while the index is validated (ERR_INDEX_INVALID), naming the index', async () => {
    const backupDir = join(world.root, 'bad/absurd-mtime');
    const run = await runAs(USERS[0]!, ['restore', backupDir, join(world.root, 't')]);
    expect(run.exitCode).toBe(1);
    expectOneErrorLine(run, { code: 'ERR_INDEX_INVALID', path: join(backupDir, '.statesnap/index.jsonl') });
  });
});

describe('a restore journal this user cannot read', () => {
  it('says what to do first, not only "run recover" (which would say the same again)', async (ctx) => {
    if (!setprivWorks) return ctx.skip('setpriv cannot drop to uid 65534 here');
    const target = join(world.root, 'journal-root-only');
    for (const command of [
      ['restore', world.bk, target],
      ['recover', target],
    ]) {
      const run = await runAs('unprivileged', command);
      expect(run.exitCode).toBe(1);
      expectOneErrorLine(run, { code: 'ERR_RECOVERY_NEEDED', path: target });
      expect(run.stderr).toContain('switch to the user who ran that restore');
    }
  });
});

describe('with `ulimit -n 64`', () => {
  it.each(USERS)('as %s: the CLI starts, inspects, backs up and restores', async (user) => {
    const limit = 'ulimit -n 64 &&';
    const inspected = await runAs(user, ['inspect', '--json', world.bk], limit);
    expect(inspected.stderr).toBe('');
    expect(inspected.exitCode).toBe(0);
    const dest = join(world.root, `limited-${user}`);
    const made = await runAs(user, ['backup', '--quiet', '--threads', '2', world.src, dest], limit);
    expect(made.stderr).toBe('');
    expect(made.exitCode).toBe(0);
    const restored = await runAs(user, ['restore', '--quiet', dest, `${dest}-restored`], limit);
    expect(restored.stderr).toBe('');
    expect(restored.exitCode).toBe(0);
  });

  // Which descriptor runs out first depends on timing; once, in a loaded CI run, the unprivileged case printed
  // something else than this one line (not reproduced in 60 runs since). A retry keeps a rare timing from
  // blocking a landing; the stderr in the message says what it was if it comes back.
  it.each(USERS)(
    'as %s: too few descriptors for the threads: ERR_SYSTEM_LIMIT, nothing left',
    { retry: 2 },
    async (user) => {
      const dest = join(world.root, `too-few-descriptors-${user}`);
      const before = listing(world.root);
      // 44 descriptors start the CLI (it needs about 36) but not enough threads for 3,000 files: a thread that
      // cannot start, or a worker's or the walk's open, runs out (which one depends on timing).
      const run = await runAs(user, ['backup', '--threads', '16', world.many, dest], 'ulimit -n 44 &&');
      expect(run.exitCode, run.stderr).toBe(1);
      expect(ONE_ERROR_LINE.exec(run.stderr.trimEnd())?.[1], run.stderr).toBe('ERR_SYSTEM_LIMIT');
      expect(listing(world.root)).toEqual(before);
    },
  );
});

describe('a tree that vanished after its paths were checked', () => {
  it('is blamed on the side it belongs to: the source (backup) or the backup (restore, verify)', async () => {
    const gone = join(world.root, 'vanished');
    const options = {
      isExcluded: () => false,
      reservedRootNames: new Set<string>(),
      signal: AbortSignal.timeout(10_000),
    };
    const sink = { dir: () => {}, file: () => undefined, skip: () => {}, problem: () => {} };
    await expect(walk(gone, { ...options, tree: 'source' }, sink)).rejects.toMatchObject({
      code: 'ERR_SOURCE_UNREADABLE',
      path: gone,
    });
    await expect(walk(gone, { ...options, tree: 'backup' }, sink)).rejects.toMatchObject({
      code: 'ERR_FILE_UNREADABLE',
      path: gone,
    });
  });
});
