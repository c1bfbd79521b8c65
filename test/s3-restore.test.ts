// Restore, verify and inspect of snapshots in object storage against a real server (the local Ceph RGW in
// CI), through the built CLI: a store with every entry kind back byte for byte in both restore modes, and
// damaged snapshots (a tampered, deleted or truncated pack, hostile index lines) refused with the target
// untouched.

import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect } from 'vitest';
import { expectOneLineError } from './helpers/backup.js';
import { restoreSiblings } from './helpers/restore.js';
import { s3it, useTestBucket } from './helpers/s3.js';
import { layOutSnapshot } from './helpers/s3-snapshot.js';
import {
  cleanup,
  createTree,
  dir,
  file,
  filterPrint,
  fingerprintTree,
  giveToUnprivileged,
  runCli,
  runCliUnprivileged,
  symlink,
  tempDir,
} from './helpers/tree.js';

const testBucket = useTestBucket();
const { name: bucket } = testBucket;
const ID = '2026-11-30T02-00-02Z';

afterEach(cleanup);

const MTIME = 1_700_000_000;
const LARGE = Buffer.alloc(5 * 1024 * 1024 + 123, 7);
LARGE.write('not all sevens', 4 * 1024 * 1024);

/** A store with every entry kind a snapshot records, backed up locally by the CLI. */
async function backedUpStore(): Promise<{ store: string; backup: string }> {
  const root = tempDir('statesnap-s3-restore-');
  const store = join(root, 'store');
  await createTree(store, {
    memory: dir({
      'fact.json': file('{"a":1}\n', { mode: 0o600, mtime: MTIME }),
      'empty.md': file('', { mtime: MTIME + 1 }),
      deep: dir({ nested: dir({ 'note.md': file('# note\n', { mode: 0o640 }) }) }, { mode: 0o750 }),
    }),
    'empty-dir': dir({}, { mode: 0o700, mtime: MTIME + 2 }),
    'large.bin': file(LARGE, { mtime: MTIME + 3 }),
    'run.sh': file('#!/bin/sh\n', { mode: 0o755 }),
    'link-to-fact': symlink('memory/fact.json'),
  });
  // A name that is not UTF-8 (Latin-1 é).
  writeFileSync(Buffer.from(`${store}/conv\xe9.md`, 'latin1'), 'latin-1 name');
  const backup = join(root, 'backup');
  const run = await runCli(['backup', store, backup]);
  expect(run.exitCode, run.stderr).toBe(0);
  return { store, backup };
}

/** What a restore recreates of the store: everything but the symlink (recorded, never recreated). */
function restorable(root: string) {
  return filterPrint(fingerprintTree(root), (_rel, entry) => entry.kind !== 'symlink');
}

