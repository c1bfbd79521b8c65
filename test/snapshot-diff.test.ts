// diff between two backups (from the indexes alone) and between a backup and the live store (reading only the
// files whose identity moved), on each kind of change, grouped by category; the real CLI for --json.

import { createHash } from 'node:crypto';
import {
  appendFileSync,
  chmodSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { backup, type DiffResult, diff } from '../dist/src/index.js';
import { cleanup, createTree, dir, file, runCli, tempDir } from './helpers/tree.js';

afterEach(cleanup);

// The racy rule hashes files changed within 2 s before a backup started: the store is made older than that.
const RACY_MARGIN_MS = 2_100;

async function storeAndBackup(): Promise<{ root: string; store: string; before: string }> {
  const root = tempDir('statesnap-diff-');
  const store = join(root, 'store');
  await createTree(store, {
    seeds: dir({ 'a.md': file('# seed a\n'), 'b.md': file('# seed b\n') }),
    memory: dir({
      facts: dir({
        'f1.json': file('{"fact":1}'),
        'f2.json': file('{"fact":2}'),
        'f3.json': file('{"fact":3}'),
        'f4.json': file('{"fact":4}'),
      }),
      episodes: dir({ 'e1.md': file('episode one') }),
    }),
    notes: dir({ 'n.txt': file('loose') }),
  });
  await new Promise((wake) => setTimeout(wake, RACY_MARGIN_MS));
  const before = join(root, 'before');
  await backup({ source: store, dest: before, sync: false });
  return { root, store, before };
}

/** One change of each kind; what diff must report, by path. */
function changeStore(store: string): Record<string, string> {
  const f1 = join(store, 'memory/facts/f1.json');
  const { atime, mtime } = statSync(f1);
  writeFileSync(f1, '{"fact":9}'); // same size, content rewritten, mtime put back
  utimesSync(f1, atime, mtime);
  writeFileSync(join(store, 'memory/facts/f2.json.new'), '{"fact":"two, renamed over"}');
  renameSync(join(store, 'memory/facts/f2.json.new'), join(store, 'memory/facts/f2.json'));
  chmodSync(join(store, 'memory/facts/f3.json'), 0o600);
  const f4 = join(store, 'memory/facts/f4.json');
  utimesSync(f4, new Date(), new Date()); // touched only: not a change
  rmSync(join(store, 'seeds/b.md'));
  writeFileSync(join(store, 'seeds/c.md'), '# seed c\n');
  rmSync(join(store, 'memory/episodes'), { recursive: true });
  writeFileSync(join(store, 'memory/episodes'), 'a file where a folder was');
  appendFileSync(join(store, 'notes/n.txt'), ' and longer');
  mkdirSync(join(store, 'memory/facts/sub'));
  return {
    'memory/facts/f1.json': 'changed',
    'memory/facts/f2.json': 'changed',
    'memory/facts/f3.json': 'mode-changed',
    'seeds/b.md': 'removed',
    'seeds/c.md': 'added',
    'memory/episodes': 'changed',
    'memory/episodes/e1.md': 'removed',
    'notes/n.txt': 'changed',
    'memory/facts/sub': 'added',
  };
}

function changesOf(result: DiffResult): Record<string, string> {
  return Object.fromEntries(result.entries.map((entry) => [entry.path, entry.change]));
}

describe('diff', () => {
  it('between two backups: every kind of change from the indexes alone, per category', async () => {
    const { root, store, before } = await storeAndBackup();
    const expected = changeStore(store);
    const after = join(root, 'after');
    await backup({ source: store, dest: after, sync: false });
    // Emptied files change nothing: the indexes are all diff reads.
    for (const backupDir of [before, after]) {
      for (const name of readdirSync(join(backupDir, 'memory/facts'))) {
        if (name.endsWith('.json')) truncateSync(join(backupDir, 'memory/facts', name), 0);
      }
    }
    const result = await diff({ a: before, b: after });
    expect(result.bKind).toBe('backup');
    expect(changesOf(result)).toEqual(expected);
    expect(result.counts).toEqual({ added: 2, removed: 2, changed: 4, modeChanged: 1 });
    const facts = result.byCategory.find((group) => group.category === 'memory/facts');
    expect(facts).toEqual({ category: 'memory/facts', added: 1, removed: 0, changed: 2, modeChanged: 1 });
    expect(result.entries.find((entry) => entry.path === 'notes/n.txt')?.category).toBe('(other)');
    expect(result.entries.map((entry) => entry.path)).toEqual([
      'memory/episodes',
      'memory/episodes/e1.md',
      'memory/facts/f1.json',
      'memory/facts/f2.json',
      'memory/facts/f3.json',
      'memory/facts/sub',
      'notes/n.txt',
      'seeds/b.md',
      'seeds/c.md',
    ]);
  }, 60_000);

  it('against the live store: the same changes, hashing only files whose identity moved at an unchanged size and mode', async () => {
    const { store, before } = await storeAndBackup();
    expect((await diff({ a: before, b: store })).counts).toEqual({
      added: 0,
      removed: 0,
      changed: 0,
      modeChanged: 0,
    });
    expect((await diff({ a: before, b: store })).filesHashed).toBe(0);
    const expected = changeStore(store);
    const result = await diff({ a: before, b: store });
    expect(result.bKind).toBe('live');
    expect(changesOf(result)).toEqual(expected);
    // Read: f1 (rewritten, mtime put back: its ctime moved), f3 (mode only), f4 (touched). Not read: every
    // file whose size changed, and every file left alone.
    expect(result.filesHashed).toBe(3);
  }, 60_000);

  it('prints one JSON document, and a failure document for a backup without an index', async () => {
    const { root, store, before } = await storeAndBackup();
    const run = await runCli(['diff', '--json', before, store]);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ command: 'diff', bKind: 'live', exitCode: 0 });
    const oxios = join(root, 'oxios');
    await createTree(oxios, { seeds: dir({ 'a.md': file('# a\n') }) });
    writeFileSync(
      join(oxios, 'manifest.json'),
      JSON.stringify({ version: 1, created_at: '2026-11-30T00:00:00Z', oxios_version: '1', sections: [] }),
    );
    const refused = await runCli(['diff', '--json', oxios, store]);
    expect(refused.exitCode).toBe(2);
    expect(JSON.parse(refused.stdout).error.code).toBe('ERR_INVALID_OPTION');
  }, 60_000);
});

