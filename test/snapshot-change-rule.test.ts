// The snapshot change rule on real files: each change kind is made for real (rewrite + `touch -r`, rename over,
// chmod, a racy write, a restored store), lstat'ed, and judged against the entry recorded before it; plus the
// check of a fresh link and the link() failures that fall back to a copy.

import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statfsSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ChangeRuleOptions,
  DEFAULT_RACY_MARGIN_NS,
  decideChange,
  type PreviousEntry,
  type SourceIdentity,
  sourceStatOf,
} from '../dist/src/core/change-rule.js';
import { LINK_FALLBACK_CODES, linkedFileMismatch, utimeSeconds } from '../dist/src/core/protocol.js';
import { cleanup, tempDir } from './helpers/tree.js';

afterEach(cleanup);

function identity(path: string): SourceIdentity {
  return sourceStatOf(lstatSync(path, { bigint: true }));
}

/** The index line a backup taken now would record for `path`. */
function recorded(path: string): PreviousEntry {
  return { type: 'file', ...identity(path), sha256: 'a'.repeat(64) };
}

/** Options for a previous backup that started well after `entry` was recorded: nothing about it is racy. */
function settled(entry: PreviousEntry, overrides: Partial<ChangeRuleOptions> = {}): ChangeRuleOptions {
  return {
    // A file's ctime is never older than its mtime unless utimes set the mtime ahead, which no test here does.
    previousStartNs: entry.ctimeNs! + DEFAULT_RACY_MARGIN_NS + 1_000_000_000n,
    racyMarginNs: DEFAULT_RACY_MARGIN_NS,
    ignoreInode: false,
    ignoreCtime: false,
    checksum: false,
    ...overrides,
  };
}

/** Seconds for utimes that libuv truncates to exactly the microsecond of `ns`. */
function nodeSeconds(ns: bigint): number {
  return (Number(ns / 1000n) + 0.5) / 1e6;
}

function touchReference(from: string, to: string): void {
  const result = spawnSync('touch', ['-r', from, to]);
  expect(result.status, String(result.stderr)).toBe(0);
}

