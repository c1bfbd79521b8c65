// Restores of hostile backups into targets that must not suffer for it: hand-built indexes with escaping or
// malformed paths, symlinks planted in a backup or in the target, a tampered file, a full disk, a read-only
// filesystem and an interrupted run. Each checks that nothing outside the target changed and, where the
// restore is refused or fails, that the target is byte for byte what it was and no debris is left.

import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { generateStore } from '../dist/src/demo/generator.js';
import { backup, type RestoreProgress, restore, verify } from '../dist/src/index.js';
import { expectOneLineError, tryMount, unmountAll } from './helpers/backup.js';
import { startPausedCli } from './helpers/pause.js';
import {
  type HandEntry,
  restoreSiblings,
  sha256,
  writeHandBackup,
  writeOxiosManifest,
} from './helpers/restore.js';
import {
  cleanup,
  cleanupFixtures,
  createTree,
  file,
  fingerprintTree,
  fixtureDir,
  runCli,
  symlink,
  tempDir,
} from './helpers/tree.js';

afterEach(() => {
  unmountAll();
  cleanup();
});

const SECRET = 'outside secret: must never reach the target';

/** root/{backup, target, outside}: a live target and an outside folder that nothing may touch. */
async function arena(): Promise<{ root: string; backupDir: string; target: string; outside: string }> {
  const root = tempDir();
  const outside = join(root, 'outside');
  await createTree(outside, {
    'secret.json': file(SECRET),
    dir: { 'f.json': file(SECRET) },
    mem: { facts: {} },
  });
  const target = join(root, 'target');
  await createTree(target, { 'live.json': file('live state'), seeds: { 'a.json': file('live a') } });
  return { root, backupDir: join(root, 'backup'), target, outside };
}

const MODES = ['replace', 'merge'] as const;

describe('hostile index entries are refused before anything is created (ERR_INDEX_INVALID)', () => {
  const seedsDir: HandEntry = { type: 'dir', path: 'seeds' };
  const good: HandEntry = { type: 'file', path: 'seeds/ok.json', content: '{}' };
  const line = (path: string, extra: object = {}) =>
    JSON.stringify({
      path,
      type: 'file',
      size: 2,
      mode: 0o644,
      mtime_ns: '1',
      sha256: sha256('{}'),
      ...extra,
    });
  const cases: Array<[string, HandEntry[]]> = [
    ['../x', [seedsDir, good, { type: 'raw', line: line('../x') }]],
    ['/etc/x', [seedsDir, good, { type: 'raw', line: line('/etc/statesnap-hostile-x') }]],
    ['a/../../x', [seedsDir, good, { type: 'dir', path: 'a' }, { type: 'raw', line: line('a/../../x') }]],
    ['a\\b', [seedsDir, good, { type: 'raw', line: line('a\\b') }]],
    ['a NUL byte', [seedsDir, good, { type: 'raw', line: line('a\u0000b.json') }]],
    ['an empty segment', [seedsDir, good, { type: 'raw', line: line('seeds//x.json') }]],
    ['a . segment', [seedsDir, good, { type: 'raw', line: line('seeds/./x.json') }]],
    ['a duplicate path', [seedsDir, good, { type: 'raw', line: line('seeds/ok.json') }]],
    ['a duplicate directory', [seedsDir, good, { type: 'dir', path: 'seeds' }]],
    ['the backup’s own manifest.json', [seedsDir, good, { type: 'raw', line: line('manifest.json') }]],
    ['the backup’s own .statesnap/', [seedsDir, good, { type: 'raw', line: line('.statesnap/index.jsonl') }]],
    [
      'a file whose parent directory is not listed',
      [seedsDir, good, { type: 'raw', line: line('nodir/x.json') }],
    ],
    ['a file below a file', [seedsDir, good, { type: 'raw', line: line('seeds/ok.json/x') }]],
    ['a mode out of range', [seedsDir, good, { type: 'raw', line: line('seeds/m.json', { mode: 0o17777 }) }]],
    ['a negative size', [seedsDir, good, { type: 'raw', line: line('seeds/s.json', { size: -1 }) }]],
    [
      'an unknown entry type',
      [seedsDir, good, { type: 'raw', line: line('seeds/t.json', { type: 'hardlink' }) }],
    ],
    ['a line that is not JSON', [seedsDir, good, { type: 'raw', line: '{"path":"seeds/x.json",' }]],
  ];

  for (const [name, entries] of cases) {
    it(name, async () => {
      const { root, backupDir, target } = await arena();
      writeHandBackup(backupDir, entries);
      const before = fingerprintTree(root);
      for (const mode of MODES) {
        await expect(restore({ backup: backupDir, target, mode })).rejects.toMatchObject({
          code: 'ERR_INDEX_INVALID',
        });
      }
      expect(fingerprintTree(root)).toEqual(before);
      expect(existsSync('/etc/statesnap-hostile-x')).toBe(false);
      const checked = await verify({ backup: backupDir });
      expect(checked.exitCode).toBe(1);
      expect(checked.problems.byProblem).toMatchObject({ manifest: 1 });
    });
  }

  it('a manifest section that climbs out is a note, never a path: nothing outside is read or counted', async () => {
    const { root, backupDir, target, outside } = await arena();
    writeHandBackup(backupDir, [seedsDir, good], {
      sections: [{ name: '../outside/mem', entry_count: 1 }],
    });
    const outsideBefore = fingerprintTree(outside);
    for (const mode of MODES) {
      const run = await runCli(['restore', '--json', '--mode', mode, backupDir, target]);
      expect(run.exitCode, run.stderr).toBe(0);
      expect(JSON.parse(run.stdout).notes).toEqual([
        expect.objectContaining({ note: 'section-name', path: join(backupDir, 'manifest.json') }),
      ]);
      expect(readFileSync(join(target, 'seeds/ok.json'), 'utf8')).toBe('{}');
    }
    expect(fingerprintTree(outside)).toEqual(outsideBefore);
    expect(readdirSync(root).sort()).toEqual(
      ['backup', 'outside', 'target', ...restoreSiblings(target)].sort(),
    );
  });

  it('case collisions: refused in merge mode, restored side by side on a case-sensitive filesystem (replace)', async () => {
    const { backupDir, target } = await arena();
    writeHandBackup(backupDir, [
      seedsDir,
      { type: 'file', path: 'seeds/A.json', content: 'upper' },
      { type: 'file', path: 'seeds/a.json', content: 'lower' },
    ]);
    const before = fingerprintTree(target);
    await expect(restore({ backup: backupDir, target, mode: 'merge' })).rejects.toMatchObject({
      code: 'ERR_INDEX_INVALID',
    });
    expect(fingerprintTree(target)).toEqual(before);
    await restore({ backup: backupDir, target, keep: false });
    expect(readdirSync(join(target, 'seeds')).sort()).toEqual(['A.json', 'a.json']);
  });
});