describe('round trip', () => {
  s3it('restores every entry kind in replace mode, from an id and from latest', async () => {
    const { store, backup } = await backedUpStore();
    const storage = await testBucket.open('round-trip');
    await layOutSnapshot(storage, backup, ID);
    const target = join(tempDir(), 'restored');
    const run = await runCli(['restore', '--json', `s3://${bucket}/round-trip/${ID}`, target]);
    expect(run.exitCode, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result).toMatchObject({ files: 6, verified: true, mode: 'replace', exitCode: 0 });
    expect(result.backup).toBe(`s3://${bucket}/round-trip/snapshots/${ID}`);
    expect(restorable(target)).toEqual(restorable(store));

    const again = join(tempDir(), 'latest');
    const latest = await runCli(['restore', `s3://${bucket}/round-trip/latest`, again]);
    expect(latest.exitCode, latest.stderr).toBe(0);
    expect(restorable(again)).toEqual(restorable(store));
  });

  s3it('merges every entry kind into a live target, keeping the files only the target has', async () => {
    const { store, backup } = await backedUpStore();
    const storage = await testBucket.open('merge');
    await layOutSnapshot(storage, backup, ID);
    const target = tempDir();
    await createTree(target, {
      'only-here.txt': file('stays'),
      memory: dir({ 'fact.json': file('old content') }),
    });
    const run = await runCli(['restore', '--mode', 'merge', `s3://${bucket}/merge/latest`, target]);
    expect(run.exitCode, run.stderr).toBe(0);
    const merged = restorable(target);
    expect(merged['only-here.txt']?.sha256).toBeDefined();
    const { 'only-here.txt': _extra, '': _root, ...rest } = merged;
    const { '': _storeRoot, ...expected } = restorable(store);
    expect(rest).toEqual(expected);
  });

  s3it('restores what `statesnap snapshot` wrote, incremental on a base, in both modes', async () => {
    const { store } = await backedUpStore();
    const repository = `s3://${bucket}/written`;
    const first = await runCli(['snapshot', store, repository]);
    expect(first.exitCode, first.stderr).toBe(0);
    writeFileSync(join(store, 'memory', 'fact.json'), '{"a":2}\n');
    const second = await runCli(['snapshot', store, repository]);
    expect(second.exitCode, second.stderr).toBe(0);
    const replaced = join(tempDir(), 'restored');
    const replace = await runCli(['restore', `${repository}/latest`, replaced]);
    expect(replace.exitCode, replace.stderr).toBe(0);
    expect(restorable(replaced)).toEqual(restorable(store));
    const merged = tempDir();
    await createTree(merged, { memory: dir({ 'fact.json': file('old') }) });
    const merge = await runCli(['restore', '--mode', 'merge', `${repository}/latest`, merged]);
    expect(merge.exitCode, merge.stderr).toBe(0);
    const { '': _root, ...got } = restorable(merged);
    const { '': _storeRoot, ...expected } = restorable(store);
    expect(got).toEqual(expected);
  });

  s3it('restores as an unprivileged user, in both modes', async () => {
    const { store, backup } = await backedUpStore();
    const storage = await testBucket.open('unprivileged');
    await layOutSnapshot(storage, backup, ID);
    const home = tempDir();
    const target = join(home, 'restored');
    await createTree(target, { 'only-here.txt': file('stays') });
    giveToUnprivileged(home);
    for (const mode of ['merge', 'replace']) {
      const run = await runCliUnprivileged([
        'restore',
        '--mode',
        mode,
        '--no-keep',
        `s3://${bucket}/unprivileged/${ID}`,
        target,
      ]);
      expect(run.exitCode, run.stderr).toBe(0);
    }
    expect(restorable(target)).toEqual(restorable(store));
  });

  s3it('verifies and inspects a snapshot', async () => {
    const { backup } = await backedUpStore();
    const storage = await testBucket.open('verify');
    await layOutSnapshot(storage, backup, ID);
    const verify = await runCli(['verify', '--json', `s3://${bucket}/verify/${ID}`]);
    expect(verify.exitCode, verify.stderr).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true, files: 6, hashesChecked: true });
    const inspect = await runCli(['inspect', '--json', `s3://${bucket}/verify/latest`]);
    expect(inspect.exitCode, inspect.stderr).toBe(0);
    expect(JSON.parse(inspect.stdout)).toMatchObject({
      files: 6,
      indexEntries: 11,
      storage: { objects: 2 },
    });
  });
});

describe('partial restore', () => {
  s3it(
    'restores only what --include selects, in both modes, the rest of a live target untouched',
    async () => {
      const { store, backup } = await backedUpStore();
      const storage = await testBucket.open('include');
      await layOutSnapshot(storage, backup, ID);
      const fresh = join(tempDir(), 'restored');
      const run = await runCli([
        'restore',
        '--include',
        'deep',
        '--include',
        'large.bin',
        `s3://${bucket}/include/${ID}`,
        fresh,
      ]);
      expect(run.exitCode, run.stderr).toBe(0);
      const wanted = (rel: string) =>
        rel === '' || rel === 'memory' || rel.startsWith('memory/deep') || rel === 'large.bin';
      expect(restorable(fresh)).toEqual(filterPrint(restorable(store), wanted));
      const live = tempDir();
      await createTree(live, { memory: dir({ 'fact.json': file('old content') }), 'run.sh': file('mine') });
      const before = fingerprintTree(live);
      const merge = await runCli([
        'restore',
        '--mode',
        'merge',
        '--include',
        'fact.json',
        `s3://${bucket}/include/latest`,
        live,
      ]);
      expect(merge.exitCode, merge.stderr).toBe(0);
      const after = fingerprintTree(live);
      expect(after['memory/fact.json']).toEqual(restorable(store)['memory/fact.json']);
      expect(after['run.sh']).toEqual(before['run.sh']);
    },
  );
});

