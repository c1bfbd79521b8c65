// `backup --link-dest`: on real files, every change kind is made for real and the new backup links exactly
// the unchanged files (same inode as the previous backup's), copies the rest, and never changes an older
// backup; plus the link fallbacks, a previous backup without identity fields, a tampered previous backup,
// and the refusals of a --link-dest that cannot be linked from.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type BackupProgress, type BackupResult, backup, restore } from '../dist/src/index.js';
import {
  expectOneLineError,
  readBackupIndex,
  readManifestJson,
  tryMount,
  unmountAll,
} from './helpers/backup.js';
import { writeOxiosManifest } from './helpers/restore.js';
import { cleanup, cleanupFixtures, fingerprintTree, fixtureDir, runCli, tempDir } from './helpers/tree.js';

// Source files written less than this before a backup starts are racy (read and hashed, never linked on
// metadata alone): the stores are made once, this long before the tests back them up.
const RACY_MARGIN_MS = 2_000;

const FILES_PER_DIR = 40;
const DIRS = ['memory/facts', 'memory/episodes', 'seeds'];

/** A small Oxios-like store: 120 JSON files in three folders, plus `lone/` (a folder with one file). */
function makeStore(root: string): void {
  for (const dir of DIRS) {
    mkdirSync(join(root, dir), { recursive: true });
    for (let i = 0; i < FILES_PER_DIR; i++) {
      writeFileSync(
        join(root, dir, `item-${String(i).padStart(3, '0')}.json`),
        `{"n":${i},"dir":"${dir}"}\n`,
      );
    }
  }
  mkdirSync(join(root, 'lone'));
  writeFileSync(join(root, 'lone', 'only.json'), '{"only":true}\n');
}

const STORE_FILES = DIRS.length * FILES_PER_DIR + 1;
const BULK_FILES = 2_000;

// One store per test, all made before one wait, so that no test pays the racy margin on its own.
const STORES = [
  'unchanged',
  'changes',
  'racy',
  'format1',
  'oxios',
  'tampered',
  'emlink',
  'verify',
  'cli',
  'progress',
  'removal',
] as const;
const stores = {} as Record<(typeof STORES)[number], string>;

beforeAll(async () => {
  const base = fixtureDir('statesnap-linkdest-');
  for (const name of STORES) {
    stores[name] = join(base, name);
    makeStore(stores[name]);
  }
  // Enough files that progress is reported while the walk is still finding them.
  for (let i = 0; i < BULK_FILES; i++) writeFileSync(join(stores.progress, `bulk-${i}.json`), '{}\n');
  await new Promise((resolveWait) => setTimeout(resolveWait, RACY_MARGIN_MS + 200));
});
afterEach(() => {
  unmountAll();
  cleanup();
});
afterAll(cleanupFixtures);

function inode(path: string): number {
  return lstatSync(path).ino;
}

/** Backs `source` up into a new directory of `work`; with `linkDest`, linking from that backup. */
async function backUp(
  source: string,
  work: string,
  name: string,
  options: { linkDest?: string; ignoreCtime?: boolean; checksum?: boolean } = {},
): Promise<BackupResult> {
  return backup({ source, dest: join(work, name), threads: 2, sync: false, ...options });
}

/** Files of a backup whose inode is the previous backup's file at the same path. */
function linkedPaths(previous: string, next: string): string[] {
  return readBackupIndex(next)
    .filter((line) => line.type === 'file')
    .map((line) => line.path as string)
    .filter((rel) => {
      try {
        return inode(join(previous, rel)) === inode(join(next, rel));
      } catch {
        return false;
      }
    });
}

function indexLine(dest: string, rel: string) {
  return readBackupIndex(dest).find((line) => line.path === rel);
}