describe('symlinks planted in a backup are never followed', () => {
  it('an index file that is a symlink to an outside file (with the hash of what it points to) is refused', async () => {
    const { root, backupDir, target } = await arena();
    writeHandBackup(backupDir, [
      { type: 'dir', path: 'seeds' },
      { type: 'file', path: 'seeds/a.json', content: SECRET, onDisk: false },
    ]);
    symlinkSync(join(root, 'outside', 'secret.json'), join(backupDir, 'seeds/a.json'));
    const before = fingerprintTree(root);
    for (const mode of MODES) {
      for (const verifyFiles of [true, false]) {
        await expect(restore({ backup: backupDir, target, mode, verify: verifyFiles })).rejects.toMatchObject(
          {
            code: 'ERR_BACKUP_CORRUPT',
            path: join(backupDir, 'seeds/a.json'),
          },
        );
      }
    }
    expect(fingerprintTree(root)).toEqual(before);
  });

  it('an index directory that is a symlink to an outside folder is refused', async () => {
    const { root, backupDir, target } = await arena();
    writeHandBackup(backupDir, [
      { type: 'dir', path: 'dir', onDisk: false },
      { type: 'file', path: 'dir/f.json', content: SECRET, onDisk: false },
    ]);
    symlinkSync(join(root, 'outside', 'dir'), join(backupDir, 'dir'));
    const before = fingerprintTree(root);
    for (const mode of MODES) {
      for (const verifyFiles of [true, false]) {
        await expect(restore({ backup: backupDir, target, mode, verify: verifyFiles })).rejects.toMatchObject(
          {
            code: 'ERR_BACKUP_CORRUPT',
          },
        );
      }
    }
    expect(fingerprintTree(root)).toEqual(before);
  });

  it('a symlink the index does not list is not restored, and verify calls it extra', async () => {
    const { root, backupDir, target, outside } = await arena();
    writeHandBackup(backupDir, [
      { type: 'dir', path: 'seeds' },
      { type: 'file', path: 'seeds/ok.json', content: '{}' },
    ]);
    symlinkSync(join(outside, 'secret.json'), join(backupDir, 'seeds/evil.json'));
    symlinkSync(join(outside, 'dir'), join(backupDir, 'evil-dir'));
    const outsideBefore = fingerprintTree(outside);
    await restore({ backup: backupDir, target, mode: 'merge' });
    await restore({ backup: backupDir, target: join(root, 'fresh') });
    for (const restored of [target, join(root, 'fresh')]) {
      expect(existsSync(join(restored, 'seeds/evil.json'))).toBe(false);
      expect(existsSync(join(restored, 'evil-dir'))).toBe(false);
    }
    expect(fingerprintTree(outside)).toEqual(outsideBefore);
    const checked = await verify({ backup: backupDir });
    expect(checked.problems.list.map((p) => [p.problem, p.path]).sort()).toEqual([
      ['extra', join(backupDir, 'evil-dir')],
      ['extra', join(backupDir, 'seeds/evil.json')],
    ]);
  });

  it('Oxios backup: file and folder symlinks pointing outside are skipped and reported, both modes', async () => {
    const { backupDir, target, outside } = await arena();
    await createTree(backupDir, {
      seeds: { 'a.json': file('{"a":1}'), 'evil.json': symlink(join(outside, 'secret.json')) },
      memory: symlink(join(outside, 'mem')),
    });
    writeOxiosManifest(backupDir, [{ name: 'seeds', entry_count: 2 }]);
    const outsideBefore = fingerprintTree(outside);
    for (const mode of MODES) {
      const result = await restore({ backup: backupDir, target, mode });
      expect(result.skipped).toMatchObject({ count: 2, byKind: { symlink: 2 } });
      expect(result.warnings.count).toBe(2);
      expect(result.exitCode).toBe(3);
      expect(existsSync(join(target, 'seeds/evil.json'))).toBe(false);
      expect(existsSync(join(target, 'memory'))).toBe(false);
      expect(readFileSync(join(target, 'seeds/a.json'), 'utf8')).toBe('{"a":1}');
    }
    expect(fingerprintTree(outside)).toEqual(outsideBefore);
    expect(Object.values(fingerprintTree(target)).map((entry) => entry.sha256)).not.toContain(sha256(SECRET));
  });
});

