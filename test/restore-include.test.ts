// restore --include (partial restore) on a store changed in every way a snapshot tells apart: merge puts back
// exactly the selected paths and leaves the rest of the live store alone; replace takes a selection only for a
// new or empty target; a pattern that selects nothing, or replace over a live target, changes nothing.

import { chmodSync, mkdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { backup, restore } from '../dist/src/index.js';
import { expectOneLineError } from './helpers/backup.js';
import { restoreSiblings } from './helpers/restore.js';
import {
  cleanup,
  createTree,
  dir,
  file,
  filterPrint,
  fingerprintTree,
  runCli,
  type TreePrint,
  tempDir,
} from './helpers/tree.js';

afterEach(cleanup);

async function storeAndBackup(): Promise<{
  root: string;
  store: string;
  saved: string;
  original: TreePrint;
}> {
  const root = tempDir('statesnap-include-');
  const store = join(root, 'store');
  await createTree(store, {
    seeds: dir({ 'a.md': file('# seed a\n'), 'b.md': file('# seed b\n') }),
    memory: dir({
      facts: dir({
        'f1.json': file('{"fact":1}'),
        'f2.json': file('{"fact":2}'),
        'f3.json': file('{"fact":3}', { mode: 0o644 }),
        'f4.json': file('{"fact":4}'),
      }),
      episodes: dir({ 'e1.md': file('episode one') }),
    }),
    notes: dir({ 'n.txt': file('loose') }),
  });
  const saved = join(root, 'backup');
  await backup({ source: store, dest: saved, sync: false });
  return { root, store, saved, original: fingerprintTree(store) };
}

/** Every change kind under memory/facts, and some outside it; returns what the store looks like then. */
function changeStore(store: string): TreePrint {
  const facts = join(store, 'memory/facts');
  const f1 = join(facts, 'f1.json');
  const { atime, mtime } = statSync(f1);
  writeFileSync(f1, '{"fact":9}'); // same size, mtime put back (touch -r)
  utimesSync(f1, atime, mtime);
  writeFileSync(join(facts, 'f2.json.new'), '{"fact":"two, renamed over"}');
  renameSync(join(facts, 'f2.json.new'), join(facts, 'f2.json')); // rename-replace, as Oxios writes
  chmodSync(join(facts, 'f3.json'), 0o600); // mode only
  renameSync(join(facts, 'f4.json'), join(facts, 'f4-renamed.json')); // renamed: f4 deleted, f4-renamed added
  writeFileSync(join(facts, 'f5.json'), '{"fact":5}'); // added
  rmSync(join(store, 'seeds/b.md')); // deleted, outside the selection
  writeFileSync(join(store, 'notes/n.txt'), 'loose, and changed'); // changed, outside the selection
  return fingerprintTree(store);
}

const inFacts = (rel: string) => rel === 'memory/facts' || rel.startsWith('memory/facts/');

describe('restore --include', () => {
  it('in merge mode puts back exactly the selected subtree, whatever changed in it, and nothing else', async () => {
    const { store, saved, original } = await storeAndBackup();
    const changed = changeStore(store);
    const result = await restore({ backup: saved, target: store, mode: 'merge', include: ['memory/facts'] });
    expect(result).toMatchObject({ include: ['memory/facts'], files: 4, dirs: 2, rollback: null });
    const now = fingerprintTree(store);
    // Inside the selection: every file of the backup back as it was (content, mode, mtime); the files the
    // store added there (f5, f4-renamed) stay, as a merge keeps what the backup lacks.
    expect(filterPrint(now, (rel) => inFacts(rel) && rel !== 'memory/facts')).toEqual({
      ...filterPrint(original, (rel) => inFacts(rel) && rel !== 'memory/facts'),
      'memory/facts/f4-renamed.json': changed['memory/facts/f4-renamed.json'],
      'memory/facts/f5.json': changed['memory/facts/f5.json'],
    });
    // Outside it: the live store as it was changed, untouched.
    expect(filterPrint(now, (rel) => !rel.startsWith('memory'))).toEqual(
      filterPrint(changed, (rel) => !rel.startsWith('memory')),
    );
    expect(now['memory/episodes/e1.md']).toEqual(changed['memory/episodes/e1.md']);
    expect(restoreSiblings(store)).toEqual([]);
  }, 60_000);

  it('selects files by glob at any depth, and a directory with everything below it', async () => {
    const { root, saved, original } = await storeAndBackup();
    const target = join(root, 'restored');
    const result = await restore({ backup: saved, target, include: ['*.md', 'notes/'] });
    expect(result).toMatchObject({ files: 4, mode: 'replace', createdTarget: true });
    // Only the selected files, and the directories leading to them (memory/facts, which holds no match, is not made).
    expect(Object.keys(fingerprintTree(target))).toEqual([
      'memory',
      'memory/episodes',
      'memory/episodes/e1.md',
      'notes',
      'notes/n.txt',
      'seeds',
      'seeds/a.md',
      'seeds/b.md',
    ]);
    const restored = fingerprintTree(target);
    for (const rel of ['memory/episodes', 'memory/episodes/e1.md', 'notes', 'notes/n.txt', 'seeds/a.md']) {
      expect(restored[rel], rel).toEqual(original[rel]);
    }
  }, 60_000);

  it('a pattern crosses names holding a newline: ** selects every entry, a bare name is found below one', async () => {
    const root = tempDir('statesnap-include-');
    const store = join(root, 'store');
    await createTree(store, {
      'top\nline.md': file('newline in a file name'),
      'dir\nname': dir({ facts: dir({ 'f.json': file('{"deep":1}') }) }),
      'plain.md': file('plain'),
    });
    const saved = join(root, 'backup');
    await backup({ source: store, dest: saved, sync: false });
    const everything = join(root, 'everything');
    expect(await restore({ backup: saved, target: everything, include: ['**'] })).toMatchObject({ files: 3 });
    expect(fingerprintTree(everything)).toEqual(fingerprintTree(store));
    const facts = join(root, 'facts');
    expect(await restore({ backup: saved, target: facts, include: ['facts'] })).toMatchObject({ files: 1 });
    expect(Object.keys(fingerprintTree(facts))).toEqual([
      'dir\nname',
      'dir\nname/facts',
      'dir\nname/facts/f.json',
    ]);
  }, 60_000);

  it('restores a directory that the live store replaced by a file only by refusing, changing nothing', async () => {
    const { store, saved } = await storeAndBackup();
    rmSync(join(store, 'memory/episodes'), { recursive: true });
    writeFileSync(join(store, 'memory/episodes'), 'a file where a folder was');
    const before = fingerprintTree(store);
    await expect(
      restore({ backup: saved, target: store, mode: 'merge', include: ['memory/episodes'] }),
    ).rejects.toMatchObject({ code: 'ERR_TARGET_INVALID' });
    expect(fingerprintTree(store)).toEqual(before);
  }, 60_000);

  it('refuses replace mode over a live target, an empty list, and a pattern that matches nothing, changing nothing', async () => {
    const { root, store, saved } = await storeAndBackup();
    const changed = changeStore(store);
    await expect(restore({ backup: saved, target: store, include: ['memory/facts'] })).rejects.toMatchObject({
      code: 'ERR_INVALID_OPTION',
      path: store,
    });
    await expect(restore({ backup: saved, target: store, mode: 'merge', include: [] })).rejects.toMatchObject(
      {
        code: 'ERR_INVALID_OPTION',
      },
    );
    await expect(
      restore({ backup: saved, target: store, mode: 'merge', include: ['memory/facts', 'memory/fact'] }),
    ).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
    expect(fingerprintTree(store)).toEqual(changed);
    expect(restoreSiblings(store)).toEqual([]);
    // An empty target loses nothing: replace takes the selection there.
    const empty = join(root, 'empty');
    mkdirSync(empty);
    await restore({ backup: saved, target: empty, include: ['seeds/a.md'] });
    expect(Object.keys(fingerprintTree(empty))).toEqual(['seeds', 'seeds/a.md']);
  }, 60_000);

  it('from the CLI: a dry run counts the selection, the restore writes it, a refusal is one line with exit 2', async () => {
    const { root, store, saved, original } = await storeAndBackup();
    changeStore(store);
    const plan = await runCli([
      'restore',
      '--dry-run',
      '--json',
      '--mode',
      'merge',
      '--include',
      'f3.json',
      saved,
      store,
    ]);
    expect(plan.exitCode, plan.stderr).toBe(0);
    expect(JSON.parse(plan.stdout)).toMatchObject({
      dryRun: true,
      files: 1,
      filesReplaced: 1,
      include: ['f3.json'],
    });
    const run = await runCli(['restore', '--mode', 'merge', '--include', 'f3.json', saved, store]);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toContain('(only --include f3.json)');
    expect(fingerprintTree(store)['memory/facts/f3.json']).toEqual(original['memory/facts/f3.json']);
    expectOneLineError(await runCli(['restore', '--include', 'memory', saved, store]), 'ERR_INVALID_OPTION');
    const missed = await runCli(['restore', '--include', 'nope', saved, join(root, 'new')]);
    expect(missed.exitCode).toBe(2);
    expectOneLineError(missed, 'ERR_INVALID_OPTION');
    expect(restoreSiblings(join(root, 'new'))).toEqual([]);
  }, 60_000);
});
