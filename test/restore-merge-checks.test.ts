// A merge cannot be undone, so it checks every path of the backup against the live target before its first
// write (types, name lengths, permissions it can tell) and refuses with the target byte for byte as it was;
// and it never creates anything outside the target, even while a target directory is swapped for a symlink.

import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isStatesnapError, restore } from '../dist/src/index.js';
import { expectOneLineError } from './helpers/backup.js';
import { fingerprint, type HandEntry, restoreSiblings, writeHandBackup } from './helpers/restore.js';
import {
  cleanup,
  createTree,
  file,
  giveToUnprivileged,
  isRoot,
  runCli,
  runCliUnprivileged,
  type Tree,
  tempDir,
} from './helpers/tree.js';

afterEach(cleanup);

/** `count` files `<dir>/f-NNN.json`, listed before whatever comes next in the index: written first. */
function manyFiles(dir: string, count: number, content = 'from the backup'): HandEntry[] {
  return Array.from({ length: count }, (_, i) => ({
    type: 'file' as const,
    path: `${dir}/f-${String(i).padStart(3, '0')}.json`,
    content: `${content} ${i}`,
  }));
}

/** The same files in the live target, with other content: a merge that writes any of them changes them. */
function liveFiles(count: number): Tree {
  const tree: Tree = {};
  for (let i = 0; i < count; i++) tree[`f-${String(i).padStart(3, '0')}.json`] = file(`live ${i}`);
  return tree;
}

/** root/{backup, target}; the backup is hand-built so the order of its entries is the order given. */
async function arena(entries: HandEntry[], live: Tree) {
  const root = tempDir();
  const backupDir = join(root, 'backup');
  const target = join(root, 'target');
  writeHandBackup(backupDir, [{ type: 'dir', path: 'seeds' }, ...entries]);
  await createTree(target, live);
  return { root, backupDir, target };
}

describe('type conflicts are refused before the first write (ERR_TARGET_INVALID)', () => {
  it('a directory in the target where the backup has a file', async () => {
    const { root, backupDir, target } = await arena(
      [...manyFiles('seeds', 200), { type: 'file', path: 'seeds/zz.json', content: 'a file' }],
      { seeds: { ...liveFiles(200), 'zz.json': { 'inside.json': file('a live file in a folder') } } },
    );
    const before = fingerprint(root);
    const run = await runCli(['restore', '--mode', 'merge', backupDir, target]);
    expect(run.exitCode).toBe(1);
    expectOneLineError(run, 'ERR_TARGET_INVALID');
    expect(run.stderr).toContain(join(target, 'seeds/zz.json'));
    expect(fingerprint(root)).toEqual(before);
  });

  it('a file in the target where the backup has a directory (and one below a directory it lists)', async () => {
    const { root, backupDir, target } = await arena(
      [
        ...manyFiles('seeds', 200),
        { type: 'dir', path: 'seeds/zz' },
        { type: 'file', path: 'seeds/zz/a.json', content: 'a file in a folder' },
      ],
      { seeds: { ...liveFiles(200), zz: file('a live file') } },
    );
    const before = fingerprint(root);
    await expect(restore({ backup: backupDir, target, mode: 'merge' })).rejects.toMatchObject({
      code: 'ERR_TARGET_INVALID',
      path: target,
    });
    expect(fingerprint(root)).toEqual(before);
  });
});

