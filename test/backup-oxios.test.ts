// Oxios compatibility, for real: the unmodified Oxios backup module (test/fixtures/oxios-compat/src/backup.rs,
// the seed) is compiled into a small CLI; its restore_backup is run on statesnap backups, and its create_backup
// makes the Oxios backups statesnap must restore. Needs cargo and the Debian crates (apt-get install
// librust-serde-dev librust-serde-derive-dev librust-serde-json-dev librust-anyhow-dev librust-tokio-dev
// librust-tracing-dev); without them the tests are skipped, saying why, and fail under CI (.ci/run installs
// them). The binary is cached in the temp dir by a hash of the fixture and the compiler version, so only the
// first run pays the ~30 s build.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateStore } from '../dist/src/demo/generator.js';
import { backup, type ManifestNote, snapshot } from '../dist/src/index.js';
import { readManifestJson } from './helpers/backup.js';
import { requireDependency } from './helpers/dependencies.js';
import {
  cleanup,
  createTree,
  type EntryPrint,
  file,
  fingerprintTree,
  runCli,
  symlink,
  tempDir,
} from './helpers/tree.js';

const FIXTURE = resolve(import.meta.dirname, 'fixtures/oxios-compat');
const CRATES = '/usr/share/cargo/registry';

afterEach(cleanup);

/** Builds (or finds in the cache) the Oxios restore CLI; returns its path, or why it cannot be had here. */
function oxiosRestoreBinary(): { binary: string } | { unavailable: string } {
  const rustc = spawnSync('rustc', ['--version'], { encoding: 'utf8' });
  if (rustc.status !== 0 || spawnSync('cargo', ['--version']).status !== 0) {
    return { unavailable: 'cargo/rustc are not installed' };
  }
  if (!existsSync(CRATES)) return { unavailable: `no offline crates in ${CRATES} (Debian librust-*-dev)` };
  const hash = createHash('sha256').update(rustc.stdout);
  const localBuild = (rel: string) => rel === 'target' || rel === 'Cargo.lock';
  for (const [rel, entry] of Object.entries(
    fingerprintTree(FIXTURE, { mtimes: false, exclude: localBuild }),
  )) {
    hash.update(`${rel}\0${entry.sha256 ?? ''}\0`);
  }
  const cacheDir = join(tmpdir(), `statesnap-oxios-compat-${hash.digest('hex').slice(0, 16)}`);
  const binary = join(cacheDir, 'oxios-compat');
  if (existsSync(binary)) return { binary };
  const build = mkdtempSync(join(tmpdir(), 'statesnap-oxios-build-'));
  try {
    cpSync(FIXTURE, build, { recursive: true });
    const cargo = spawnSync('cargo', ['build', '--quiet', '--offline'], { cwd: build, encoding: 'utf8' });
    if (cargo.status !== 0) {
      const reason = cargo.stderr.split('\n').find((line) => line.startsWith('error')) ?? cargo.stderr.trim();
      return { unavailable: `the Oxios fixture does not build offline here: ${reason}` };
    }
    mkdirSync(cacheDir, { recursive: true });
    const temporary = `${binary}.${process.pid}.tmp`;
    copyFileSync(join(build, 'target/debug/oxios-compat'), temporary);
    renameSync(temporary, binary); // atomic, so concurrent test runs never see half a binary
    return { binary };
  } finally {
    rmSync(build, { recursive: true, force: true });
  }
}

let oxios: { binary: string } | { unavailable: string };
beforeAll(() => {
  oxios = oxiosRestoreBinary();
}, 600_000);

interface OxiosRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

