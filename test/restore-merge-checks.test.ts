// A merge writes into a live target: names as long as the filesystem allows restore (the temp names fit too),
// and nothing is ever created outside the target, even while a target directory is swapped for a symlink.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isStatesnapError, restore } from '../dist/src/index.js';
import { type HandEntry, writeHandBackup } from './helpers/restore.js';
import { cleanup, createTree, file, runCli, type Tree, tempDir } from './helpers/tree.js';

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

  it('nothing is ever created outside the target, neither folders nor files', async () => {
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