describe('a file larger than one GET', () => {
  async function hugeSnapshot(prefix: string) {
    const root = tempDir('statesnap-s3-huge-');
    const store = join(root, 'store');
    const huge = randomBytes(20 * 1024 * 1024 + 5);
    await createTree(store, { 'huge.bin': file(huge, { mtime: MTIME }), 'small.json': file('{}') });
    const backup = join(root, 'backup');
    expect((await runCli(['backup', store, backup])).exitCode).toBe(0);
    const storage = await testBucket.open(prefix);
    return { store, storage, laid: await layOutSnapshot(storage, backup, ID) };
  }

  s3it('is fetched in parts and restored byte for byte', async () => {
    const { store } = await hugeSnapshot('huge');
    const target = join(tempDir(), 'restored');
    const run = await runCli(['restore', `s3://${bucket}/huge/${ID}`, target]);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(restorable(target)).toEqual(restorable(store));
  });

  s3it('whose object ends in its second part: refused, target untouched', async () => {
    const { storage, laid } = await hugeSnapshot('huge-truncated');
    const [key, bytes] = [...laid.objects].find(([, object]) => object.length > 20 * 1024 * 1024)!;
    await storage.putObject(key, bytes.subarray(0, 12 * 1024 * 1024));
    await expectRefused('huge-truncated', 'ERR_BACKUP_CORRUPT', `${key} holds only`);
  });
});

/** A target with content of its own, and its fingerprint before the refused restore. */
async function liveTarget(): Promise<{ target: string; before: ReturnType<typeof fingerprintTree> }> {
  const target = tempDir();
  await createTree(target, { 'live.json': file('{"live":true}'), sub: dir({ 'x.md': file('x') }) });
  return { target, before: fingerprintTree(target) };
}

/** Restores in both modes and verifies: every one refused with `code`, naming the snapshot; target untouched. */
async function expectRefused(prefix: string, code: string, names: string): Promise<void> {
  for (const mode of ['replace', 'merge']) {
    const { target, before } = await liveTarget();
    const run = await runCli(['restore', '--mode', mode, `s3://${bucket}/${prefix}/${ID}`, target]);
    expect(run.exitCode, run.stderr).toBe(1);
    expectOneLineError(run, code);
    expect(run.stderr).toContain(ID);
    expect(run.stderr).toContain(names);
    expect(fingerprintTree(target)).toEqual(before);
    expect(restoreSiblings(target)).toEqual([]);
  }
}