function runOxios(args: string[]): OxiosRun {
  if (!('binary' in oxios)) throw new Error('unreachable');
  const run = spawnSync(oxios.binary, args, { encoding: 'utf8' });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** Oxios' restore_backup of `backupDir` into the state directory `state`. */
function oxiosRestore(backupDir: string, state: string): OxiosRun {
  return runOxios(['restore', backupDir, state]);
}

/**
 * The tree at `root` as a backup should reproduce it: regular files (content and mode) and directories (Oxios
 * keeps no directory modes), no symlinks or special files, no in-flight temp files, none of `leftOut`.
 */
function copiedPart(root: string, leftOut: readonly string[] = []): Record<string, Partial<EntryPrint>> {
  const exclude = (rel: string) => leftOut.includes(rel) || basename(rel).endsWith('.tmp');
  const print = fingerprintTree(root, { mtimes: false, exclude });
  return Object.fromEntries(
    Object.entries(print)
      .filter(([, entry]) => entry.kind === 'file' || entry.kind === 'dir')
      .map(([rel, entry]) => [rel, entry.kind === 'dir' ? { kind: 'dir' } : entry]),
  );
}

describe('Oxios restore_backup (the seed, compiled) on statesnap backups', () => {
  it('accepts the backup and reproduces the source tree, plus manifest.json and .statesnap/', async (ctx) => {
    requireDependency(ctx, 'unavailable' in oxios ? oxios.unavailable : null);
    const root = tempDir();
    const source = join(root, 'src');
    await generateStore(source, { profile: 'oxios', scale: 0.01 });
    const dest = join(root, 'backup');
    const result = await backup({ source, dest, sync: false, appVersion: '0.9.1-oxios' });
    const state = join(root, 'state');

    const run = oxiosRestore(dest, state);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    // What Oxios deserialised: its own struct, with the values we wrote.
    expect(JSON.parse(run.stdout)).toEqual({
      version: 1,
      created_at: result.createdAt,
      oxios_version: '0.9.1-oxios',
      sections: result.sections,
    });
    expect(result.sections.length).toBeGreaterThan(5);
    expect(copiedPart(state, ['manifest.json', '.statesnap'])).toEqual(copiedPart(source));
    expect(readFileSync(join(state, 'manifest.json'), 'utf8')).toBe(
      readFileSync(join(dest, 'manifest.json'), 'utf8'),
    );
    expect(existsSync(join(state, '.statesnap/index.jsonl'))).toBe(true);
  });

  it('restores a linked snapshot (hard links into the previous one) like any backup', async (ctx) => {
    requireDependency(ctx, 'unavailable' in oxios ? oxios.unavailable : null);
    const root = tempDir();
    const source = join(root, 'src');
    await generateStore(source, { profile: 'oxios', scale: 0.01 });
    const repo = join(root, 'repo');
    await snapshot({ source, repository: repo, sync: false });
    writeFileSync(join(source, 'memory/facts/added-after.json'), '{"added":true}\n');
    const second = await snapshot({ source, repository: repo, sync: false });
    expect(second.counts.linked).toBeGreaterThan(0);
    const state = join(root, 'state');
    const run = oxiosRestore(join(repo, second.id), state);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(copiedPart(state, ['manifest.json', '.statesnap'])).toEqual(copiedPart(source));
  });

  it('is the real reader: it refuses a version-2 manifest and one that declares no sections', async (ctx) => {
    requireDependency(ctx, 'unavailable' in oxios ? oxios.unavailable : null);
    const root = tempDir();
    mkdirSync(join(root, 'empty-store'));
    const empty = join(root, 'empty-backup');
    const result = await backup({ source: join(root, 'empty-store'), dest: empty, sync: false });
    expect(result.sections).toEqual([]);
    // statesnap backs up an empty store; Oxios refuses to restore a backup that declares no sections.
    const refusedEmpty = oxiosRestore(empty, join(root, 'state-a'));
    expect(refusedEmpty.status).toBe(1);
    expect(refusedEmpty.stderr).toContain('declares no sections');

    const manifest = JSON.parse(readFileSync(join(empty, 'manifest.json'), 'utf8'));
    writeFileSync(
      join(empty, 'manifest.json'),
      JSON.stringify({ ...manifest, version: 2, sections: [{ name: 'seeds', entry_count: 1 }] }, null, 2),
    );
    const refusedVersion = oxiosRestore(empty, join(root, 'state-b'));
    expect(refusedVersion.status).toBe(1);
    expect(refusedVersion.stderr).toContain('Unsupported backup manifest version 2');
    expect(existsSync(join(root, 'state-b'))).toBe(false);
  });
});

/** Oxios' create_backup of the state directory `store` at `dest`; returns the manifest it wrote. */
function oxiosBackup(
  store: string,
  dest: string,
): { sections: Array<{ name: string; entry_count: number }> } {
  const run = runOxios(['backup', store, dest]);
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  return JSON.parse(run.stdout);
}

/** A small store holding what Oxios counts but does not copy: a `*.json` symlink in memory/facts. */
async function storeWithLink(root: string): Promise<string> {
  const store = join(root, 'store');
  await createTree(store, {
    seeds: { 'a.json': file('{"a":1}'), 'b.md': file('# b') },
    memory: {
      facts: { 'f1.json': file('{"f":1}'), 'f2.json': file('{"f":2}'), 'link.json': symlink('f1.json') },
      episodes: { 'e1.md': file('e1') },
    },
    sessions: { 's1.json': file('{}') },
  });
  return store;
}

function editManifest(backupDir: string, edit: (manifest: Record<string, unknown>) => void): void {
  const manifest = readManifestJson(backupDir);
  edit(manifest);
  writeFileSync(join(backupDir, 'manifest.json'), JSON.stringify(manifest, null, 2));
}

type NoteShape = Pick<ManifestNote, 'note' | 'path'>;
const shapes = (notes: ManifestNote[]): NoteShape[] => notes.map(({ note, path }) => ({ note, path }));

/**
 * The promise: Oxios' restore accepts `backupDir`, statesnap restores it in both modes (exit 0, the tree Oxios
 * gives minus its manifest.json, files only in the live target kept by merge), and restore, verify and inspect
 * report `notes`, never a refusal.
 */
async function expectRestoredLikeOxios(root: string, backupDir: string, notes: NoteShape[]): Promise<void> {
  const oxiosState = join(root, 'oxios-state');
  const accepted = oxiosRestore(backupDir, oxiosState);
  expect(accepted.stderr).toBe('');
  expect(accepted.status).toBe(0);
  const expected = copiedPart(oxiosState, ['manifest.json']);
  for (const mode of ['replace', 'merge']) {
    const target = join(root, `target-${mode}`);
    await createTree(target, { 'live-only.json': file('{"live":1}') });
    const run = await runCli(['restore', '--json', '--mode', mode, backupDir, target]);
    expect(run.stderr, mode).toBe('');
    expect(run.exitCode, mode).toBe(0);
    expect(shapes(JSON.parse(run.stdout).notes), mode).toEqual(notes);
    expect(copiedPart(target, mode === 'merge' ? ['live-only.json'] : []), mode).toEqual(expected);
  }
  const verified = await runCli(['verify', '--json', backupDir]);
  expect(verified.exitCode).toBe(0);
  expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true, kind: 'oxios' });
  expect(shapes(JSON.parse(verified.stdout).notes)).toEqual(notes);
  const inspected = await runCli(['inspect', '--json', backupDir]);
  expect(inspected.exitCode).toBe(0);
  expect(shapes(JSON.parse(inspected.stdout).notes)).toEqual(notes);
  if (notes.length > 0) {
    const text = await runCli(['inspect', backupDir]);
    expect(text.stdout.split('\n').filter((line) => line.trimStart().startsWith('note'))).toHaveLength(
      notes.length,
    );
  }
}