describe('long names', () => {
  for (const length of [230, 255]) {
    it(`a file name of ${length} bytes restores by merge (its temp name fits too)`, async () => {
      const name = `${'n'.repeat(length - 5)}.json`;
      const { backupDir, target } = await arena(
        [
          // Files before it, so each thread's temp file counter has two digits by then.
          ...manyFiles('seeds', 100),
          { type: 'file', path: `seeds/${name}`, content: 'long' },
          { type: 'file', path: name, content: 'long, at the top' },
          { type: 'dir', path: 'seeds/new' },
          { type: 'file', path: `seeds/new/${name}`, content: 'long, in a new folder' },
        ],
        { seeds: { ...liveFiles(100), [name]: file('old') } },
      );
      const run = await runCli(['restore', '--mode', 'merge', backupDir, target]);
      expect(run.exitCode, run.stderr).toBe(0);
      expect(readFileSync(join(target, 'seeds', name), 'utf8')).toBe('long');
      expect(readFileSync(join(target, name), 'utf8')).toBe('long, at the top');
      expect(readFileSync(join(target, 'seeds/new', name), 'utf8')).toBe('long, in a new folder');
      expect(readdirSync(join(target, 'seeds'))).toHaveLength(102);
      expect(readdirSync(join(target, 'seeds/new'))).toEqual([name]);
    });
  }

  it('a name longer than the filesystem allows is refused before the first write, in an existing folder or a new one', async () => {
    const tooLong = `${'n'.repeat(300)}.json`;
    for (const path of [`seeds/${tooLong}`, `seeds/new/deeper/${tooLong}`]) {
      const { root, backupDir, target } = await arena(
        [
          ...manyFiles('seeds', 50),
          { type: 'dir', path: 'seeds/new' },
          { type: 'dir', path: 'seeds/new/deeper' },
          // Never on disk: no filesystem here can hold the name; the index alone names it.
          { type: 'file', path, content: 'x', onDisk: false },
        ],
        { seeds: liveFiles(50) },
      );
      const before = fingerprint(root);
      const error = await restore({ backup: backupDir, target, mode: 'merge' }).catch((e: unknown) => e);
      expect(isStatesnapError(error) && error.code, String(error)).toBe('ERR_TARGET_INVALID');
      expect((error as Error).message).toContain('ENAMETOOLONG');
      expect(fingerprint(root)).toEqual(before);
    }
  });
});

describe('permissions are checked before the first write (unprivileged)', () => {
  /** An arena the unprivileged user owns (backup and target), with `prepare` run on it last. */
  async function ownedArena(entries: HandEntry[], live: Tree, prepare: (target: string) => void) {
    const made = await arena(entries, live);
    chmodSync(made.root, 0o755);
    giveToUnprivileged(made.root);
    prepare(made.target);
    return made;
  }

  it('a target folder that is not writable: ERR_TARGET_WRITE naming it, target untouched', async () => {
    const { root, backupDir, target } = await ownedArena(
      [
        ...manyFiles('seeds', 200),
        { type: 'dir', path: 'seeds/zz' },
        { type: 'file', path: 'seeds/zz/a.json', content: 'into a read-only folder' },
      ],
      { seeds: { ...liveFiles(200), zz: { 'old.json': file('old') } } },
      (target) => chmodSync(join(target, 'seeds/zz'), 0o555),
    );
    const before = fingerprint(root);
    const run = await runCliUnprivileged(['restore', '--mode', 'merge', backupDir, target]);
    expect(run.exitCode).toBe(1);
    expectOneLineError(run, 'ERR_TARGET_WRITE');
    expect(run.stderr).toContain(join(target, 'seeds/zz'));
    expect(run.stderr).toContain('EACCES');
    expect(fingerprint(root)).toEqual(before);
    expect(restoreSiblings(target)).toEqual([]);
  });

  it('a target folder owned by another user (its mode and mtime cannot be restored): refused, untouched', async () => {
    const { root, backupDir, target } = await ownedArena(
      [
        ...manyFiles('seeds', 200),
        { type: 'dir', path: 'seeds/zz' },
        { type: 'file', path: 'seeds/zz/a.json', content: 'x' },
      ],
      { seeds: { ...liveFiles(200), zz: {} } },
      (target) => {
        // Writable by everyone, but its owner is someone else: only chmod/utimes by the owner work.
        rmSync(join(target, 'seeds/zz'), { recursive: true });
        mkdirSync(join(target, 'seeds/zz'));
        chmodSync(join(target, 'seeds/zz'), 0o777);
      },
    );
    const before = fingerprint(root);
    const run = await runCliUnprivileged(['restore', '--mode', 'merge', backupDir, target]);
    if (!isRoot) {
      // Run as the owner of everything (no root to own seeds/zz): nothing to refuse.
      expect(run.exitCode, run.stderr).toBe(0);
      return;
    }
    expect(run.exitCode).toBe(1);
    expectOneLineError(run, 'ERR_TARGET_WRITE');
    expect(run.stderr).toContain(join(target, 'seeds/zz'));
    expect(fingerprint(root)).toEqual(before);
  });
});