describe('backup --link-dest', () => {
  it('links every file of an unchanged store, hash carried over, without reading one', async () => {
    const source = stores.unchanged;
    const work = tempDir();
    const first = await backUp(source, work, 'b1');
    const second = await backUp(source, work, 'b2', { linkDest: join(work, 'b1') });

    expect(second.counts).toMatchObject({
      linked: STORE_FILES,
      copied: 0,
      hashed: 0,
      removedSinceLinkSource: 0,
    });
    expect(second.bytesNew).toBe(0);
    expect(second.linkSource?.path).toBe(join(work, 'b1'));
    expect(first.counts).toMatchObject({ linked: 0, copied: STORE_FILES });
    expect(first.bytesNew).toBe(first.bytes);
    expect(linkedPaths(join(work, 'b1'), join(work, 'b2'))).toHaveLength(STORE_FILES);
    expect(statSync(join(work, 'b2', 'seeds', 'item-000.json')).nlink).toBe(2);
    const previous = new Map(readBackupIndex(join(work, 'b1')).map((line) => [line.path, line]));
    for (const line of readBackupIndex(join(work, 'b2')).filter((l) => l.type === 'file')) {
      expect(line.linked).toBe(true);
      expect(line.sha256).toBe(previous.get(line.path)?.sha256);
    }
    const manifest = readManifestJson(join(work, 'b2')).statesnap as Record<string, unknown>;
    expect(manifest.counts).toMatchObject({ linked: STORE_FILES, copied: 0, link_fallbacks: {} });
    expect(manifest.link_source).toMatchObject({ path: join(work, 'b1') });
    expect(manifest.bytes_new).toBe(0);
  });

  it('copies each kind of change, links the rest, and leaves the older backup identical', async () => {
    const source = stores.changes;
    const work = tempDir();
    await backUp(source, work, 'b1');
    const b1 = join(work, 'b1');
    const before = fingerprintTree(b1);
    const facts = join(source, 'memory/facts');

    // Content rewritten with the same size, mtime put back (`touch -r`).
    const rewritten = join(facts, 'item-001.json');
    const old = statSync(rewritten);
    writeFileSync(rewritten, readFileSync(rewritten, 'utf8').replace('"n":1', '"n":7'));
    utimesSync(rewritten, old.atime, old.mtime);
    // Replaced by rename, as Oxios writes, with the old mtime kept.
    const replaced = join(facts, 'item-002.json');
    const replacedOld = statSync(replaced);
    writeFileSync(`${replaced}.tmp`, readFileSync(replaced, 'utf8').replace('"n":2', '"n":8'));
    utimesSync(`${replaced}.tmp`, replacedOld.atime, replacedOld.mtime);
    renameSync(`${replaced}.tmp`, replaced);
    // Mode only.
    chmodSync(join(facts, 'item-003.json'), 0o600);
    // Deleted, added, renamed.
    unlinkSync(join(facts, 'item-004.json'));
    writeFileSync(join(facts, 'item-new.json'), '{"new":true}\n');
    renameSync(join(facts, 'item-005.json'), join(facts, 'item-005-renamed.json'));
    // A directory replaced by a file.
    rmSync(join(source, 'lone'), { recursive: true });
    writeFileSync(join(source, 'lone'), 'now a file\n');

    const result = await backUp(source, work, 'b2', { linkDest: b1 });
    const b2 = join(work, 'b2');
    const copied = [
      'memory/facts/item-001.json',
      'memory/facts/item-002.json',
      'memory/facts/item-003.json',
      'memory/facts/item-new.json',
      'memory/facts/item-005-renamed.json',
      'lone',
    ];
    const linked = linkedPaths(b1, b2);
    for (const rel of copied) {
      expect(linked, rel).not.toContain(rel);
      expect(indexLine(b2, rel)?.linked, rel).toBeUndefined();
      expect(readFileSync(join(b2, rel))).toEqual(readFileSync(join(source, rel)));
    }
    expect(linked).toHaveLength(STORE_FILES - 6);
    expect(result.counts).toMatchObject({ linked: STORE_FILES - 6, copied: 6, hashed: 0 });
    // item-004 deleted, item-005 renamed away, lone/only.json gone with its directory.
    expect(result.counts.removedSinceLinkSource).toBe(3);
    expect(lstatSync(join(b2, 'memory/facts/item-003.json')).mode & 0o777).toBe(0o600);
    expect(lstatSync(join(b2, 'memory/facts/item-004.json'), { throwIfNoEntry: false })).toBeUndefined();
    expect(result.bytesNew).toBe(copied.reduce((sum, rel) => sum + statSync(join(source, rel)).size, 0));
    expect(fingerprintTree(b1)).toEqual(before);

    // A third backup of the changed store links from the second, and still neither older one changes.
    const middle = fingerprintTree(b2);
    const third = await backUp(source, work, 'b3', { linkDest: b2 });
    expect(third.counts.copied).toBe(0);
    expect(fingerprintTree(b1)).toEqual(before);
    expect(fingerprintTree(b2)).toEqual(middle);
  });

  it('hashes a file written within the racy margin of the previous start: links it only if unchanged', async () => {
    const source = stores.racy;
    const work = tempDir();
    const racy = join(source, 'seeds', 'item-010.json');
    const racyToo = join(source, 'seeds', 'item-011.json');
    // Both written in the second the previous backup starts in (a whole second: set again exactly below).
    const second = Math.floor(Date.now() / 1000);
    writeFileSync(racy, '{"racy":1}\n');
    writeFileSync(racyToo, '{"racy":2}\n');
    utimesSync(racy, second, second);
    utimesSync(racyToo, second, second);
    await backUp(source, work, 'b1');
    const b1Print = fingerprintTree(join(work, 'b1'));
    // Rewritten in the same second, same size, mtime put back: only the ctime moved, and it is ignored here,
    // so metadata alone would call it unchanged.
    writeFileSync(racyToo, '{"racy":3}\n');
    utimesSync(racyToo, second, second);

    const result = await backUp(source, work, 'b2', { linkDest: join(work, 'b1'), ignoreCtime: true });
    expect(result.counts).toMatchObject({ hashed: 2, hashMatched: 1, copied: 1, linked: STORE_FILES - 1 });
    expect(inode(join(work, 'b2', 'seeds/item-010.json'))).toBe(
      inode(join(work, 'b1', 'seeds/item-010.json')),
    );
    expect(readFileSync(join(work, 'b2', 'seeds/item-011.json'), 'utf8')).toBe('{"racy":3}\n');
    expect(readFileSync(join(work, 'b1', 'seeds/item-011.json'), 'utf8')).toBe('{"racy":2}\n');
    // The older backup is byte-, mode- and mtime-identical after the newer one linked from it.
    expect(fingerprintTree(join(work, 'b1'))).toEqual(b1Print);
  });

  it('hashes every file against a previous backup whose index is not in canonical order, linking equal ones', async () => {
    const source = stores.format1;
    const work = tempDir();
    await backUp(source, work, 'b1');
    // What an older statesnap wrote: the same backup without the canonical-order mark.
    const manifestPath = join(work, 'b1', 'manifest.json');
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
    delete manifest.statesnap.index_order;
    writeFileSync(manifestPath, JSON.stringify(manifest));
    writeFileSync(join(source, 'seeds', 'item-000.json'), '{"n":9,"dir":"seeds"}\n');

    const result = await backUp(source, work, 'b2', { linkDest: join(work, 'b1') });
    expect(result.counts).toMatchObject({
      hashed: STORE_FILES,
      hashMatched: STORE_FILES - 1,
      linked: STORE_FILES - 1,
      copied: 1,
    });
    expect(readFileSync(join(work, 'b2', 'seeds/item-000.json'), 'utf8')).toBe('{"n":9,"dir":"seeds"}\n');
    expect(linkedPaths(join(work, 'b1'), join(work, 'b2'))).toHaveLength(STORE_FILES - 1);
  });

  it('links from an Oxios-made backup (no index) on equal hashes only', async () => {
    const source = stores.oxios;
    const work = tempDir();
    const oxios = join(work, 'oxios');
    cpSync(source, oxios, { recursive: true });
    writeOxiosManifest(oxios, []);
    // Same size, other content: only the hash tells.
    writeFileSync(join(oxios, 'seeds', 'item-001.json'), '{"n":0,"dir":"seeds"}\n');

    const result = await backUp(source, work, 'b2', { linkDest: oxios });
    expect(result.counts).toMatchObject({ hashed: STORE_FILES, linked: STORE_FILES - 1, copied: 1 });
    expect(readFileSync(join(work, 'b2', 'seeds/item-001.json'), 'utf8')).toBe('{"n":1,"dir":"seeds"}\n');
    expect(inode(join(work, 'b2', 'seeds/item-002.json'))).toBe(inode(join(oxios, 'seeds/item-002.json')));
  });

  it('never follows a symlink planted in the previous backup, for a file or a directory', async () => {
    const source = stores.tampered;
    const work = tempDir();
    const b1 = join(work, 'b1');
    await backUp(source, work, 'b1');
    const outside = tempDir();
    // Same size and mode as the files they stand in for: only the type tells them apart.
    writeFileSync(join(outside, 'item-000.json'), readFileSync(join(source, 'seeds', 'item-000.json')));
    const planted = join(b1, 'seeds', 'item-000.json');
    chmodSync(join(b1, 'seeds'), 0o755);
    unlinkSync(planted);
    symlinkSync(join(outside, 'item-000.json'), planted);
    mkdirSync(join(outside, 'facts'));
    cpSync(join(b1, 'memory', 'facts'), join(outside, 'facts'), { recursive: true });
    renameSync(join(b1, 'memory', 'facts'), join(work, 'facts-aside'));
    symlinkSync(join(outside, 'facts'), join(b1, 'memory', 'facts'));

    const warnings: string[] = [];
    const result = await backup({
      source,
      dest: join(work, 'b2'),
      linkDest: b1,
      sync: false,
      onWarning: (warning) => warnings.push(warning.problem),
    });
    expect(result.counts.checkMismatches).toBe(1 + FILES_PER_DIR);
    expect(result.counts.copied).toBe(1 + FILES_PER_DIR);
    expect(warnings).toEqual(Array(1 + FILES_PER_DIR).fill('link-source-mismatch'));
    expect(result.exitCode).toBe(3);
    expect(lstatSync(join(work, 'b2', 'seeds', 'item-000.json')).isFile()).toBe(true);
    expect(statSync(join(outside, 'item-000.json')).nlink).toBe(1);
    expect(statSync(join(outside, 'facts', 'item-000.json')).nlink).toBe(1);
    expect(readFileSync(join(work, 'b2', 'memory/facts/item-007.json'))).toEqual(
      readFileSync(join(source, 'memory/facts/item-007.json')),
    );
  });

  it('copies a file whose inode is at the link limit (EMLINK), counted as a fallback', async (ctx) => {
    const source = stores.emlink;
    const work = tempDir();
    const b1 = join(work, 'b1');
    await backUp(source, work, 'b1');
    const full = join(b1, 'lone', 'only.json');
    const farm = join(work, 'farm');
    mkdirSync(farm);
    let links = 1;
    try {
      for (; links < 70_000; links++) linkSync(full, join(farm, String(links)));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EMLINK') throw error;
    }
    if (links >= 70_000) ctx.skip(); // a filesystem without a link limit this test can reach
    const result = await backUp(source, work, 'b2', { linkDest: b1 });
    expect(result.counts.linkFallbacks).toEqual({ EMLINK: 1 });
    expect(result.counts).toMatchObject({ linked: STORE_FILES - 1, copied: 1 });
    expect(result.warnings.count).toBe(0);
    expect(statSync(join(work, 'b2', 'lone', 'only.json')).nlink).toBe(1);
    expect(readFileSync(join(work, 'b2', 'lone', 'only.json'), 'utf8')).toBe('{"only":true}\n');
  }, 60_000);

  it("reports the previous backup's totals as the progress estimate from the start", async () => {
    const source = stores.progress;
    const work = tempDir();
    const first = await backUp(source, work, 'b1');
    writeFileSync(join(source, 'seeds', 'extra.json'), '{}\n');
    const seen: BackupProgress[] = [];
    await backup({
      source,
      dest: join(work, 'b2'),
      linkDest: join(work, 'b1'),
      threads: 1,
      sync: false,
      onProgress: (progress) => seen.push(progress),
    });
    const early = seen.filter((progress) => !progress.totalKnown);
    expect(early.length).toBeGreaterThan(0);
    for (const progress of early) {
      expect(progress).toMatchObject({ estimate: 'given', filesTotal: first.files, bytesTotal: first.bytes });
    }
    expect(seen.at(-1)).toMatchObject({ estimate: null, filesTotal: first.files + 1 });
  });
});