describe('a target holding symlinks (merge mode)', () => {
  it('a symlinked subdirectory pointing outside is refused, never written through', async () => {
    const { root, backupDir, target, outside } = await arena();
    await createTree(join(root, 'store'), { memory: { facts: { 'f.json': file('{"new":1}') } } });
    await backup({ source: join(root, 'store'), dest: backupDir });
    symlinkSync(join(outside, 'mem'), join(target, 'memory'));
    const before = fingerprintTree(root);
    const run = await runCli(['restore', '--mode', 'merge', backupDir, target]);
    expect(run).toMatchObject({ exitCode: 1, stdout: '' });
    expect(run.stderr).toContain('[ERR_TARGET_INVALID]');
    expect(run.stderr).toContain(join(target, 'memory'));
    expect(fingerprintTree(root)).toEqual(before);
    // Replace mode builds a new tree: the link goes aside with the rest of the old target, outside untouched.
    const outsideBefore = fingerprintTree(outside);
    await restore({ backup: backupDir, target });
    expect(readFileSync(join(target, 'memory/facts/f.json'), 'utf8')).toBe('{"new":1}');
    expect(fingerprintTree(outside)).toEqual(outsideBefore);
  });

  it('a file symlink pointing outside is replaced by the restored file; its pointee is untouched', async () => {
    const { root, backupDir, target, outside } = await arena();
    await createTree(join(root, 'store'), { seeds: { 'a.json': file('restored a') } });
    await backup({ source: join(root, 'store'), dest: backupDir });
    // The planted link sits exactly where the backup has a file.
    const planted = join(target, 'seeds', 'a.json');
    unlinkSync(planted);
    symlinkSync(join(outside, 'secret.json'), planted);
    const outsideBefore = fingerprintTree(outside);
    await restore({ backup: backupDir, target, mode: 'merge' });
    expect(readFileSync(planted, 'utf8')).toBe('restored a');
    expect(fingerprintTree(outside)).toEqual(outsideBefore);
    expect(readFileSync(join(outside, 'secret.json'), 'utf8')).toBe(SECRET);
  });
});

