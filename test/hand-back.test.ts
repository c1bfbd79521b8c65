// A backup plans files by name, without their sizes, so the rule that sends a large file as a task of its own
// cannot apply when the batches are formed. A worker that finds a large file in a batch hands it back unread and
// the dispatcher sends it alone: a folder of large files is copied by every thread rather than by one. Checked
// in the worker (what it reads and writes) and end to end (threads used, index complete and in order).

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type CopyTask, type LinkTask, postedTask, type TaskResult } from '../dist/src/core/protocol.js';
import { backup, verify } from '../dist/src/index.js';
import { performTask } from '../dist/workers/file-worker.js';
import { readBackupIndex } from './helpers/backup.js';
import { cleanup, sha256File, tempDir } from './helpers/tree.js';

afterEach(cleanup);

const MiB = 1024 * 1024;
const LARGE = 4 * MiB;

/** Deterministic, incompressible-looking content of `size` bytes, different for each seed. */
function content(seed: number, size: number): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(String(seed)).digest();
  for (let at = 0; at < size; at += block.length) {
    block.copy(out, at);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

function noStop(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
}

function run(task: CopyTask | LinkTask): TaskResult {
  return performTask({ task: postedTask(task), stop: noStop() });
}

/** `a.json`, `big.bin` (5 MiB) and `b.json` in `store`, and an empty `dest`. */
function batchCase(): { store: string; dest: string; task: CopyTask } {
  const root = tempDir();
  const store = realpathSync(root);
  const source = join(store, 'store');
  const dest = join(store, 'dest');
  mkdirSync(source);
  mkdirSync(dest);
  writeFileSync(join(source, 'a.json'), '{"a":1}');
  writeFileSync(join(source, 'big.bin'), content(1, 5 * MiB));
  writeFileSync(join(source, 'b.json'), '{"b":2}');
  const task: CopyTask = {
    kind: 'copy',
    // Planned by name: sizes unknown (0), as a backup's walk plans them.
    files: ['a.json', 'big.bin', 'b.json'].map((rel) => ({ rel, size: 0 })),
    from: { root: source, confineTo: source, attributesFrom: 'source', changedRetries: 0, expectSize: false },
    to: { root: dest, confineTo: null, writeMode: 'create', owners: false, modeMask: 0o7777 },
  };
  return { store: source, dest, task };
}

describe('a worker given a batch planned without sizes', () => {
  it('hands back a file of at least handBackFrom bytes unread and unwritten, with the size it found', () => {
    const { dest, task } = batchCase();
    const result = run({ ...task, handBackFrom: LARGE });
    expect(result.outcomes.map((outcome) => [outcome.rel, outcome.ok])).toEqual([
      ['a.json', true],
      ['b.json', true],
    ]);
    expect(result.handedBack).toEqual([{ rel: 'big.bin', size: 5 * MiB }]);
    expect(result.bytes).toBe(14);
    expect(existsSync(join(dest, 'big.bin'))).toBe(false);
    expect(readFileSync(join(dest, 'b.json'), 'utf8')).toBe('{"b":2}');
  });

  it('copies the same file when the batch does not hand back (a batch of one, or sizes planned)', () => {
    const { store, dest, task } = batchCase();
    const result = run(task);
    expect(result.handedBack).toBeUndefined();
    expect(result.outcomes.map((outcome) => outcome.rel)).toEqual(['a.json', 'big.bin', 'b.json']);
    expect(sha256File(join(dest, 'big.bin'))).toBe(sha256File(join(store, 'big.bin')));
  });

  it('hands back a large file the change rule would hash before linking, before reading it', () => {
    const { store, dest, task } = batchCase();
    const previous = join(tempDir(), 'previous');
    mkdirSync(previous);
    writeFileSync(join(previous, 'big.bin'), readFileSync(join(store, 'big.bin')));
    const linkTask: LinkTask = {
      ...task,
      kind: 'link',
      files: [
        { rel: 'a.json', size: 0 },
        {
          rel: 'big.bin',
          size: 0,
          // The previous index entry, recorded without identity fields: the rule must hash to decide.
          previous: {
            size: 5 * MiB,
            mode: 0o644,
            mtimeNs: 0n,
            ctimeNs: undefined,
            ino: undefined,
            sha256: sha256File(join(store, 'big.bin')),
          },
        },
      ],
      rule: {
        previousStartNs: 0n,
        racyMarginNs: 0n,
        ignoreInode: true,
        ignoreCtime: true,
        checksum: true,
      },
      linkFrom: { root: realpathSync(previous), confined: true },
      handBackFrom: LARGE,
    };
    const result = run(linkTask);
    expect(result.outcomes.map((outcome) => outcome.rel)).toEqual(['a.json']);
    expect(result.handedBack?.map((op) => [op.rel, op.size, op.previous?.size])).toEqual([
      ['big.bin', 5 * MiB, 5 * MiB],
    ]);
    expect(existsSync(join(dest, 'big.bin'))).toBe(false);
    // Sent alone, the same op is hashed and linked.
    const alone = run({ ...linkTask, files: result.handedBack!, handBackFrom: undefined });
    expect(alone.outcomes).toMatchObject([
      { rel: 'big.bin', ok: true, link: { linked: true, hashed: true } },
    ]);
  });
});

describe('a backup of a folder of large files', () => {
  it('copies them on every thread, and its index lists every file, in order, with its hash', async () => {
    const root = tempDir();
    const source = join(root, 'store');
    mkdirSync(join(source, 'memory', 'knowledge'), { recursive: true });
    mkdirSync(join(source, 'memory', 'notes'), { recursive: true });
    const expected = new Map<string, string>();
    const write = (rel: string, data: Buffer | string) => {
      writeFileSync(join(source, rel), data);
      expected.set(rel, createHash('sha256').update(data).digest('hex'));
    };
    // One batch holds every file of the folder: without hand-back, one thread would copy all of them.
    for (let i = 0; i < 6; i++) write(`memory/knowledge/index-${i}.bin`, content(i, LARGE + i * 4096));
    for (let i = 0; i < 5; i++) write(`memory/knowledge/topic-${i}.json`, `{"topic":${i}}`);
    for (let i = 0; i < 5; i++) write(`memory/notes/note-${i}.md`, `# note ${i}\n`);
    const dest = join(root, 'backup');
    const result = await backup({ source, dest, threads: 2 });
    expect(result.files).toBe(16);
    expect(result.threads).toBe(2);
    const files = readBackupIndex(dest).filter((line) => line.type === 'file');
    expect(files.map((line) => line.path)).toEqual([...expected.keys()].sort());
    for (const line of files) {
      expect(line.sha256, line.path).toBe(expected.get(line.path));
      expect(sha256File(join(dest, line.path)), line.path).toBe(expected.get(line.path));
    }
    expect((await verify({ backup: dest })).ok).toBe(true);
  });
});
