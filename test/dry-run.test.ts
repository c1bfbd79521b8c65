// What rsync and restic users look for first: --dry-run (what a backup or restore would copy, write and
// replace, with nothing written: no partial tree, staging tree, journal or lock), --mkpath, and `generate`
// for a test store of any size. Through the real binary.

import { mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatOwner, thisProcess } from '../dist/src/core/owner.js';
import type { BackupPlan, BackupResult, RestorePlan, RestoreResult } from '../dist/src/index.js';
import {
  expectBackupConsistent,
  expectOneLineError,
  listEntries,
  tryMount,
  unmountAll,
} from './helpers/backup.js';
import { deadPid } from './helpers/restore.js';
import { cleanup, createTree, file, readTree, runCli, symlink, tempDir } from './helpers/tree.js';

afterEach(cleanup);

async function store(root: string): Promise<string> {
  const source = join(root, 'src');
  await createTree(source, {
    seeds: { 'a.json': file('{"a":1}'), 'b.md': file('# b'), 'link.json': symlink('a.json') },
    memory: { facts: { 'f.json': file('{"f":2}'), 'x.json.1.ab.tmp': file('temp') } },
    'notes.txt': file('n'),
  });
  return source;
}

/** Every entry under `root`, so a test can say that a dry run changed nothing at all. */
function everything(root: string): string[] {
  return [...listEntries(root).keys()].sort();
}

describe('backup --dry-run', () => {
  it('reports what would be copied and skipped, with the counts a real run has, and writes nothing', async () => {
    const root = tempDir();
    const source = await store(root);
    const before = everything(root);
    const dry = await runCli([
      'backup',
      '--json',
      '--dry-run',
      '--exclude',
      '*.md',
      source,
      join(root, 'out'),
    ]);
    expect(dry.exitCode, dry.stderr).toBe(0);
    const plan = JSON.parse(dry.stdout) as BackupPlan;
    expect(everything(root)).toEqual(before);
    const real = await runCli([
      'backup',
      '--json',
      '--no-sync',
      '--exclude',
      '*.md',
      source,
      join(root, 'out'),
    ]);
    const result = JSON.parse(real.stdout) as BackupResult;
    expect(plan).toMatchObject({
      command: 'backup',
      dryRun: true,
      replacesExisting: false,
      files: result.files,
      dirs: result.dirs,
      bytes: result.bytes,
      skippedEntries: result.skippedEntries,
      sections: result.sections,
      exitCode: 0,
    });
    expect(result.dryRun).toBe(false);
    expect(plan.files).toBe(3);
    expect(plan.skippedEntries.byKind).toEqual({ symlink: 1, excluded: 2 });
  });

  it('says the text way what would happen, -n for short; an existing dest is refused as a real run would', async () => {
    const root = tempDir();
    const source = await store(root);
    const dest = join(root, 'out');
    const dry = await runCli(['backup', '-n', source, dest]);
    expect(dry.exitCode).toBe(0);
    expect(dry.stdout).toContain(`dry run: would back up ${source} into ${dest}: 4 files, 3 dirs`);
    expect(dry.stdout).toContain('would skip: 1 symlink, 1 excluded');
    await runCli(['backup', '--no-sync', source, dest]);
    const refused = await runCli(['backup', '--json', '--dry-run', source, dest]);
    expect(refused.exitCode).toBe(1);
    expect(JSON.parse(refused.stdout).error.code).toBe('ERR_DEST_EXISTS');
    const forced = await runCli(['backup', '--dry-run', '--force', source, dest]);
    expect(forced.exitCode).toBe(0);
    expect(forced.stdout).toContain(`would replace the existing backup at ${dest}`);
  });

  it('refuses a --link-dest the real run would refuse, and accepts a good one', async () => {
    const root = tempDir();
    const source = await store(root);
    const previous = join(root, 'previous');
    await runCli(['backup', '--no-sync', source, previous]);
    const dest = join(root, 'out');
    const refused = await runCli([
      'backup',
      '--json',
      '-n',
      '--link-dest',
      join(root, 'nowhere'),
      source,
      dest,
    ]);
    expect(refused.exitCode).toBe(1);
    expect(JSON.parse(refused.stdout).error.code).toBe('ERR_LINK_DEST_INVALID');
    const before = everything(root);
    const accepted = await runCli(['backup', '-n', '--link-dest', previous, source, dest]);
    expect(accepted.exitCode, accepted.stderr).toBe(0);
    expect(everything(root)).toEqual(before);
  });

  it('leaves the debris of a killed run alone (a real run cleans it)', async () => {
    const root = tempDir();
    const source = await store(root);
    const debris = join(root, 'out.partial-999999-abcdef');
    mkdirSync(debris);
    const dry = await runCli(['backup', '--dry-run', source, join(root, 'out')]);
    expect(dry.exitCode).toBe(0);
    expect(readdirSync(root).sort()).toEqual(['out.partial-999999-abcdef', 'src']);
  });
});

