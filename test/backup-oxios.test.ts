// Oxios compatibility, for real: the unmodified Oxios backup module (test/fixtures/oxios-compat/src/backup.rs,
// the seed) is compiled into a small CLI and its restore_backup is run on statesnap backups. Needs cargo and
// the Debian crates (apt-get install librust-serde-dev librust-serde-derive-dev librust-serde-json-dev
// librust-anyhow-dev librust-tokio-dev librust-tracing-dev); without them the tests are skipped, saying why,
// and fail under CI (.ci/run installs them). The binary is cached in the temp dir by a hash of the fixture and
// the compiler version, so only the first run pays the ~30 s build.

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
import { backup } from '../dist/src/index.js';
import { requireDependency } from './helpers/dependencies.js';
import { cleanup, type EntryPrint, fingerprintTree, tempDir } from './helpers/tree.js';

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

function oxiosRestore(
  backupDir: string,
  state: string,
): { status: number | null; stdout: string; stderr: string } {
  if (!('binary' in oxios)) throw new Error('unreachable');
  const run = spawnSync(oxios.binary, ['restore', backupDir, state], { encoding: 'utf8' });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
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
