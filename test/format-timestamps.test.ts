// Timestamps round-trip: files and directories from before 1970 and far in the future keep their mtime to
// the microsecond through backup and restore (Node sets times as a double of seconds: Node 20 and 22 land on
// the microsecond, later ones inside it; beyond 2242 a double's step is ~2 µs); absurd timestamps in a hostile
// index are refused while it is read, before the target changes.

import { spawnSync } from 'node:child_process';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { backup, restore, verify } from '../dist/src/index.js';
import { expectOneLineError, readBackupIndex } from './helpers/backup.js';
import { requireDependency } from './helpers/dependencies.js';
import { type HandEntry, restoreSiblings, sha256, writeHandBackup } from './helpers/restore.js';
import { cleanup, fingerprintTree, runCli, tempDir } from './helpers/tree.js';

afterEach(cleanup);

/** `touch -d` (GNU date syntax), for mtimes Node's utimes could not set to the nanosecond. */
function touch(path: string, date: string): void {
  const run = spawnSync('touch', ['-m', '-d', date, path]);
  if (run.status !== 0) throw new Error(`touch -d ${date} ${path}: ${run.stderr}`);
}

function mtimeNs(path: string): bigint {
  return statSync(path, { bigint: true }).mtimeNs;
}

/** Whole microseconds, rounded down in time order (BigInt division rounds towards 1970). */
function floorToMicroseconds(ns: bigint): bigint {
  return ns / 1000n - (ns % 1000n < 0n ? 1n : 0n);
}

/** The mtime's microsecond, rounded down in time order: what a restore keeps. */
function mtimeMicroseconds(path: string): bigint {
  return floorToMicroseconds(mtimeNs(path));
}

// Within 2^33 s of 1970 every microsecond is a double Node can hand to utimes exactly.
const EXACT = {
  '1960.json': '1960-01-01 00:00:00.123456789 UTC',
  'epoch-minus.json': '1969-12-31 23:59:59.999999500 UTC', // half a microsecond before 1970
  '1901.json': '1901-12-14 00:00:00.000001999 UTC',
  '2200.json': '2200-01-01 00:00:00.654321987 UTC',
};
const FAR = { '2400.json': '2400-01-01 00:00:00.123456789 UTC' };

describe('timestamps before 1970 and far in the future', () => {
  it('round-trip to the microsecond for files, directories and the root, through backup and restore', async () => {
    const root = tempDir();
    const store = join(root, 'store');
    mkdirSync(join(store, 'old', 'older'), { recursive: true });
    for (const name of [...Object.keys(EXACT), ...Object.keys(FAR)])
      writeFileSync(join(store, 'old', name), name);
    for (const [name, date] of Object.entries({ ...EXACT, ...FAR })) touch(join(store, 'old', name), date);
    touch(join(store, 'old', 'older'), '1950-06-15 12:00:00.5 UTC');
    touch(join(store, 'old'), '1969-07-20 20:17:40.000000001 UTC');
    touch(store, '1960-01-01 UTC');
    const source = new Map(
      ['', 'old', 'old/older', ...Object.keys({ ...EXACT, ...FAR }).map((n) => `old/${n}`)].map((rel) => [
        rel,
        mtimeNs(join(store, rel)),
      ]),
    );
    expect(source.get('old/1960.json')! < 0n).toBe(true);

    const dest = join(root, 'backup');
    const made = await backup({ source: store, dest, sync: false });
    expect(made.exitCode).toBe(0);
    // The index records the source's nanoseconds exactly, negative ones included.
    for (const line of readBackupIndex(dest))
      expect(BigInt(line.mtime_ns!), line.path).toBe(source.get(line.path));
    // The backup's own copies get their mtimes as a restore does.
    expect(mtimeMicroseconds(join(dest, 'old', '1960.json'))).toBe(
      floorToMicroseconds(source.get('old/1960.json')!),
    );
    expect(await verify({ backup: dest })).toMatchObject({ ok: true });

    for (const mode of ['replace', 'merge'] as const) {
      const target = join(root, `restored-${mode}`);
      if (mode === 'merge') mkdirSync(target);
      await restore({ backup: dest, target, mode, sync: false });
      for (const [rel, ns] of source) {
        const restored = mtimeMicroseconds(join(target, rel));
        if (rel.startsWith('old/2400')) {
          expect(restored - floorToMicroseconds(ns), `${mode} ${rel}`).toBeGreaterThanOrEqual(-2n);
          expect(restored - floorToMicroseconds(ns), `${mode} ${rel}`).toBeLessThanOrEqual(2n);
        } else {
          expect(restored, `${mode} ${rel || 'the root'}`).toBe(floorToMicroseconds(ns));
        }
      }
    }
  });

  it('a backup made before format 2, whose index holds a negative mtime, restores', async () => {
    // statesnap wrote negative mtime_ns from the start but refused to read them back.
    const root = tempDir();
    const backupDir = join(root, 'backup');
    writeHandBackup(backupDir, [
      { type: 'dir', path: 'seeds', mtimeNs: '-631152000000000000' },
      { type: 'file', path: 'seeds/a.json', content: 'a', mtimeNs: '-315619199876543211' },
    ]);
    const target = join(root, 'target');
    const result = await restore({ backup: backupDir, target, sync: false });
    expect(result.exitCode).toBe(0);
    expect(mtimeMicroseconds(join(target, 'seeds', 'a.json'))).toBe(-315619199876544n);
    expect(mtimeMicroseconds(join(target, 'seeds'))).toBe(-631152000000000n);
  });

  it('a source time beyond what a backup records (tmpfs holds any) is clamped, never made unrestorable', async (context) => {
    const shm = '/dev/shm';
    const probe = spawnSync('mktemp', ['-d', `${shm}/statesnap-test-XXXXXX`], { encoding: 'utf8' });
    requireDependency(context, probe.status === 0 ? null : 'no tmpfs at /dev/shm to hold a year-5138 mtime');
    const store = probe.stdout.trim();
    try {
      mkdirSync(join(store, 'seeds'));
      writeFileSync(join(store, 'seeds', 'future.json'), '{}');
      touch(join(store, 'seeds', 'future.json'), '@99999999999');
      const held = mtimeNs(join(store, 'seeds', 'future.json')) === 99_999_999_999_000_000_000n;
      requireDependency(context, held ? null : '/dev/shm clamps timestamps itself, as ext4 does');
      const root = tempDir();
      const dest = join(root, 'backup');
      await backup({ source: store, dest, sync: false });
      const line = readBackupIndex(dest).find((entry) => entry.path === 'seeds/future.json')!;
      expect(line.mtime_ns).toBe('17179869183999999999');
      const result = await restore({ backup: dest, target: join(root, 'target'), sync: false });
      expect(result.exitCode).toBe(0);
    } finally {
      spawnSync('rm', ['-rf', store]);
    }
  });
});