describe('restore --dry-run', () => {
  async function backupOf(root: string): Promise<string> {
    const source = await store(root);
    const backupDir = join(root, 'backup');
    const made = await runCli(['backup', '--no-sync', source, backupDir]);
    expect(made.exitCode).toBe(0);
    return backupDir;
  }

  it('into a new target: would create it, with the counts a real restore has; creates nothing', async () => {
    const root = tempDir();
    const backupDir = await backupOf(root);
    const target = join(root, 'restored');
    const before = everything(root);
    const dry = await runCli(['restore', '--json', '--dry-run', backupDir, target]);
    expect(dry.exitCode, dry.stderr).toBe(0);
    expect(everything(root)).toEqual(before);
    const plan = JSON.parse(dry.stdout) as RestorePlan;
    const real = JSON.parse(
      (await runCli(['restore', '--json', '--no-sync', backupDir, target])).stdout,
    ) as RestoreResult;
    expect(plan).toMatchObject({
      dryRun: true,
      createsTarget: true,
      replacesTarget: false,
      filesReplaced: 0,
      recoversFirst: false,
      files: real.files,
      dirs: real.dirs,
      bytes: real.bytes,
      skippedEntries: real.skippedEntries,
      exitCode: 0,
    });
  });

  it('over an existing target: counts the files it would replace (merge: overwrite), changes nothing', async () => {
    const root = tempDir();
    const backupDir = await backupOf(root);
    const target = join(root, 'live');
    await createTree(target, {
      seeds: { 'a.json': file('old') },
      'notes.txt': file('old'),
      'mine.txt': file('x'),
    });
    const before = readTree(root);
    for (const mode of ['replace', 'merge'] as const) {
      const dry = await runCli(['restore', '--json', '--dry-run', '--mode', mode, backupDir, target]);
      expect(dry.exitCode, dry.stderr).toBe(0);
      expect(JSON.parse(dry.stdout)).toMatchObject({
        dryRun: true,
        mode,
        createsTarget: false,
        replacesTarget: mode === 'replace',
        filesReplaced: 2,
        files: 4,
      });
    }
    const text = await runCli(['restore', '--dry-run', '--mode', 'merge', backupDir, target]);
    expect(text.stdout).toContain(
      `would overwrite 2 files in ${target} and create 2 files; files only in the target stay`,
    );
    // No staging tree, journal, rollback copy or temp file: the whole tree is as it was.
    expect(readTree(root)).toEqual(before);
  });

  it('refuses what a restore would refuse (a symlink where the backup has a directory), still writing nothing', async () => {
    const root = tempDir();
    const backupDir = await backupOf(root);
    const target = join(root, 'live');
    mkdirSync(target);
    symlinkSync(root, join(target, 'memory'));
    const dry = await runCli(['restore', '--json', '--dry-run', '--mode', 'merge', backupDir, target]);
    expect(dry.exitCode).toBe(1);
    expect(JSON.parse(dry.stdout).error.code).toBe('ERR_TARGET_INVALID');
    expect(readdirSync(target)).toEqual(['memory']);
  });

  it('tells that a killed restore would be finished first, without finishing it', async () => {
    const root = tempDir();
    const backupDir = await backupOf(root);
    const target = join(root, 'restored');
    mkdirSync(target);
    const lock = (owner: string) =>
      writeFileSync(
        `${target}.restore-journal`,
        `${JSON.stringify({ tool: 'statesnap', version: 2, owner, holds: 'replace' })}\n`,
      );
    // Left by a run that is gone: the real run would free it first.
    lock(formatOwner({ ...thisProcess(), pid: deadPid() }));
    const dry = await runCli(['restore', '--json', '--dry-run', backupDir, target]);
    expect(dry.exitCode, dry.stderr).toBe(0);
    expect(JSON.parse(dry.stdout).recoversFirst).toBe(true);
    expect(readdirSync(root).sort()).toEqual(['backup', 'restored', 'restored.restore-journal', 'src']);
    // Held by a live process (this one): refused as the real run refuses it.
    lock(formatOwner(thisProcess()));
    const busy = await runCli(['restore', '--json', '--dry-run', backupDir, target]);
    expect(busy.exitCode).toBe(1);
    expect(JSON.parse(busy.stdout).error.code).toBe('ERR_TARGET_BUSY');
  });
});

