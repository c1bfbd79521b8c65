// Restore round trips and the rules of the target: backup → restore in both modes reproduces the tree
// (content, modes, mtimes, empty dirs, awkward names) without the backup's own files; the rollback copy;
// refusals that leave the target untouched; and backups made by Oxios itself.

import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { backup, restore, verify } from '../dist/src/index.js';
import { startPausedCli } from './helpers/pause.js';
import {
  oxiosCopyDirRecursive,
  restoreSiblings,
  writeHandBackup,
  writeOxiosManifest,
} from './helpers/restore.js';
import {
  cleanup,
  closeSockets,
  createTree,
  dir,
  entryPrint,
  expectTree,
  fifo,
  file,
  filterPrint,
  fingerprintTree,
  runCli,
  symlink,
  type Tree,
  type TreePrint,
  tempDir,
} from './helpers/tree.js';

afterEach(async () => {
  await closeSockets();
  cleanup();
});

const BIG = Buffer.alloc(3 * 1024 * 1024 + 17, 'big-file ');

function storeTree(): Tree {
  return {
    seeds: {
      'a.json': file('{"a":1}', { mode: 0o600, mtime: 1_600_000_000.123 }),
      'b.md': file('# b\n', { mode: 0o755, mtime: 1_600_000_001.5 }),
    },
    memory: {
      facts: {
        'big.json': file(BIG, { mtime: 1_650_000_000.25 }),
        'ünïcödé 📦.json': file('{"u":"ü"}'),
        'with space.md': file('space'),
        'new\nline.json': file('newline'),
        'empty-file.json': file(''),
      },
      empty: dir({}, { mode: 0o750, mtime: 1_500_000_000 }),
      knowledge: dir({ 'topic-1': dir({ 'k.md': file('k') }) }, { mode: 0o711 }),
    },
    ro: dir({ 'r.json': file('r', { mode: 0o444 }) }, { mode: 0o555, mtime: 1_400_000_000.75 }),
    'link.json': symlink('seeds/a.json'),
    'pipe.json': fifo(),
  };
}

/** The source as a restore must reproduce it: links and specials are not restored. */
function expectedFingerprint(source: string): TreePrint {
  return filterPrint(fingerprintTree(source), (_rel, entry) => entry.kind === 'file' || entry.kind === 'dir');
}

async function madeBackup(root: string): Promise<{ source: string; backupDir: string }> {
  const source = join(root, 'store');
  await createTree(source, storeTree());
  const backupDir = join(root, 'backup');
  await backup({ source, dest: backupDir });
  return { source, backupDir };
}