describe('decideChange on real changes', () => {
  it('links a file nothing touched', () => {
    const path = join(tempDir(), 'fact.json');
    writeFileSync(path, '{"a":1}');
    const entry = recorded(path);
    expect(decideChange(identity(path), entry, settled(entry))).toEqual({
      action: 'link',
      reason: 'unchanged',
    });
  });

  it('copies content rewritten with the same size and its mtime put back with touch -r', () => {
    const dir = tempDir();
    const path = join(dir, 'fact.json');
    const reference = join(dir, 'reference');
    writeFileSync(path, '{"a":1}');
    writeFileSync(reference, '');
    touchReference(path, reference);
    const entry = recorded(path);
    writeFileSync(path, '{"a":2}');
    touchReference(reference, path);
    const now = identity(path);
    expect([now.size, now.mtimeNs, now.ino]).toEqual([entry.size, entry.mtimeNs, entry.ino]);
    expect(decideChange(now, entry, settled(entry))).toEqual({ action: 'copy', reason: 'ctime-changed' });
  });

  it('copies a file replaced by rename (the way Oxios writes), even with the old mtime kept', () => {
    const dir = tempDir();
    const path = join(dir, 'fact.json');
    writeFileSync(path, '{"a":1}');
    const entry = recorded(path);
    // ctimes come from the kernel's coarse clock (a few ms per tick): let it move on, or the replacement can
    // carry the very ctime the entry recorded (that case is the racy rule's, tested below).
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    const temp = join(dir, 'fact.json.123.tmp');
    writeFileSync(temp, '{"a":2}');
    touchReference(path, temp);
    renameSync(temp, path);
    const now = identity(path);
    expect(now.mtimeNs).toBe(entry.mtimeNs);
    expect(decideChange(now, entry, settled(entry))).toEqual({ action: 'copy', reason: 'inode-changed' });
    // Without the inode, the new ctime still tells; without both, the change goes unseen (a documented limit).
    expect(decideChange(now, entry, settled(entry, { ignoreInode: true }))).toEqual({
      action: 'copy',
      reason: 'ctime-changed',
    });
    expect(decideChange(now, entry, settled(entry, { ignoreInode: true, ignoreCtime: true }))).toEqual({
      action: 'link',
      reason: 'unchanged',
    });
  });

  it('copies a file whose content changed with its mtime', () => {
    const path = join(tempDir(), 'fact.json');
    writeFileSync(path, '{"a":1}');
    const entry = recorded(path);
    writeFileSync(path, '{"a":2}');
    const now = identity(path);
    if (now.mtimeNs === entry.mtimeNs) {
      // A coarse-clock filesystem gave the second write the same mtime: the ctime must still differ or the
      // racy rule must catch it; either way the file is never linked on metadata alone.
      expect(decideChange(now, entry, settled(entry)).action).not.toBe('link');
    } else {
      expect(decideChange(now, entry, settled(entry))).toEqual({ action: 'copy', reason: 'mtime-changed' });
    }
  });

  it('compares mtimes to the microsecond: one microsecond apart is a change', () => {
    const path = join(tempDir(), 'fact.json');
    writeFileSync(path, '{"a":1}');
    const entry = recorded(path);
    const source = identity(path);
    const sameMicrosecond = { ...source, mtimeNs: source.mtimeNs - (source.mtimeNs % 1000n) };
    expect(decideChange(sameMicrosecond, entry, settled(entry)).action).toBe('link');
    const nextMicrosecond = { ...source, mtimeNs: sameMicrosecond.mtimeNs + 1000n };
    expect(decideChange(nextMicrosecond, entry, settled(entry)).reason).toBe('mtime-changed');
  });

  it('copies a file whose size changed, whatever the options', () => {
    const path = join(tempDir(), 'fact.json');
    writeFileSync(path, '{"a":1}');
    const entry = recorded(path);
    writeFileSync(path, '{"a":10}');
    for (const checksum of [false, true]) {
      expect(decideChange(identity(path), entry, settled(entry, { checksum }))).toEqual({
        action: 'copy',
        reason: 'size-changed',
      });
    }
  });

  it('copies (never links) a mode-only change, even with --checksum', () => {
    const path = join(tempDir(), 'fact.json');
    writeFileSync(path, '{"a":1}');
    chmodSync(path, 0o644);
    const entry = recorded(path);
    chmodSync(path, 0o600);
    const now = identity(path);
    expect(now.mode).toBe(0o600);
    for (const checksum of [false, true]) {
      expect(decideChange(now, entry, settled(entry, { checksum }))).toEqual({
        action: 'copy',
        reason: 'mode-changed',
      });
    }
  });

  it('hashes a file written in the same tick as the previous backup started (racy), then links on equal hash', () => {
    const path = join(tempDir(), 'fact.json');
    const startNs = BigInt(Date.now()) * 1_000_000n;
    writeFileSync(path, '{"a":1}');
    const entry = recorded(path);
    const options = { ...settled(entry), previousStartNs: startNs };
    expect(decideChange(identity(path), entry, options)).toEqual({
      action: 'hash-then-link',
      reason: 'racy',
    });
    // Written just before the start, inside the margin: still racy.
    const justBefore = { ...options, previousStartNs: entry.mtimeNs! + DEFAULT_RACY_MARGIN_NS - 1n };
    expect(decideChange(identity(path), entry, justBefore).reason).toBe('racy');
    // A previous backup whose manifest does not say when it started makes every file racy.
    expect(decideChange(identity(path), entry, { ...options, previousStartNs: undefined }).reason).toBe(
      'racy',
    );
  });

  it('treats a recent ctime as racy too, unless the ctime is ignored', () => {
    const path = join(tempDir(), 'fact.json');
    writeFileSync(path, '{"a":1}');
    const entry: PreviousEntry = { ...recorded(path), mtimeNs: 1_000_000_000n };
    const source = { ...identity(path), mtimeNs: 1_000_000_000n };
    const options = { ...settled(entry), previousStartNs: entry.ctimeNs! };
    expect(decideChange(source, entry, options).reason).toBe('racy');
    expect(decideChange(source, entry, { ...options, ignoreCtime: true })).toEqual({
      action: 'link',
      reason: 'unchanged',
    });
  });

  it('hashes when the previous index has no identity fields (older statesnap, or an Oxios tree)', () => {
    const path = join(tempDir(), 'fact.json');
    writeFileSync(path, '{"a":1}');
    const full = recorded(path);
    const olderIndex: PreviousEntry = {
      type: 'file',
      size: full.size,
      mode: full.mode,
      mtimeNs: full.mtimeNs,
    };
    const oxiosTree: PreviousEntry = { type: 'file', size: full.size, mode: full.mode };
    for (const entry of [olderIndex, oxiosTree]) {
      expect(decideChange(identity(path), entry, settled(full))).toEqual({
        action: 'hash-then-link',
        reason: 'no-identity',
      });
    }
    // Fields the user told us to ignore are not missing: an older index still compares by mtime.
    const ignoring = settled(full, { ignoreInode: true, ignoreCtime: true });
    expect(decideChange(identity(path), olderIndex, ignoring)).toEqual({
      action: 'link',
      reason: 'unchanged',
    });
    expect(decideChange(identity(path), oxiosTree, ignoring).reason).toBe('no-identity');
  });

  it('links a restored or moved store only with --ignore-inode --ignore-ctime', () => {
    const dir = tempDir();
    const original = join(dir, 'fact.json');
    writeFileSync(original, '{"a":1}');
    // The original's mtime has nanoseconds (as on ext4); the index records them.
    const entry = recorded(original);
    const wholeMicroseconds = entry.mtimeNs! - (entry.mtimeNs! % 1000n);
    entry.mtimeNs = wholeMicroseconds + 789n;
    // Restored later (past the filesystem's clock tick) as a statesnap restore does it: same content and mode,
    // the mtime set through utimes from a double, which keeps the microsecond but not the nanoseconds (Node
    // 20 and 22 truncate to the microsecond; 24 and later land within a microsecond), and a new inode and
    // ctime.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    const restored = join(dir, 'restored.json');
    writeFileSync(restored, readFileSync(original));
    utimesSync(restored, nodeSeconds(entry.mtimeNs), nodeSeconds(entry.mtimeNs));
    const now = identity(restored);
    expect(now.mtimeNs / 1000n).toBe(wholeMicroseconds / 1000n);
    expect(decideChange(now, entry, settled(entry)).reason).toBe('inode-changed');
    expect(decideChange(now, entry, settled(entry, { ignoreInode: true })).reason).toBe('ctime-changed');
    expect(decideChange(now, entry, settled(entry, { ignoreInode: true, ignoreCtime: true }))).toEqual({
      action: 'link',
      reason: 'unchanged',
    });
  });

  it('links a restored store from before 1970 too: there the microsecond also rounds down in time order', () => {
    const dir = tempDir();
    const original = join(dir, 'fact.json');
    writeFileSync(original, '{"a":1}');
    expect(spawnSync('touch', ['-m', '-d', '1960-01-01 00:00:00.123456789 UTC', original]).status).toBe(0);
    const entry = recorded(original);
    expect(entry.mtimeNs).toBe(-315619199876543211n);
    const restored = join(dir, 'restored.json');
    writeFileSync(restored, readFileSync(original));
    // As a statesnap restore sets it: -315619199.876543211 s keeps its microsecond rounded down in time order,
    // -315619199.876544 s (1970 is further), and loses its nanoseconds.
    utimesSync(restored, utimeSeconds(entry.mtimeNs!), utimeSeconds(entry.mtimeNs!));
    const now = identity(restored);
    expect(now.mtimeNs >= -315619199876544000n && now.mtimeNs < -315619199876543000n).toBe(true);
    expect(now.mtimeNs).not.toBe(entry.mtimeNs);
    expect(decideChange(now, entry, settled(entry, { ignoreInode: true, ignoreCtime: true }))).toEqual({
      action: 'link',
      reason: 'unchanged',
    });
  });

  it('hashes every unchanged file with --checksum', () => {
    const path = join(tempDir(), 'fact.json');
    writeFileSync(path, '{"a":1}');
    const entry = recorded(path);
    expect(decideChange(identity(path), entry, settled(entry, { checksum: true }))).toEqual({
      action: 'hash-then-link',
      reason: 'checksum',
    });
  });

  it('copies a file that is new, or that replaced a directory or a symlink', () => {
    const dir = tempDir();
    const path = join(dir, 'entry');
    mkdirSync(path);
    const asDirectory: PreviousEntry = { type: 'dir', mode: 0o755, mtimeNs: identity(path).mtimeNs };
    rmSync(path, { recursive: true });
    writeFileSync(path, 'now a file');
    const options = settled(recorded(path));
    expect(decideChange(identity(path), undefined, options)).toEqual({ action: 'copy', reason: 'new' });
    expect(decideChange(identity(path), asDirectory, options)).toEqual({
      action: 'copy',
      reason: 'type-changed',
    });
    expect(decideChange(identity(path), { type: 'symlink' }, options).reason).toBe('type-changed');
  });
});