/** Rewrites `backupDir`'s index as an older statesnap left it: not in canonical order, and not marked so. */
function unorderIndex(backupDir: string): void {
  const indexPath = join(backupDir, '.statesnap/index.jsonl');
  const lines = readFileSync(indexPath, 'utf8').trimEnd().split('\n');
  // Two files of one directory swapped: parents still come first, names no longer in order.
  const f1 = lines.findIndex((line) => line.includes('"memory/facts/f1.json"'));
  const f3 = lines.findIndex((line) => line.includes('"memory/facts/f3.json"'));
  [lines[f1], lines[f3]] = [lines[f3]!, lines[f1]!];
  const text = `${lines.join('\n')}\n`;
  writeFileSync(indexPath, text);
  const manifestPath = join(backupDir, 'manifest.json');
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
  delete manifest.statesnap.index_order;
  manifest.statesnap.index.sha256 = createHash('sha256').update(text).digest('hex');
  writeFileSync(manifestPath, JSON.stringify(manifest));
}

describe('diff of hostile names', () => {
  it('prints a name holding a newline on its one line, escaped, so it cannot forge another entry', async () => {
    const root = tempDir('statesnap-diff-names-');
    const store = join(root, 'store');
    const forged = 'x\n  - a.md';
    await createTree(store, { seeds: dir({ 'a.md': file('# a\n') }), [forged]: file('one') });
    const before = join(root, 'before');
    await backup({ source: store, dest: before, sync: false });
    writeFileSync(join(store, forged), 'three');
    const run = await runCli(['diff', before, store]);
    expect(run.exitCode, run.stderr).toBe(0);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines.filter((line) => line.startsWith('  '))).toEqual(['  M x\\n  - a.md']);
    const json = await runCli(['diff', '--json', before, store]);
    expect(JSON.parse(json.stdout).entries.map((e: { path: string }) => e.path)).toEqual([forged]);
  }, 60_000);
});

describe('diff of indexes in or out of canonical order', () => {
  it('streams canonical indexes and holds an unordered one in memory, saying so, with the same changes', async () => {
    const { root, store, before } = await storeAndBackup();
    const expected = changeStore(store);
    const after = join(root, 'after');
    await backup({ source: store, dest: after, sync: false });
    const streamed = await diff({ a: before, b: after });
    expect(streamed.streamed).toBe(true);
    expect((await diff({ a: before, b: store })).streamed).toBe(true);
    unorderIndex(before);
    const held = await diff({ a: before, b: after });
    expect(held.streamed).toBe(false);
    expect(changesOf(held)).toEqual(expected);
    expect(held.entries).toEqual(streamed.entries);
    const live = await diff({ a: before, b: store });
    expect(live.streamed).toBe(false);
    expect(changesOf(live)).toEqual(expected);
    const text = await runCli(['diff', before, after]);
    expect(text.exitCode, text.stderr).toBe(0);
    expect(text.stdout).toContain('is not in canonical order');
  }, 60_000);

  it('refuses an index marked canonical whose lines are out of order (ERR_INDEX_INVALID)', async () => {
    const { root, store, before } = await storeAndBackup();
    changeStore(store);
    const after = join(root, 'after');
    await backup({ source: store, dest: after, sync: false });
    unorderIndex(after);
    const manifestPath = join(after, 'manifest.json');
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
    manifest.statesnap.index_order = 'canonical';
    writeFileSync(manifestPath, JSON.stringify(manifest));
    await expect(diff({ a: before, b: after })).rejects.toMatchObject({ code: 'ERR_INDEX_INVALID' });
  }, 60_000);
});
