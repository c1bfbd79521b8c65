// The change rule where a local `--link-dest` backup applies it: in the file worker, against the worker's own
// lstat of the source, for a file planned by name with the previous backup's index entry. Each change kind is
// made for real between the "walk" (the op) and the worker, including a file swapped for a symlink.

import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_RACY_MARGIN_NS } from '../dist/src/core/change-rule.js';
import {
  type FileOutcome,
  type LinkTask,
  postedTask,
  type RecordedFile,
  type TaskResult,
} from '../dist/src/core/protocol.js';
import { performTask } from '../dist/workers/file-worker.js';
import { cleanup, sha256File, tempDir } from './helpers/tree.js';

afterEach(cleanup);

const CONTENT = '{"fact":"the sky is blue"}';
const SECRET = '{"secret":"outside the store"}';

interface Case {
  /** The source file, its copy in the previous backup, and the index entry that backup recorded. */
  source: string;
  previousFile: string;
  recorded: RecordedFile;
  /** A file outside every tree, for a symlink to point at. */
  outside: string;
  run(options?: { racy?: boolean }): { outcome: FileOutcome; target: string };
}

/** A store with `fact.json`, a previous backup holding its copy, and an index entry recorded from its lstat. */
function linkCase(): Case {
  const root = tempDir();
  const store = join(root, 'store');
  const previous = join(root, 'previous');
  const outside = join(root, 'outside.json');
  mkdirSync(join(store, 'memory'), { recursive: true });
  mkdirSync(join(previous, 'memory'), { recursive: true });
  writeFileSync(outside, SECRET);
  const source = join(store, 'memory', 'fact.json');
  writeFileSync(source, CONTENT);
  const previousFile = join(previous, 'memory', 'fact.json');
  copyFileSync(source, previousFile);
  const stats = lstatSync(source, { bigint: true });
  const recorded: RecordedFile = {
    size: Number(stats.size),
    mode: Number(stats.mode) & 0o7777,
    mtimeNs: stats.mtimeNs,
    ctimeNs: stats.ctimeNs,
    ino: stats.ino,
    sha256: sha256File(source),
  };
  let runs = 0;
  return {
    source,
    previousFile,
    recorded,
    outside,
    run: ({ racy = false } = {}) => {
      const dest = join(root, `new-${++runs}`);
      mkdirSync(join(dest, 'memory'), { recursive: true });
      const real = realpathSync(store);
      const task: LinkTask = {
        kind: 'link',
        files: [{ rel: 'memory/fact.json', size: 0, previous: recorded }],
        from: { root: real, confineTo: real, attributesFrom: 'source', changedRetries: 0, expectSize: false },
        to: { root: dest, confineTo: null, writeMode: 'create', owners: false, modeMask: 0o7777 },
        rule: {
          // Racy: the previous backup started just after the file was recorded; settled: well after.
          previousStartNs: recorded.ctimeNs! + (racy ? 0n : DEFAULT_RACY_MARGIN_NS + 1_000_000_000n),
          racyMarginNs: DEFAULT_RACY_MARGIN_NS,
          ignoreInode: false,
          ignoreCtime: false,
          checksum: false,
        },
        linkFrom: { root: realpathSync(previous), confined: true },
      };
      const stop = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
      const result: TaskResult = performTask({ task: postedTask(task), stop });
      expect(result.outcomes).toHaveLength(1);
      return { outcome: result.outcomes[0]!, target: join(dest, 'memory', 'fact.json') };
    },
  };
}

function isLinkedTo(target: string, file: string): boolean {
  return lstatSync(target).ino === lstatSync(file).ino;
}

function touchReference(from: string, to: string): void {
  const result = spawnSync('touch', ['-r', from, to]);
  expect(result.status, String(result.stderr)).toBe(0);
}

/** Lets the kernel's coarse clock tick past the recorded ctime (a few ms), so a change gets a new one. */
function letClockTick(): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
}