describe('linkedFileMismatch, checked on the new link', () => {
  function linkedStat(path: string) {
    const stats = lstatSync(path);
    return { isFile: stats.isFile(), size: stats.size, mode: stats.mode & 0o7777 };
  }

  it('accepts the file the previous index describes', () => {
    const dir = tempDir();
    const previous = join(dir, 'previous.json');
    writeFileSync(previous, '{"a":1}');
    chmodSync(previous, 0o640);
    const entry = recorded(previous);
    linkSync(previous, join(dir, 'new.json'));
    expect(linkedFileMismatch(linkedStat(join(dir, 'new.json')), entry)).toBeNull();
  });

  it('refuses a previous file that was replaced by a symlink (link() links the symlink itself)', () => {
    const dir = tempDir();
    const previous = join(dir, 'previous.json');
    writeFileSync(previous, '{"a":1}');
    const entry = recorded(previous);
    writeFileSync(join(dir, 'elsewhere.json'), '{"a":1}');
    unlinkSync(previous);
    symlinkSync('elsewhere.json', previous);
    linkSync(previous, join(dir, 'new.json'));
    expect(linkedFileMismatch(linkedStat(join(dir, 'new.json')), entry)).toBe('not-a-file');
  });

  it('refuses a previous file whose size or mode no longer match its index entry', () => {
    const dir = tempDir();
    const previous = join(dir, 'previous.json');
    writeFileSync(previous, '{"a":1}');
    chmodSync(previous, 0o644);
    const entry = recorded(previous);
    writeFileSync(previous, '{"a":100}');
    linkSync(previous, join(dir, 'grown.json'));
    expect(linkedFileMismatch(linkedStat(join(dir, 'grown.json')), entry)).toBe('size-differs');
    writeFileSync(previous, '{"a":1}');
    chmodSync(previous, 0o600);
    expect(linkedFileMismatch(linkedStat(previous), entry)).toBe('mode-differs');
  });
});

