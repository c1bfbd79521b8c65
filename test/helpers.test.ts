// The test helpers catch what they exist to catch: a fingerprint changes with any attribute it records, a tree
// description fails on any difference it describes, the backup invariant fails on a tampered backup, and a
// paused run that ends before its pause point fails the test that waits for it.

import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { backup } from '../dist/src/index.js';
import { expectBackupConsistent } from './helpers/backup.js';
import { startPausedCli } from './helpers/pause.js';
import {
  cleanup,
  createTree,
  dir,
  expectTree,
  file,
  fingerprintTree,
  isoMicros,
  symlink,
  type Tree,
  tempDir,
} from './helpers/tree.js';

afterEach(cleanup);

const T = 1_600_000_000.123456;

const SAMPLE: Tree = {
  'a.json': file('{"a":1}', { mode: 0o640, mtime: T }),
  sub: dir({ 'b.md': file('# b') }, { mode: 0o750 }),
  'link.json': symlink('a.json'),
  'to-sub': symlink('sub'),
};

async function sample(): Promise<string> {
  const root = join(tempDir(), 'tree');
  await createTree(root, SAMPLE);
  return root;
}

describe('fingerprintTree', () => {
  it('records kind, mode, mtime to the µs, size, content hash and link target, never following a link', async () => {
    const root = await sample();
    const print = fingerprintTree(root);
    expect(Object.keys(print)).toEqual(['a.json', 'link.json', 'sub', 'sub/b.md', 'to-sub']);
    expect(print['a.json']).toEqual({
      kind: 'file',
      mode: '640',
      mtime: expect.stringMatching(/^2020-09-13T12:26:40\.12345\dZ$/),
      size: 7,
      sha256: createHash('sha256').update('{"a":1}').digest('hex'),
    });
    expect(print['link.json']).toMatchObject({ kind: 'symlink', target: 'a.json' });
    expect(print['to-sub']).toMatchObject({ kind: 'symlink', target: 'sub' });
    expect(print.sub).toMatchObject({ kind: 'dir', mode: '750' });
    expect(fingerprintTree(root, { mtimes: false })['a.json']).not.toHaveProperty('mtime');
    expect(Object.keys(fingerprintTree(root, { exclude: (rel) => rel === 'sub' }))).toEqual([
      'a.json',
      'link.json',
      'to-sub',
    ]);
  });

  it.each<[string, string, (root: string) => void]>([
    ['a mode', 'a.json', (root) => chmodSync(join(root, 'a.json'), 0o600)],
    [
      'an mtime, by a few microseconds',
      'a.json',
      (root) => utimesSync(join(root, 'a.json'), T, T + 0.000_005),
    ],
    ['content of the same size', 'sub/b.md', (root) => writeFileSync(join(root, 'sub/b.md'), '# c')],
    [
      'a link target',
      'link.json',
      (root) => {
        unlinkSync(join(root, 'link.json'));
        symlinkSync('sub/b.md', join(root, 'link.json'));
      },
    ],
    ['a new empty folder', 'sub/new', (root) => mkdirSync(join(root, 'sub/new'))],
  ])('changes with %s', async (_what, changed, change) => {
    const root = await sample();
    const before = fingerprintTree(root);
    change(root);
    const after = fingerprintTree(root);
    const differing = [...new Set([...Object.keys(before), ...Object.keys(after)])].filter(
      (rel) => JSON.stringify(before[rel]) !== JSON.stringify(after[rel]),
    );
    expect(differing).toContain(changed);
    expect(after).not.toEqual(before);
  });

  it('writes mtimes as ISO 8601 with microseconds, before 1970 too', () => {
    expect(isoMicros(1_600_000_000_123_456_789n)).toBe('2020-09-13T12:26:40.123456Z');
    expect(isoMicros(-1_500n)).toBe('1969-12-31T23:59:59.999998Z');
  });
});

describe('expectTree', () => {
  it('accepts the tree createTree made from the same description', async () => {
    expectTree(await sample(), SAMPLE);
  });

  it.each<[string, Tree]>([
    ['different content', { ...SAMPLE, 'a.json': file('{"a":2}', { mode: 0o640, mtime: T }) }],
    ['a different mode', { ...SAMPLE, 'a.json': file('{"a":1}', { mode: 0o644, mtime: T }) }],
    [
      'an mtime a millisecond off',
      { ...SAMPLE, 'a.json': file('{"a":1}', { mode: 0o640, mtime: T + 0.001 }) },
    ],
    ['a different link target', { ...SAMPLE, 'link.json': symlink('sub') }],
    ['an entry missing', { ...SAMPLE, 'c.json': file('') }],
    ['an entry too many', { 'a.json': SAMPLE['a.json']!, sub: SAMPLE.sub!, 'to-sub': SAMPLE['to-sub']! }],
    ['a file where a folder is', { ...SAMPLE, sub: file('# b') }],
  ])('fails on %s', async (_what, described) => {
    const root = await sample();
    expect(() => expectTree(root, described)).toThrow();
  });
});

describe('expectBackupConsistent', () => {
  async function madeBackup(): Promise<string> {
    const root = await sample();
    const dest = join(tempDir(), 'backup');
    await backup({ source: root, dest, sync: false });
    expectBackupConsistent(dest);
    return dest;
  }

  it.each<[string, (dest: string) => void]>([
    ['a stray file', (dest) => writeFileSync(join(dest, 'sub/stray.json'), '{}')],
    ['a flipped byte', (dest) => writeFileSync(join(dest, 'a.json'), '{"a":2}')],
    ['a file mtime changed', (dest) => utimesSync(join(dest, 'a.json'), T, T + 1)],
    ['a folder mode changed', (dest) => chmodSync(join(dest, 'sub'), 0o700)],
    ['a file missing', (dest) => unlinkSync(join(dest, 'sub/b.md'))],
  ])('fails on %s', async (_what, tamper) => {
    const dest = await madeBackup();
    tamper(dest);
    expect(() => expectBackupConsistent(dest)).toThrow();
  });
});

describe('startPausedCli', () => {
  it('fails the test when the run ends before its pause point', async () => {
    const root = tempDir();
    const running = startPausedCli(['backup', join(root, 'missing'), join(root, 'out')], ['published']);
    await expect(running.reached('published')).rejects.toThrow(/ended before pausing at published/);
  });

  it('an unknown pause point stops the run at startup', async () => {
    const root = tempDir();
    const running = startPausedCli(['backup', join(root, 'missing'), join(root, 'out')], ['copyin']);
    const run = await running.done;
    expect(run.exitCode).not.toBe(0);
    expect(run.stderr).toContain('unknown pause point "copyin"');
  });
});