describe('round trip: backup → restore', () => {
  it('replace mode into a new target reproduces contents, modes, mtimes, empty dirs and names', async () => {
    const root = tempDir();
    const { source, backupDir } = await madeBackup(root);
    const target = join(root, 'target');
    const result = await restore({ backup: backupDir, target });
    expect(fingerprintTree(target)).toEqual(expectedFingerprint(source));
    expect(entryPrint(target)).toEqual(entryPrint(source));
    expect(existsSync(join(target, 'manifest.json'))).toBe(false);
    expect(existsSync(join(target, '.statesnap'))).toBe(false);
    expect(result).toMatchObject({
      command: 'restore',
      mode: 'replace',
      kind: 'statesnap',
      verified: true,
      files: 9,
      dirs: 7,
      rollback: null,
      createdTarget: true,
      recovered: [],
      exitCode: 0,
      skipped: { count: 2, byKind: { symlink: 1, fifo: 1 } },
    });
    expect(result.skipped.list.map((entry) => entry.path).sort()).toEqual(
      ['link.json', 'pipe.json'].map((name) => join(result.backup, name)),
    );
    expect(restoreSiblings(target)).toEqual([]);
  });

  it('merge mode into an existing target reproduces the backup and keeps the files only the target has', async () => {
    const root = tempDir();
    const { source, backupDir } = await madeBackup(root);
    const target = join(root, 'target');
    await createTree(target, {
      'extra.json': file('mine'),
      seeds: { 'a.json': file('old content of a'), 'only-here.md': file('keep me') },
      memory: { facts: { 'big.json': file('old') } },
    });
    const result = await restore({ backup: backupDir, target, mode: 'merge' });
    expect(result).toMatchObject({ mode: 'merge', rollback: null, createdTarget: false, exitCode: 0 });
    const extras = ['extra.json', 'seeds/only-here.md'];
    const restored = filterPrint(fingerprintTree(target), (rel) => !extras.includes(rel));
    expect(restored).toEqual(expectedFingerprint(source));
    expect(readFileSync(join(target, 'extra.json'), 'utf8')).toBe('mine');
    expect(readFileSync(join(target, 'seeds/only-here.md'), 'utf8')).toBe('keep me');
    expect(existsSync(join(target, 'manifest.json'))).toBe(false);
    expect(existsSync(join(target, '.statesnap'))).toBe(false);
    expect(restoreSiblings(target)).toEqual([]);
  });

  it('merge mode into an existing empty target gives the same tree as replace mode', async () => {
    const root = tempDir();
    const { source, backupDir } = await madeBackup(root);
    const target = join(root, 'target');
    mkdirSync(target);
    await restore({ backup: backupDir, target, mode: 'merge' });
    expect(fingerprintTree(target)).toEqual(expectedFingerprint(source));
    expect(entryPrint(target)).toEqual(entryPrint(source));
  });

  it('merge mode into a target that does not exist creates it', async () => {
    const root = tempDir();
    const { source, backupDir } = await madeBackup(root);
    const target = join(root, 'target');
    const result = await restore({ backup: backupDir, target, mode: 'merge' });
    expect(result).toMatchObject({ mode: 'merge', createdTarget: true, rollback: null });
    expect(fingerprintTree(target)).toEqual(expectedFingerprint(source));
  });

  it('--no-verify restores the same tree (sizes still checked)', async () => {
    const root = tempDir();
    const { source, backupDir } = await madeBackup(root);
    const target = join(root, 'target');
    const result = await restore({ backup: backupDir, target, verify: false });
    expect(result.verified).toBe(false);
    expect(fingerprintTree(target)).toEqual(expectedFingerprint(source));
    // A backup file one byte longer than its index says is refused even without the hash check.
    const grown = join(backupDir, 'seeds/b.md');
    writeFileSync(grown, `${readFileSync(grown, 'utf8')}!`);
    const elsewhere = join(root, 'elsewhere');
    await expect(restore({ backup: backupDir, target: elsewhere, verify: false })).rejects.toMatchObject({
      code: 'ERR_BACKUP_CORRUPT',
      path: grown,
    });
    expect(existsSync(elsewhere)).toBe(false);
    expect(restoreSiblings(elsewhere)).toEqual([]);
  });
});

describe('the index is read and checked once', () => {
  it('an index rewritten between the check and the copy changes nothing: the copy uses the checked entries', async () => {
    const root = tempDir();
    const { source, backupDir } = await madeBackup(root);
    const target = join(root, 'target');
    const running = startPausedCli(['restore', backupDir, target], ['staging-created']);
    await running.reached('staging-created');
    // Past the check: an index that now names another file and fails its recorded digest.
    const index = join(backupDir, '.statesnap', 'index.jsonl');
    const checked = readFileSync(index, 'utf8');
    const rewritten = checked.replace('"seeds/a.json"', '"seeds/c.json"');
    expect(rewritten).not.toBe(checked);
    writeFileSync(index, rewritten);
    running.resume();
    const run = await running.done;
    expect(run.exitCode, run.stderr).toBe(0);
    expect(fingerprintTree(target)).toEqual(expectedFingerprint(source));
  });
});