describe("Oxios-made backups (Oxios' create_backup, compiled) restore with statesnap", () => {
  it('a *.json symlink counted but not copied: a note, not a refusal', async (ctx) => {
    requireDependency(ctx, 'unavailable' in oxios ? oxios.unavailable : null);
    const root = tempDir();
    const backupDir = join(root, 'oxios-backup');
    const manifest = oxiosBackup(await storeWithLink(root), backupDir);
    expect(manifest.sections).toContainEqual({ name: 'memory/facts', entry_count: 3 });
    expect(existsSync(join(backupDir, 'memory/facts/link.json'))).toBe(false);
    await expectRestoredLikeOxios(root, backupDir, [
      { note: 'section-count', path: join(backupDir, 'memory/facts') },
    ]);
  });

  it('counts that differ because the store changed between the count and the copy, both ways', async (ctx) => {
    requireDependency(ctx, 'unavailable' in oxios ? oxios.unavailable : null);
    const root = tempDir();
    const backupDir = join(root, 'oxios-backup');
    oxiosBackup(await storeWithLink(root), backupDir);
    // As if seeds/a.json was deleted and a session written after Oxios counted and before it copied.
    rmSync(join(backupDir, 'seeds/a.json'));
    writeFileSync(join(backupDir, 'sessions/s2.json'), '{}');
    await expectRestoredLikeOxios(root, backupDir, [
      { note: 'section-count', path: join(backupDir, 'seeds') },
      { note: 'section-count', path: join(backupDir, 'memory/facts') },
      { note: 'section-count', path: join(backupDir, 'sessions') },
    ]);
  });

  it('an empty created_at, a section named ../x, extra keys and a count beyond 2^53: notes only', async (ctx) => {
    requireDependency(ctx, 'unavailable' in oxios ? oxios.unavailable : null);
    const root = tempDir();
    const backupDir = join(root, 'oxios-backup');
    oxiosBackup(await storeWithLink(root), backupDir);
    // A folder the unsafe name would reach if it were joined to the backup's path: it must not be counted.
    await createTree(join(root, 'x'), { 'a.json': file(), 'b.json': file(), 'c.json': file() });
    editManifest(backupDir, (manifest) => {
      manifest.created_at = '';
      manifest.comment = 'serde ignores unknown keys';
      manifest.sections = [
        ...(manifest.sections as object[]),
        { name: '../x', entry_count: 3, extra: true },
        { name: 'agent_groups', entry_count: 0 },
      ];
    });
    // u64::MAX as a JSON number: serde reads it into a usize; JavaScript cannot hold it exactly.
    const text = readFileSync(join(backupDir, 'manifest.json'), 'utf8');
    writeFileSync(
      join(backupDir, 'manifest.json'),
      text.replace('"entry_count": 1\n', '"entry_count": 18446744073709551615\n'),
    );
    expect(readFileSync(join(backupDir, 'manifest.json'), 'utf8')).toContain('18446744073709551615');
    const manifestPath = join(backupDir, 'manifest.json');
    await expectRestoredLikeOxios(root, backupDir, [
      { note: 'created-at', path: manifestPath },
      { note: 'section-count', path: join(backupDir, 'memory/facts') },
      { note: 'section-count', path: join(backupDir, 'memory/episodes') },
      { note: 'section-name', path: manifestPath },
    ]);
  });

  it('statesnap sections equal the sections Oxios writes for the same store', async (ctx) => {
    requireDependency(ctx, 'unavailable' in oxios ? oxios.unavailable : null);
    const root = tempDir();
    const store = join(root, 'store');
    await generateStore(store, { profile: 'oxios', scale: 0.01 });
    const made = await backup({ source: store, dest: join(root, 'ours'), sync: false });
    expect(made.sections).toEqual(oxiosBackup(store, join(root, 'theirs')).sections);
  });
});