describe('an index in canonical order', () => {
  it('is written in canonical order and refused when edited out of it, with a duplicate, or an unlisted parent', async () => {
    const work = tempDir();
    await backUp(stores.unchanged, work, 'b1');
    const b1 = join(work, 'b1');
    const indexPath = join(b1, '.statesnap', 'index.jsonl');
    const original = readFileSync(indexPath, 'utf8').trimEnd().split('\n');
    const paths = original.map((line) => JSON.parse(line).path as string);
    // Directories first (memory, seeds, lone), each directory's block after, subdirectories in name order.
    expect(paths.slice(0, 5)).toEqual(['lone', 'memory', 'seeds', 'lone/only.json', 'memory/episodes']);
    expect(paths.indexOf('memory/facts/item-000.json')).toBeGreaterThan(
      paths.indexOf('memory/episodes/item-039.json'),
    );
    const manifestPath = join(b1, 'manifest.json');
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
    const withIndex = (lines: string[]) => {
      const text = `${lines.join('\n')}\n`;
      writeFileSync(indexPath, text);
      manifest.statesnap.index.entries = lines.length;
      manifest.statesnap.index.sha256 = createHash('sha256').update(text).digest('hex');
      writeFileSync(manifestPath, JSON.stringify(manifest));
    };
    const swapped = [...original];
    [swapped[6], swapped[7]] = [swapped[7]!, swapped[6]!];
    const edits = {
      'out of order': swapped,
      duplicate: [...original.slice(0, 7), original[6]!, ...original.slice(7)],
      'unlisted parent': original.filter((line) => JSON.parse(line).path !== 'memory/facts'),
    };
    for (const [edit, lines] of Object.entries(edits)) {
      withIndex(lines);
      await expect(restore({ backup: b1, target: join(work, `t-${edit}`) }), edit).rejects.toMatchObject({
        code: 'ERR_INDEX_INVALID',
      });
    }
    withIndex(original);
    await expect(restore({ backup: b1, target: join(work, 'restored') })).resolves.toMatchObject({
      exitCode: 0,
    });
  });
});