describe('the previous target (replace mode)', () => {
  it('is kept whole as <target>.pre-restore-<timestamp>', async () => {
    const root = tempDir();
    const { source, backupDir } = await madeBackup(root);
    const target = join(root, 'target');
    await createTree(target, { 'old.json': file('old state'), sub: { 'x.md': file('x') } });
    const before = fingerprintTree(target);
    const result = await restore({ backup: backupDir, target });
    expect(result.rollback).toMatch(/\/target\.pre-restore-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}Z$/);
    expect(fingerprintTree(result.rollback!)).toEqual(before);
    expect(fingerprintTree(target)).toEqual(expectedFingerprint(source));
    expect(restoreSiblings(target)).toEqual([result.rollback!.slice(root.length + 1)]);
  });

  it('is removed after success with --no-keep', async () => {
    const root = tempDir();
    const { backupDir } = await madeBackup(root);
    const target = join(root, 'target');
    await createTree(target, { 'old.json': file('old state') });
    const run = await runCli(['restore', '--no-keep', '--json', backupDir, target]);
    expect(run.exitCode).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ rollback: null, createdTarget: false, exitCode: 0 });
    expect(restoreSiblings(target)).toEqual([]);
    expect(existsSync(join(target, 'old.json'))).toBe(false);
  });
});

describe('the target', () => {
  it('a symlink is refused, and the directory it points to is untouched', async () => {
    const root = tempDir();
    const { backupDir } = await madeBackup(root);
    const real = join(root, 'real');
    await createTree(real, { 'keep.json': file('keep') });
    const target = join(root, 'target');
    symlinkSync(real, target);
    const before = fingerprintTree(root);
    for (const mode of ['replace', 'merge'] as const) {
      await expect(restore({ backup: backupDir, target, mode })).rejects.toMatchObject({
        code: 'ERR_TARGET_INVALID',
      });
    }
    expect(fingerprintTree(root)).toEqual(before);
  });

  it('a file is refused', async () => {
    const root = tempDir();
    const { backupDir } = await madeBackup(root);
    const target = join(root, 'target');
    writeFileSync(target, 'a file');
    await expect(restore({ backup: backupDir, target })).rejects.toMatchObject({
      code: 'ERR_TARGET_INVALID',
    });
    expect(readFileSync(target, 'utf8')).toBe('a file');
  });

  it('inside the backup, or containing it, is refused', async () => {
    const root = tempDir();
    const { backupDir } = await madeBackup(root);
    const before = fingerprintTree(root);
    await expect(restore({ backup: backupDir, target: join(backupDir, 'memory') })).rejects.toMatchObject({
      code: 'ERR_TARGET_OVERLAPS_BACKUP',
    });
    await expect(restore({ backup: backupDir, target: root })).rejects.toMatchObject({
      code: 'ERR_TARGET_OVERLAPS_BACKUP',
    });
    expect(fingerprintTree(root)).toEqual(before);
  });
});