describe('absurd timestamps in a hostile index are refused before the target changes (ERR_INDEX_INVALID)', () => {
  const cases: Array<[string, HandEntry[], 1 | 2]> = [
    [
      'a 30-digit file mtime',
      [{ type: 'file', path: 'a.json', content: '{}', mtimeNs: '123456789012345678901234567890' }],
      1,
    ],
    [
      'a 30-digit negative file mtime',
      [{ type: 'file', path: 'a.json', content: '{}', mtimeNs: '-999999999999999999999999999999' }],
      1,
    ],
    [
      'a file mtime just past 2514',
      [{ type: 'file', path: 'a.json', content: '{}', mtimeNs: '17179869184000000000' }],
      2,
    ],
    [
      'a file mtime just before 1425',
      [{ type: 'file', path: 'a.json', content: '{}', mtimeNs: '-17179869184000000000' }],
      2,
    ],
    [
      'a 30-digit directory mtime',
      [{ type: 'dir', path: 'd', mtimeNs: '999999999999999999999999999999' }],
      2,
    ],
    [
      'a 30-digit ctime',
      [
        {
          type: 'raw',
          line: JSON.stringify({
            path: 'a.json',
            type: 'file',
            size: 2,
            mode: 0o644,
            mtime_ns: '1',
            ctime_ns: '123456789012345678901234567890',
            ino: '5',
            uid: 0,
            gid: 0,
            sha256: sha256('{}'),
          }),
        },
      ],
      2,
    ],
  ];
  for (const [what, entries, format] of cases) {
    it(`${what} (format ${format})`, async () => {
      const root = tempDir();
      const backupDir = join(root, 'backup');
      writeHandBackup(backupDir, [{ type: 'file', path: 'ok.json', content: '{}' }, ...entries], { format });
      const target = join(root, 'target');
      mkdirSync(target);
      writeFileSync(join(target, 'live.json'), 'live');
      const before = fingerprintTree(target);
      const run = await runCli(['restore', backupDir, target]);
      expectOneLineError(run, 'ERR_INDEX_INVALID');
      expect(run.exitCode).toBe(1);
      expect(fingerprintTree(target)).toEqual(before);
      expect(restoreSiblings(target)).toEqual([]);
      expect((await verify({ backup: backupDir })).problems.list.map((p) => p.problem)).toEqual(['manifest']);
    });
  }
});