describe('a target folder swapped for a symlink while the merge runs', () => {
  // Swaps <target>/sub for a symlink to `outside` and back, as fast as it can, until `stop` exists; says
  // ESCAPED (and stops) if anything ever appears in `outside`. A step that fails (the merge made a new `sub`
  // while the real one was aside) is skipped, and the real one always goes back: any state is fair, as long
  // as nothing lands outside.
  const SWAPPER = `
const fs = require('node:fs');
const [sub, real, link, outside, stop] = process.argv.slice(1);
const attempt = (step) => { try { step(); return true; } catch { return false; } };
let swaps = 0;
while (!fs.existsSync(stop)) {
  if (fs.readdirSync(outside).length > 0) { console.log('ESCAPED ' + fs.readdirSync(outside).join(' ')); break; }
  if (!attempt(() => fs.renameSync(sub, real))) continue;
  attempt(() => fs.symlinkSync(outside, link));
  if (attempt(() => fs.renameSync(link, sub))) swaps++;
  attempt(() => fs.unlinkSync(link));
  for (let i = 0; i < 50; i++) fs.existsSync(stop); // a moment with the symlink in place
  // The real one goes back, in place of whatever is at \`sub\` now (the link, or a folder the merge made).
  while (!attempt(() => fs.renameSync(real, sub))) {
    attempt(() => (fs.lstatSync(sub).isSymbolicLink() ? fs.unlinkSync(sub) : fs.rmSync(sub, { recursive: true })));
  }
}
console.log('swaps ' + swaps);
`;

  it('nothing is ever created outside the target, neither folders nor files (also run unprivileged)', async () => {
    const root = tempDir();
    const outside = join(root, 'outside');
    mkdirSync(outside);
    const entries: HandEntry[] = [{ type: 'dir', path: 'sub' }];
    for (let d = 0; d < 300; d++) {
      entries.push({ type: 'dir', path: `sub/d${d}` });
      entries.push({ type: 'file', path: `sub/d${d}/f.json`, content: `file ${d}` });
    }
    const backupDir = join(root, 'backup');
    writeHandBackup(backupDir, entries);
    const target = join(root, 'target');
    await createTree(target, { sub: { 'live.json': file('live') } });
    const stop = join(root, 'stop');
    const swapper = spawn(
      process.execPath,
      ['-e', SWAPPER, join(target, 'sub'), join(target, 'sub.real'), join(target, 'sub.link'), outside, stop],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let said = '';
    swapper.stdout.on('data', (chunk) => {
      said += chunk;
    });
    const exited = new Promise((done) => swapper.on('close', done));
    const outcomes = new Map<string, number>();
    try {
      // Until enough runs got past the checks into writing (a run that saw the symlink is refused up front).
      for (let attempt = 0; attempt < 400 && (outcomes.get('wrote') ?? 0) < 15; attempt++) {
        if (said.includes('ESCAPED') || existsSync(join(outside, 'd0'))) break;
        const outcome = await restore({ backup: backupDir, target, mode: 'merge', sync: false, threads: 2 })
          .then(() => 'wrote')
          .catch((error: unknown) => {
            if (!isStatesnapError(error)) throw error;
            return error.code === 'ERR_TARGET_INVALID'
              ? 'refused'
              : error.code === 'ERR_TARGET_WRITE'
                ? 'wrote'
                : error.code;
          });
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      }
    } finally {
      writeFileSync(stop, '');
      await exited;
    }
    expect(said).not.toContain('ESCAPED');
    expect(Number(/swaps (\d+)/.exec(said)?.[1]), said).toBeGreaterThan(100);
    expect(readdirSync(outside)).toEqual([]);
    expect([...outcomes.keys()].sort(), JSON.stringify([...outcomes])).toEqual(
      expect.arrayContaining(['wrote']),
    );
    for (const key of outcomes.keys()) expect(['wrote', 'refused']).toContain(key);
  }, 240_000);
});