describe('backups that are refused: exit 1, one error line, target untouched', () => {
  async function refusedBy(root: string, backupDir: string, code: string, extraArgs: string[] = []) {
    const target = join(root, 'target');
    await createTree(target, { 'live.json': file('live state'), sub: { 'x.md': file('x') } });
    const before = fingerprintTree(root);
    for (const mode of ['replace', 'merge']) {
      const run = await runCli(['restore', '--mode', mode, ...extraArgs, backupDir, target]);
      expect(run).toMatchObject({ exitCode: 1, stdout: '' });
      expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(run.stderr).toContain(`[${code}]`);
    }
    expect(fingerprintTree(root)).toEqual(before);
    return target;
  }

  it('a version 2 manifest', async () => {
    const root = tempDir();
    const backupDir = join(root, 'backup');
    writeHandBackup(backupDir, [{ type: 'file', path: 'a.json', content: 'a' }], {
      editManifest: (manifest) => {
        manifest.version = 2;
      },
    });
    await refusedBy(root, backupDir, 'ERR_MANIFEST_VERSION');
  });

  it('a truncated manifest (invalid JSON), naming the file and the parse error', async () => {
    const root = tempDir();
    const { backupDir } = await madeBackup(root);
    const path = join(backupDir, 'manifest.json');
    writeFileSync(path, readFileSync(path, 'utf8').slice(0, 80));
    await refusedBy(root, backupDir, 'ERR_MANIFEST_INVALID');
    const run = await runCli(['restore', backupDir, join(root, 'target')]);
    expect(run.stderr).toContain(path);
    expect(run.stderr).toContain('JSON');
  });

  it('a truncated index (its line count and sha256 differ from the manifest)', async () => {
    const root = tempDir();
    const { backupDir } = await madeBackup(root);
    const path = join(backupDir, '.statesnap', 'index.jsonl');
    const lines = readFileSync(path, 'utf8').split('\n');
    writeFileSync(path, lines.slice(0, 3).join('\n'));
    await refusedBy(root, backupDir, 'ERR_INDEX_INVALID');
  });

  it('a missing manifest', async () => {
    const root = tempDir();
    const { backupDir } = await madeBackup(root);
    unlinkSync(join(backupDir, 'manifest.json'));
    await refusedBy(root, backupDir, 'ERR_MANIFEST_MISSING');
  });

  it('an empty statesnap backup, unless --allow-empty', async () => {
    const root = tempDir();
    const backupDir = join(root, 'backup');
    writeHandBackup(backupDir, [{ type: 'dir', path: 'seeds' }], { sections: [] });
    const target = await refusedBy(root, backupDir, 'ERR_BACKUP_EMPTY');
    const run = await runCli(['restore', '--allow-empty', '--json', backupDir, target]);
    expect(run.exitCode).toBe(0);
    expectTree(target, { seeds: dir({}, { mode: 0o755 }) });
  });

  it('an Oxios backup whose sections are empty (Oxios’ own rule)', async () => {
    const root = tempDir();
    const backupDir = join(root, 'backup');
    await createTree(backupDir, { seeds: { 'a.json': file('a') } });
    writeOxiosManifest(backupDir, []);
    await refusedBy(root, backupDir, 'ERR_BACKUP_EMPTY');
  });

  it('a manifest whose totals do not match its index', async () => {
    const root = tempDir();
    const backupDir = join(root, 'backup');
    writeHandBackup(backupDir, [{ type: 'file', path: 'a.json', content: 'a' }], {
      editManifest: (manifest) => {
        (manifest.statesnap as { totals: { files: number } }).totals.files = 2;
      },
    });
    await refusedBy(root, backupDir, 'ERR_MANIFEST_INVALID');
  });
});