describe('the change rule in the file worker (a file planned by name with its previous entry)', () => {
  it('links an unchanged file without reading it, recording the identity of its own lstat', () => {
    const c = linkCase();
    const { outcome, target } = c.run();
    expect(outcome).toMatchObject({
      ok: true,
      link: { linked: true, hashed: false },
      hash: c.recorded.sha256,
    });
    expect(outcome.ok && [outcome.ino, outcome.ctimeNs, outcome.size]).toEqual([
      String(c.recorded.ino),
      String(c.recorded.ctimeNs),
      c.recorded.size,
    ]);
    expect(isLinkedTo(target, c.previousFile)).toBe(true);
  });

  it('copies content rewritten with the same size and its mtime put back with touch -r (ctime changed)', () => {
    const c = linkCase();
    const reference = `${c.source}.ref`;
    writeFileSync(reference, '');
    touchReference(c.source, reference);
    letClockTick();
    writeFileSync(c.source, CONTENT.replace('blue', 'gray'));
    touchReference(reference, c.source);
    rmSync(reference);
    const { outcome, target } = c.run();
    // Copied as decided, unread before: a copy that never was a planned link carries no link outcome.
    expect(outcome).toMatchObject({ ok: true });
    expect(outcome).not.toHaveProperty('link');
    expect(isLinkedTo(target, c.previousFile)).toBe(false);
    expect(readFileSync(target, 'utf8')).toBe(CONTENT.replace('blue', 'gray'));
  });

  it('copies a file replaced by rename (inode changed), even with the old mtime kept', () => {
    const c = linkCase();
    letClockTick();
    const temp = `${c.source}.123.tmp`;
    writeFileSync(temp, CONTENT);
    touchReference(c.source, temp);
    renameSync(temp, c.source);
    const { outcome, target } = c.run();
    expect(outcome).toMatchObject({ ok: true });
    expect(outcome).not.toHaveProperty('link');
    expect(isLinkedTo(target, c.previousFile)).toBe(false);
    expect(outcome.ok && outcome.ino).toBe(String(lstatSync(c.source).ino));
  });

  it('copies a mode-only change and leaves the previous file its mode', () => {
    const c = linkCase();
    chmodSync(c.source, 0o600);
    const { outcome, target } = c.run();
    expect(outcome).toMatchObject({ ok: true, mode: 0o600 });
    expect(outcome).not.toHaveProperty('link');
    expect(isLinkedTo(target, c.previousFile)).toBe(false);
    expect(lstatSync(c.previousFile).mode & 0o7777).toBe(c.recorded.mode);
  });

  it('hashes a racy file and links it only on an equal hash', () => {
    const unchanged = linkCase();
    const same = unchanged.run({ racy: true });
    expect(same.outcome).toMatchObject({ ok: true, link: { linked: true, hashed: true } });
    expect(isLinkedTo(same.target, unchanged.previousFile)).toBe(true);

    // Same size, same mtime and ctime as recorded (the index recorded the file after the write): only the hash
    // tells, so the recorded hash is made to be another content's.
    const changed = linkCase();
    changed.recorded.sha256 = 'b'.repeat(64);
    const other = changed.run({ racy: true });
    expect(other.outcome).toMatchObject({ ok: true, link: { linked: false, hashed: true } });
    expect(isLinkedTo(other.target, changed.previousFile)).toBe(false);
  });

  it('never follows a file swapped for a symlink after the walk: reported, nothing linked or read through it', () => {
    const c = linkCase();
    rmSync(c.source);
    symlinkSync(c.outside, c.source);
    const { outcome, target } = c.run();
    expect(outcome).toMatchObject({ ok: false, problem: 'not-regular' });
    expect(existsSync(target)).toBe(false);
    expect(lstatSync(c.previousFile).nlink).toBe(1);
  });

  it('reports a file that vanished after the walk, and links nothing for it', () => {
    const c = linkCase();
    rmSync(c.source);
    const { outcome, target } = c.run();
    expect(outcome).toMatchObject({ ok: false, problem: 'vanished' });
    expect(existsSync(target)).toBe(false);
  });

  it("copies when the previous backup's file is not the one its index describes (checked after link())", () => {
    const c = linkCase();
    chmodSync(c.previousFile, 0o600);
    const { outcome, target } = c.run();
    expect(outcome).toMatchObject({ ok: true, link: { linked: false, mismatch: 'mode-differs' } });
    expect(isLinkedTo(target, c.previousFile)).toBe(false);
    expect(readFileSync(target, 'utf8')).toBe(CONTENT);
  });
});