describe('damaged snapshots', () => {
  s3it('a tampered pack: restore refused naming the file and the object, verify reports it', async () => {
    const { backup } = await backedUpStore();
    const storage = await testBucket.open('tampered');
    const laid = await layOutSnapshot(storage, backup, ID);
    const [packKey, pack] = [...laid.objects].find(([, bytes]) => bytes.length < LARGE.length)!;
    const tampered = Buffer.from(pack);
    const at = tampered.indexOf('{"a":1}');
    tampered[at + 5] = '2'.charCodeAt(0);
    await storage.putObject(packKey, tampered);
    await expectRefused('tampered', 'ERR_BACKUP_CORRUPT', packKey);
    const verify = await runCli(['verify', '--json', `s3://${bucket}/tampered/${ID}`]);
    expect(verify.exitCode).toBe(1);
    const problems = JSON.parse(verify.stdout).problems;
    expect(problems.count).toBe(1);
    expect(problems.list[0]).toMatchObject({ problem: 'corrupt' });
    expect(problems.list[0].path).toBe(`s3://${bucket}/tampered/snapshots/${ID}/memory/fact.json`);
  });

  s3it('a deleted pack: refused as missing, naming the object', async () => {
    const { backup } = await backedUpStore();
    const storage = await testBucket.open('deleted');
    const laid = await layOutSnapshot(storage, backup, ID);
    const largeKey = [...laid.objects].find(([, bytes]) => bytes.length > LARGE.length)![0];
    await storage.deleteObjects([largeKey]);
    await expectRefused('deleted', 'ERR_BACKUP_CORRUPT', `${largeKey} is missing`);
    const verify = await runCli(['verify', `s3://${bucket}/deleted/${ID}`]);
    expect(verify.exitCode).toBe(1);
    expect(verify.stdout).toContain(largeKey);
  });

  s3it('a truncated pack: refused, naming the object and the bytes it lacks', async () => {
    const { backup } = await backedUpStore();
    const storage = await testBucket.open('truncated');
    const laid = await layOutSnapshot(storage, backup, ID);
    const [largeKey, large] = [...laid.objects].find(([, bytes]) => bytes.length > LARGE.length)!;
    await storage.putObject(largeKey, large.subarray(0, 1024 * 1024));
    await expectRefused('truncated', 'ERR_BACKUP_CORRUPT', `${largeKey} holds only`);
  });

  s3it('a deleted or a truncated index: refused as an invalid index, naming it', async () => {
    const { backup } = await backedUpStore();
    const storage = await testBucket.open('index-damaged');
    const laid = await layOutSnapshot(storage, backup, ID);
    await storage.deleteObjects([laid.indexKey]);
    await expectRefused('index-damaged', 'ERR_INDEX_INVALID', `${laid.indexKey} is missing`);
    await storage.putObject(laid.indexKey, Buffer.from([0x1f, 0x8b]));
    await expectRefused('index-damaged', 'ERR_INDEX_INVALID', laid.indexKey);
  });

  const hostile: Array<[string, (line: Record<string, unknown>) => void, string]> = [
    ['a `..` path', (line) => Object.assign(line, { path: 'memory/../../escaped.json' }), 'path'],
    ['an absolute path', (line) => Object.assign(line, { path: '/etc/escaped.json' }), 'path'],
    [
      'an object not in the table',
      (line) => Object.assign(line, { object: `data/${'0'.repeat(32)}.tar` }),
      'object table',
    ],
    ['a range past its object', (line) => Object.assign(line, { offset: 1 << 30 }), 'past the end'],
  ];
  for (const [what, edit, says] of hostile) {
    s3it(`an index line with ${what}: refused before anything is written`, async () => {
      const { backup } = await backedUpStore();
      const prefix = `hostile-${what.replace(/\W+/g, '-')}`;
      const storage = await testBucket.open(prefix);
      await layOutSnapshot(storage, backup, ID, {
        editLines: (lines) => {
          edit(lines.find((line) => line.path === 'memory/fact.json')!);
          return lines;
        },
      });
      await expectRefused(prefix, 'ERR_INDEX_INVALID', says);
    });
  }

  s3it('a snapshot that does not exist, and a location that names none', async () => {
    const { backup } = await backedUpStore();
    const storage = await testBucket.open('absent');
    await layOutSnapshot(storage, backup, ID);
    const { target, before } = await liveTarget();
    const missing = await runCli(['restore', `s3://${bucket}/absent/2020-01-01T00-00-00Z`, target]);
    expect(missing.exitCode).toBe(1);
    expectOneLineError(missing, 'ERR_SNAPSHOT_NOT_FOUND');
    const bare = await runCli(['restore', `s3://${bucket}`, target]);
    expect(bare.exitCode).toBe(2);
    expectOneLineError(bare, 'ERR_S3_LOCATION_INVALID');
    const notRepository = await runCli(['restore', `s3://${bucket}/nothing-here/${ID}`, target]);
    expect(notRepository.exitCode).toBe(1);
    expectOneLineError(notRepository, 'ERR_REPO_INVALID');
    // The repository itself, where a snapshot is wanted: said so, for verify as for restore.
    for (const command of [
      ['restore', `s3://${bucket}/absent`, target],
      ['verify', `s3://${bucket}/absent`],
    ]) {
      const repository = await runCli(command);
      expect(repository.exitCode).toBe(2);
      expectOneLineError(repository, 'ERR_S3_LOCATION_INVALID');
      expect(repository.stderr).toContain('is a repository, not a snapshot');
    }
    expect(fingerprintTree(target)).toEqual(before);
  });

  s3it(
    "a repository marker of a newer statesnap, or not statesnap's: refused before any manifest is read",
    async () => {
      const { backup } = await backedUpStore();
      const storage = await testBucket.open('foreign-marker');
      await layOutSnapshot(storage, backup, ID);
      const { target, before } = await liveTarget();
      for (const marker of ['{"statesnap_repository":2}\n', 'not json']) {
        await storage.putObject('.statesnap-repository', Buffer.from(marker));
        for (const args of [
          ['restore', `s3://${bucket}/foreign-marker/latest`, target],
          ['verify', `s3://${bucket}/foreign-marker/${ID}`],
        ]) {
          const refused = await runCli(args);
          expect(refused.exitCode, marker).toBe(1);
          expectOneLineError(refused, 'ERR_REPO_INVALID');
        }
      }
      expect(fingerprintTree(target)).toEqual(before);
    },
  );
});