describe('a tampered backup (one byte flipped)', () => {
  it('verify and restore both fail naming the file; the target is untouched', async () => {
    const { root, backupDir, target } = await arena();
    const store = join(root, 'store');
    await createTree(store, {
      seeds: { 'a.json': file('{"a":1}') },
      memory: { facts: { 'f.json': file('{"fact":"x"}'), 'big.json': file(randomBytes(2 * 1024 * 1024)) } },
    });
    await backup({ source: store, dest: backupDir });
    for (const rel of ['memory/facts/f.json', 'memory/facts/big.json']) {
      const path = join(backupDir, rel);
      const bytes = readFileSync(path);
      const flipped = Buffer.from(bytes);
      flipped[Math.floor(bytes.length / 2)]! ^= 0x01;
      writeFileSync(path, flipped);
      const before = fingerprintTree(root);
      const checked = await runCli(['verify', '--json', backupDir]);
      expect(checked.exitCode).toBe(1);
      const result = JSON.parse(checked.stdout);
      expect(result.problems.list).toEqual([expect.objectContaining({ problem: 'corrupt', path })]);
      for (const mode of MODES) {
        const run = await runCli(['restore', '--mode', mode, backupDir, target]);
        expect(run).toMatchObject({ exitCode: 1, stdout: '' });
        expect(run.stderr).toContain('[ERR_BACKUP_CORRUPT]');
        expect(run.stderr).toContain(path);
      }
      expect(fingerprintTree(root)).toEqual(before);
      expect(restoreSiblings(target)).toEqual([]);
      writeFileSync(path, bytes);
    }
  });
});

describe('failures while writing leave the target as it was and no staging behind', () => {
  async function bigBackup(root: string): Promise<string> {
    const store = join(root, 'store');
    const files: Record<string, ReturnType<typeof file>> = {};
    for (let i = 0; i < 40; i++) files[`f-${i}.json`] = file(randomBytes(100 * 1024));
    await createTree(store, { seeds: files });
    const backupDir = join(root, 'backup');
    await backup({ source: store, dest: backupDir });
    return backupDir;
  }

  /**
   * A 4 MB backup (40 files), and a live target on a tmpfs of its own mounted with `options` (`size=2m`,
   * `nr_inodes=…`); skipped where mounting is not allowed.
   */
  async function onSmallTmpfs(ctx: TestContext, options: string) {
    const root = tempDir();
    const backupDir = await bigBackup(root);
    const mnt = join(root, 'mnt');
    mkdirSync(mnt);
    if (!tryMount(['-t', 'tmpfs', '-o', options, 'tmpfs'], mnt)) {
      ctx.skip('cannot mount a tmpfs here (not root?)');
    }
    const target = join(mnt, 'target');
    await createTree(target, { 'live.json': file('live'), seeds: { 'f-1.json': file('old f-1') } });
    return { backupDir, mnt, target };
  }

  /**
   * Fills the filesystem of `dir` once the restore starts copying (its room was checked and found enough
   * before): the copy then fails midway with ENOSPC, as when another program fills the disk meanwhile.
   */
  function fillWhenCopying(dir: string): (progress: RestoreProgress) => void {
    let filled = false;
    return (progress) => {
      if (progress.phase !== 'copying' || filled) return;
      filled = true;
      const fd = openSync(join(dir, 'filler'), 'w');
      try {
        for (const chunk = Buffer.alloc(256 * 1024); ; ) writeSync(fd, chunk);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
      } finally {
        closeSync(fd);
      }
    };
  }

  it('the staging tree does not fit: refused up front (ERR_TARGET_NO_SPACE), target untouched, nothing left', async (ctx) => {
    const { backupDir, mnt, target } = await onSmallTmpfs(ctx, 'size=2m');
    const before = fingerprintTree(target);
    const run = await runCli(['restore', backupDir, target]);
    expect(run.exitCode).toBe(1);
    expectOneLineError(run, 'ERR_TARGET_NO_SPACE');
    expect(run.stderr).toContain(mnt);
    expect(fingerprintTree(target)).toEqual(before);
    expect(readdirSync(mnt)).toEqual(['target']);
  });

  it('not enough inodes, or not enough room for what a merge adds: refused up front, both modes', async (ctx) => {
    for (const options of ['size=64m,nr_inodes=40', 'size=3m']) {
      const { backupDir, mnt, target } = await onSmallTmpfs(ctx, options);
      const before = fingerprintTree(target);
      for (const mode of MODES) {
        await expect(
          restore({ backup: backupDir, target, mode }),
          `${mode}, ${options}`,
        ).rejects.toMatchObject({
          code: 'ERR_TARGET_NO_SPACE',
          path: mode === 'merge' ? target : mnt,
        });
      }
      expect(fingerprintTree(target)).toEqual(before);
      expect(readdirSync(mnt)).toEqual(['target']);
      unmountAll();
    }
  });

  it('ENOSPC midway (the disk filled meanwhile): replace mode fails, target untouched, staging removed', async (ctx) => {
    const { backupDir, mnt, target } = await onSmallTmpfs(ctx, 'size=16m');
    const before = fingerprintTree(target);
    const failed = restore({ backup: backupDir, target, onProgress: fillWhenCopying(mnt) });
    await expect(failed).rejects.toMatchObject({ code: 'ERR_TARGET_WRITE', message: /ENOSPC|no space/ });
    expect(fingerprintTree(target)).toEqual(before);
    expect(readdirSync(mnt).sort()).toEqual(['filler', 'target']);
  });

  it('ENOSPC midway in merge mode: every file is whole (old or new), no temp file is left', async (ctx) => {
    const { backupDir, mnt, target } = await onSmallTmpfs(ctx, 'size=16m');
    const failed = restore({ backup: backupDir, target, mode: 'merge', onProgress: fillWhenCopying(mnt) });
    await expect(failed).rejects.toMatchObject({ code: 'ERR_TARGET_WRITE' });
    expect(readFileSync(join(target, 'live.json'), 'utf8')).toBe('live');
    for (const name of readdirSync(join(target, 'seeds'))) {
      expect(name).toMatch(/^f-\d+\.json$/);
      const content = readFileSync(join(target, 'seeds', name));
      const original = readFileSync(join(backupDir, 'seeds', name));
      if (name === 'f-1.json' && content.toString() === 'old f-1') continue;
      expect(content.equals(original), `${name} is whole`).toBe(true);
    }
    expect(readdirSync(mnt).sort()).toEqual(['filler', 'target']);
  });

  it('a read-only filesystem (EROFS): refused cleanly, target untouched', async (ctx) => {
    const { backupDir, mnt, target } = await onSmallTmpfs(ctx, 'size=8m');
    if (!tryMount(['-o', 'remount,ro'], mnt)) ctx.skip('cannot remount read-only here');
    const before = fingerprintTree(target);
    for (const mode of MODES) {
      await expect(restore({ backup: backupDir, target, mode })).rejects.toMatchObject({
        code: 'ERR_TARGET_WRITE',
      });
    }
    expect(fingerprintTree(target)).toEqual(before);
    expect(readdirSync(mnt)).toEqual(['target']);
  });
});