describe('--mkpath', () => {
  it('without it, a missing parent of dest or target is a one-line error naming it; nothing is created', async () => {
    const root = tempDir();
    const source = await store(root);
    const dest = join(root, 'a', 'b', 'out');
    const run = await runCli(['backup', '--json', source, dest]);
    expect(run.exitCode).toBe(1);
    const failure = JSON.parse(run.stdout) as { error: { code: string; message: string; path: string } };
    expect(failure.error).toMatchObject({ code: 'ERR_DEST_WRITE', path: dest });
    expect(failure.error.message).toBe(
      `cannot use destination ${dest}: its parent directory ${join(root, 'a', 'b')} does not exist (use --mkpath to create it)`,
    );
    expect(readdirSync(root)).toEqual(['src']);
  });

  it('creates the missing parents of dest (backup) and target (restore), and says so', async () => {
    const root = tempDir();
    const source = await store(root);
    const dest = join(root, 'backups', '2026', 'today');
    const made = await runCli(['backup', '--json', '--no-sync', '--mkpath', source, dest]);
    expect(made.exitCode, made.stderr).toBe(0);
    expect(JSON.parse(made.stdout).createdParents).toEqual([
      join(root, 'backups'),
      join(root, 'backups', '2026'),
    ]);
    expectBackupConsistent(dest);
    const target = join(root, 'restores', 'x', 'state');
    const restored = await runCli(['restore', '--no-sync', '--mkpath', dest, target]);
    expect(restored.exitCode, restored.stderr).toBe(0);
    expect(restored.stdout).toContain(`created ${join(root, 'restores')}, ${join(root, 'restores', 'x')}`);
    expect(readdirSync(join(target, 'seeds')).sort()).toEqual(['a.json', 'b.md']);
  });

  it('with --dry-run, lists what it would create and creates nothing', async () => {
    const root = tempDir();
    const source = await store(root);
    const dest = join(root, 'a', 'out');
    const dry = await runCli(['backup', '--json', '--dry-run', '--mkpath', source, dest]);
    expect(dry.exitCode).toBe(0);
    expect(JSON.parse(dry.stdout).createdParents).toEqual([join(root, 'a')]);
    expect(readdirSync(root)).toEqual(['src']);
  });

  it('never creates anything inside the source: dest inside it is refused first', async () => {
    const root = tempDir();
    const source = await store(root);
    const run = await runCli(['backup', '--json', '--mkpath', source, join(source, 'new', 'out')]);
    expect(run.exitCode).toBe(2);
    expect(JSON.parse(run.stdout).error.code).toBe('ERR_DEST_OVERLAPS_SOURCE');
    expect(readdirSync(source).sort()).toEqual(['memory', 'notes.txt', 'seeds']);
  });

  it('a parent that is a file is a clear error', async () => {
    const root = tempDir();
    const source = await store(root);
    writeFileSync(join(root, 'f'), '');
    const run = await runCli(['backup', '--json', '--mkpath', source, join(root, 'f', 'x', 'out')]);
    expect(run.exitCode).toBe(1);
    expect(JSON.parse(run.stdout).error).toMatchObject({ code: 'ERR_DEST_WRITE' });
    expect(run.stderr).toContain('ENOTDIR');
  });
});

describe('generate', () => {
  it('writes a store of about --files files, deterministic for a seed, into an empty or missing directory', async () => {
    const root = tempDir();
    const run = await runCli(['generate', '--json', '--files', '500', join(root, 'a')]);
    expect(run.exitCode, run.stderr).toBe(0);
    const made = JSON.parse(run.stdout) as { files: number; profile: string; root: string };
    expect(made).toMatchObject({ command: 'generate', profile: 'oxios', root: join(root, 'a'), exitCode: 0 });
    expect(Math.abs(made.files - 500)).toBeLessThan(25);
    await runCli(['generate', '--files', '500', join(root, 'b')]);
    expect(readTree(join(root, 'b'))).toEqual(readTree(join(root, 'a')));
    const text = await runCli(['generate', '--profile', 'tiny-files', '--scale', '0.001', join(root, 'c')]);
    expect(text.stdout).toBe(
      `generated ${join(root, 'c')}: 1,000 files (0 of them in-flight temp files), ` +
        `${/[\d.]+ KiB/.exec(text.stdout)![0]}, 0 symlinks, 3 dirs (profile tiny-files, scale 0.001, seed 1)\n`,
    );
  });

  it('refuses a directory that is not empty, and --scale with --files (exit 2)', async () => {
    const root = tempDir();
    writeFileSync(join(root, 'x'), '');
    const refused = await runCli(['generate', '--json', root]);
    expect(refused.exitCode).toBe(2);
    expect(JSON.parse(refused.stdout).error.code).toBe('ERR_INVALID_OPTION');
    const both = await runCli(['generate', '--json', '--scale', '1', '--files', '10', join(root, 'y')]);
    expect(both.exitCode).toBe(2);
    expect(readdirSync(root)).toEqual(['x']);
  });

  it('on a full disk: exit 1, one line naming the store and ENOSPC, no stack trace', async (ctx) => {
    const small = join(tempDir(), 'small');
    mkdirSync(small);
    if (!tryMount(['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs'], small)) ctx.skip('cannot mount a tmpfs here');
    try {
      const run = await runCli(['generate', '--files', '2000', join(small, 'store')]);
      expect(run.exitCode).toBe(1);
      expectOneLineError(run, 'ERR_DEST_WRITE');
      expect(run.stderr).toMatch(
        /^statesnap: error: cannot write (the store in )?\S*\/small\/store\S*: .*ENOSPC/,
      );
      expect(run.stderr).not.toContain('internal error');
      const json = await runCli(['generate', '--json', '--files', '2000', join(small, 'again')]);
      expect(JSON.parse(json.stdout).error).toMatchObject({ code: 'ERR_DEST_WRITE' });
    } finally {
      unmountAll();
    }
  });
});