describe('backups made by Oxios (tree + manifest.json, no index)', () => {
  async function oxiosBackup(root: string): Promise<string> {
    const backupDir = join(root, 'oxios-backup');
    await createTree(backupDir, {
      seeds: { 'a.json': file('{"seed":1}', { mode: 0o640 }), 'b.md': file('# b') },
      memory: {
        facts: { 'f1.json': file('{"f":1}'), 'f2.json': file(BIG), 'ünï code.md': file('u') },
        episodes: {},
      },
      agent_groups: { 'g.json': file('{}'), 'g.json.123.abc.tmp': file('in flight') },
      'stray-link.json': symlink('/etc/passwd'),
    });
    writeOxiosManifest(backupDir, [
      { name: 'seeds', entry_count: 2 },
      { name: 'memory/facts', entry_count: 3 },
      { name: 'agent_groups', entry_count: 1 },
    ]);
    return backupDir;
  }

  /** What Oxios' restore_backup leaves in `target`, minus its copy of manifest.json. */
  function oxiosResult(backupDir: string, target: string, reference: string): TreePrint {
    if (existsSync(target)) oxiosCopyDirRecursive(target, reference);
    oxiosCopyDirRecursive(backupDir, reference);
    rmSync(join(reference, 'manifest.json'));
    return fingerprintTree(reference, { mtimes: false });
  }

  it('replace mode gives what Oxios’ restore_backup gives, minus manifest.json; the symlink is skipped and reported', async () => {
    const root = tempDir();
    const backupDir = await oxiosBackup(root);
    const target = join(root, 'target');
    const expected = oxiosResult(backupDir, target, join(root, 'reference'));
    const result = await restore({ backup: backupDir, target });
    expect(fingerprintTree(target, { mtimes: false })).toEqual(expected);
    expect(result).toMatchObject({
      kind: 'oxios',
      verified: false,
      files: 7,
      skipped: {
        count: 1,
        byKind: { symlink: 1 },
        list: [{ path: join(result.backup, 'stray-link.json'), kind: 'symlink' }],
      },
      warnings: { count: 1, byProblem: { symlink: 1 } },
      exitCode: 3,
    });
  });

  it('merge mode over a live target gives what Oxios’ restore_backup gives, minus manifest.json', async () => {
    const root = tempDir();
    const backupDir = await oxiosBackup(root);
    const target = join(root, 'target');
    await createTree(target, {
      seeds: { 'a.json': file('older'), 'c.json': file('only in target') },
      sessions: { 's.json': file('s') },
    });
    const expected = oxiosResult(backupDir, target, join(root, 'reference'));
    const run = await runCli(['restore', '--mode', 'merge', '--json', backupDir, target]);
    expect(run.exitCode).toBe(3);
    expect(run.stderr).toContain('stray-link.json');
    expect(JSON.parse(run.stdout)).toMatchObject({ kind: 'oxios', mode: 'merge', exitCode: 3 });
    expect(fingerprintTree(target, { mtimes: false })).toEqual(expected);
  });

  it('a section with fewer entries than it declares is restored, with a note (Oxios restores it too)', async () => {
    const root = tempDir();
    const backupDir = await oxiosBackup(root);
    unlinkSync(join(backupDir, 'memory/facts/f1.json'));
    const target = join(root, 'target');
    const result = await restore({ backup: backupDir, target });
    expect(result.notes).toEqual([
      {
        path: join(backupDir, 'memory/facts'),
        note: 'section-count',
        message: 'section "memory/facts" declares 3 entries; the backup holds 2',
      },
    ]);
    expect(existsSync(join(target, 'memory/facts/f2.json'))).toBe(true);
  });

  it('verify reads every file and says hashes were unavailable', async () => {
    const root = tempDir();
    const backupDir = await oxiosBackup(root);
    const result = await verify({ backup: backupDir });
    expect(result).toMatchObject({
      kind: 'oxios',
      hashesChecked: false,
      hashAlgorithm: null,
      ok: true,
      files: 7,
      skipped: 1,
      exitCode: 0,
    });
    const run = await runCli(['verify', backupDir]);
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toContain('hashes unavailable');
  });
});

describe('CLI', () => {
  it('--json prints exactly the result the library returns', async () => {
    const root = tempDir();
    const { backupDir } = await madeBackup(root);
    const run = await runCli(['restore', '--json', backupDir, join(root, 't1')]);
    expect(run.exitCode).toBe(0);
    const library = await restore({ backup: backupDir, target: join(root, 't2') });
    const printed = JSON.parse(run.stdout);
    const shape = (value: object) => Object.keys(value).sort();
    expect(shape(printed)).toEqual(shape(library));
    expect({ ...printed, target: '', durationMs: 0, threads: 0 }).toEqual({
      ...library,
      target: '',
      durationMs: 0,
      threads: 0,
    });
  });

  it('a bad --mode is a usage error (exit 2)', async () => {
    const run = await runCli(['restore', '--mode', 'sideways', 'a', 'b']);
    expect(run).toMatchObject({ exitCode: 2, stdout: '' });
  });
});