describe('an interrupted restore', () => {
  // A backup of a store copied in several batches, made once; no test changes it.
  let backupDir = '';
  beforeAll(async () => {
    const root = fixtureDir();
    const generated = await generateStore(join(root, 'store'), { profile: 'tiny-files', scale: 0.0006 });
    expect(generated.files).toBeGreaterThan(2 * 256);
    backupDir = join(root, 'backup');
    await backup({ source: join(root, 'store'), dest: backupDir, sync: false });
  }, 60_000);
  afterAll(cleanupFixtures);

  it('AbortSignal mid-run (replace: in its copy, merge: in its check): ERR_ABORTED, target untouched, staging removed', async () => {
    const target = join(tempDir(), 'target');
    await createTree(target, { 'live.json': file('live') });
    const before = fingerprintTree(target);
    for (const [mode, phase] of [
      ['replace', 'copying'],
      // Merge mode checks every backup file before it writes anything: that check is what it is stopped in.
      ['merge', 'verifying'],
    ] as const) {
      const controller = new AbortController();
      let abortedIn: string | null = null;
      await expect(
        restore({
          backup: backupDir,
          target,
          mode,
          onProgress: (p) => {
            if (p.filesDone > 0 && abortedIn === null) {
              abortedIn = p.phase;
              controller.abort();
            }
          },
          signal: controller.signal,
        }),
      ).rejects.toMatchObject({ code: 'ERR_ABORTED' });
      expect(abortedIn, mode).toBe(phase);
      expect(fingerprintTree(target)).toEqual(before);
      expect(restoreSiblings(target)).toEqual([]);
    }
  });

  it('SIGINT (CLI) during the copy: exit 130, target untouched, staging removed', async () => {
    const target = join(tempDir(), 'target');
    await createTree(target, { 'live.json': file('live') });
    const before = fingerprintTree(target);
    // Stopped after its first batch of files (of several), signalled, then let go on: mid-copy for certain.
    const running = startPausedCli(['restore', '--threads', '1', backupDir, target], ['copying']);
    await running.reached('copying');
    // The journal is the target's lock for the whole run.
    expect(restoreSiblings(target)).toEqual([
      'target.restore-journal',
      expect.stringMatching(/^target\.staging-/),
    ]);
    running.child.kill('SIGINT');
    running.resume();
    const run = await running.done;
    expect(run.exitCode).toBe(130);
    expect(run.stderr).toContain('[ERR_ABORTED]');
    expect(fingerprintTree(target)).toEqual(before);
    expect(restoreSiblings(target)).toEqual([]);
  });
});