describe('link() failures that fall back to a copy', () => {
  function linkError(from: string, to: string): string | undefined {
    try {
      linkSync(from, to);
      return undefined;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code;
    }
  }

  it('include what the kernel returns for a vanished previous file and for another filesystem', () => {
    const dir = tempDir();
    expect(linkError(join(dir, 'gone.json'), join(dir, 'new.json'))).toBe('ENOENT');
    expect(LINK_FALLBACK_CODES.has('ENOENT')).toBe(true);
    const other = mkdtempSync('/dev/shm/statesnap-change-');
    writeFileSync(join(dir, 'file.json'), '{}');
    try {
      const code = linkError(join(dir, 'file.json'), join(other, 'file.json'));
      // /dev/shm is tmpfs; only when tmpdir is tmpfs too would the two be one filesystem.
      if (statfsSync(dir).type !== statfsSync(other).type) expect(code).toBe('EXDEV');
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
    expect(LINK_FALLBACK_CODES.has('EXDEV')).toBe(true);
  });

  it('include EMLINK, which ext4 returns at 65,000 links to one inode', () => {
    const dir = tempDir();
    const EXT4_SUPER_MAGIC = 0xef53;
    if (statfsSync(dir).type !== EXT4_SUPER_MAGIC) {
      // Other filesystems have other (or no) limits; the set still names EMLINK.
      expect(LINK_FALLBACK_CODES.has('EMLINK')).toBe(true);
      return;
    }
    const target = join(dir, 'shared.json');
    writeFileSync(target, '{}');
    let code: string | undefined;
    for (let i = 1; code === undefined && i <= 70_000; i++) code = linkError(target, join(dir, `l${i}`));
    expect(code).toBe('EMLINK');
    expect(lstatSync(target).nlink).toBe(65_000);
    expect(LINK_FALLBACK_CODES.has(code!)).toBe(true);
  }, 120_000);

  it('do not include errors that mean the new backup itself is broken', () => {
    for (const code of ['ENOSPC', 'EEXIST', 'EACCES', 'EIO', 'EROFS'])
      expect(LINK_FALLBACK_CODES.has(code)).toBe(false);
  });
});