describe('backup --link-dest from the CLI', () => {
  it('says how many files were linked and copied, and --json carries the counts', async () => {
    const source = stores.cli;
    const work = tempDir();
    expect((await runCli(['backup', '--no-sync', source, join(work, 'b1')])).exitCode).toBe(0);
    writeFileSync(join(source, 'seeds', 'item-000.json'), '{"n":1,"dir":"seedz"}\n');
    const text = await runCli(['backup', '--link-dest', join(work, 'b1'), source, join(work, 'b2')]);
    expect(text.exitCode, text.stderr).toBe(0);
    expect(text.stdout).toContain(`${STORE_FILES - 1} linked, 1 copied`);
    const json = await runCli([
      'backup',
      '--json',
      '--link-dest',
      join(work, 'b2'),
      source,
      join(work, 'b3'),
    ]);
    expect(json.exitCode, json.stderr).toBe(0);
    const result = JSON.parse(json.stdout);
    expect(result.counts).toMatchObject({ linked: STORE_FILES, copied: 0, linkFallbacks: {} });
    expect(result.linkSource.path).toBe(join(work, 'b2'));
  });

  it('refuses a --link-dest that is missing, incomplete, or overlaps the source or destination', async () => {
    const source = stores.cli;
    const work = tempDir();
    const run = (linkDest: string, dest: string) =>
      runCli(['backup', '--link-dest', linkDest, source, join(work, dest)]);
    const missing = await run(join(work, 'nope'), 'd1');
    expect(missing.exitCode).toBe(1);
    expectOneLineError(missing, 'ERR_LINK_DEST_INVALID');
    expect(missing.stderr).toContain(join(work, 'nope'));
    mkdirSync(join(work, 'half'));
    const incomplete = await run(join(work, 'half'), 'd2');
    expectOneLineError(incomplete, 'ERR_LINK_DEST_INVALID');
    expect(incomplete.stderr).toContain('not a complete backup');
    expect((await runCli(['backup', '--no-sync', source, join(work, 'b1')])).exitCode).toBe(0);
    const inside = await runCli(['backup', '--link-dest', join(work, 'b1'), source, join(work, 'b1', 'x')]);
    expectOneLineError(inside, 'ERR_LINK_DEST_INVALID');
    expect(inside.stderr).toContain('overlaps the destination');
    // A store Oxios restored one of our backups into has a manifest: it is still the live source.
    cpSync(join(work, 'b1', 'manifest.json'), join(source, 'manifest.json'));
    const live = await runCli(['backup', '--link-dest', source, source, join(work, 'd3')]);
    rmSync(join(source, 'manifest.json'));
    expectOneLineError(live, 'ERR_LINK_DEST_INVALID');
    expect(live.stderr).toContain('overlaps the source');
    for (const dest of ['d1', 'd2', 'd3'])
      expect(lstatSync(join(work, dest), { throwIfNoEntry: false })).toBeUndefined();
  });

  it('refuses a --link-dest on another filesystem than the new backup (no silent full copy)', async (ctx) => {
    const source = stores.cli;
    const work = tempDir();
    expect((await runCli(['backup', '--no-sync', source, join(work, 'b1')])).exitCode).toBe(0);
    const other = join(work, 'other');
    mkdirSync(other);
    if (!tryMount(['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs'], other))
      ctx.skip('mount -t tmpfs is not allowed here');
    const crossing = await runCli(['backup', '--link-dest', join(work, 'b1'), source, join(other, 'b2')]);
    expect(crossing.exitCode).toBe(1);
    expectOneLineError(crossing, 'ERR_LINK_DEST_INVALID');
    expect(crossing.stderr).toContain('another filesystem');
    expect(lstatSync(join(other, 'b2'), { throwIfNoEntry: false })).toBeUndefined();
  });

  it('makes a backup that verifies and restores, and stays complete once its link source is deleted', async () => {
    const source = stores.verify;
    const work = tempDir();
    expect((await runCli(['backup', '--no-sync', source, join(work, 'b1')])).exitCode).toBe(0);
    writeFileSync(join(source, 'seeds', 'item-000.json'), '{"changed":true}\n');
    const made = await runCli(['backup', '--link-dest', join(work, 'b1'), source, join(work, 'b2')]);
    expect(made.exitCode, made.stderr).toBe(0);
    const verified = await runCli(['verify', join(work, 'b2')]);
    expect(verified.exitCode, verified.stderr + verified.stdout).toBe(0);
    rmSync(join(work, 'b1'), { recursive: true });
    const alone = await runCli(['verify', join(work, 'b2')]);
    expect(alone.exitCode, alone.stderr + alone.stdout).toBe(0);
    const restored = await runCli(['restore', join(work, 'b2'), join(work, 'target')]);
    expect(restored.exitCode, restored.stderr).toBe(0);
    expect(fingerprintTree(join(work, 'target'))).toEqual(fingerprintTree(source));
  });

  it('keeps a backup made from a link source intact when that source is removed with rm -rf', async () => {
    const source = stores.removal;
    const work = tempDir();
    await backUp(source, work, 'b1');
    await backUp(source, work, 'b2', { linkDest: join(work, 'b1') });
    const before = fingerprintTree(join(work, 'b2'));
    expect(spawnSync('rm', ['-rf', join(work, 'b1')]).status).toBe(0);
    expect(fingerprintTree(join(work, 'b2'))).toEqual(before);
    expect(statSync(join(work, 'b2', 'seeds', 'item-000.json')).nlink).toBe(1);
  });
});
