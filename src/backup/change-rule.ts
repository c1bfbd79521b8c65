// The change rule of an incremental snapshot: whether a source file may be hard-linked from the previous
// backup, must be read and hashed first, or must be copied. Decided from the source's lstat against the
// previous backup's index entry, never from the stat of the previous backup's own file (a hard link
// changes that file's ctime, and its mode is what the previous backup restores).

import type { StoredContent } from '../core/protocol.js';
import type { IndexEntry } from '../format/index-reader.js';

/** What the walk's lstat says about a regular file of the source. */
export interface SourceIdentity {
  size: number;
  /** Permission bits (`st_mode & 0o7777`). */
  mode: number;
  mtimeNs: bigint;
  ctimeNs: bigint;
  ino: bigint;
}

/**
 * The previous backup's index entry at the same path, as recorded. Indexes written before identity was
 * recorded lack `ino`/`ctimeNs`; a backup without an index (made by Oxios) is described by the lstat of its
 * files, so it has neither those nor a `sha256`.
 */
export interface PreviousEntry {
  type: 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'char-device' | 'block-device';
  size?: number;
  mode?: number;
  mtimeNs?: bigint;
  ctimeNs?: bigint;
  ino?: bigint;
  sha256?: string;
  /** In object storage: where the previous snapshot's copy of the content lies. */
  stored?: StoredContent;
}

/** An index line of the previous backup as the change rule compares it. */
export function previousEntryOf(line: IndexEntry): PreviousEntry {
  if (line.type !== 'file') return { type: line.type };
  return {
    type: 'file',
    size: line.size,
    mode: line.mode,
    mtimeNs: BigInt(line.mtime_ns),
    ctimeNs: line.ctime_ns === undefined ? undefined : BigInt(line.ctime_ns),
    ino: line.ino === undefined ? undefined : BigInt(line.ino),
    sha256: line.sha256,
  };
}

export interface ChangeRuleOptions {
  /**
   * When the previous backup started (ns since the epoch); undefined when its manifest does not say, which
   * makes every file racy.
   */
  previousStartNs: bigint | undefined;
  /** Files changed this close before the previous start may have changed again within one timestamp tick. */
  racyMarginNs: bigint;
  /** Leave the inode number out of the comparison (the store was restored or moved). */
  ignoreInode: boolean;
  /** Leave the ctime out of the comparison (the store was restored or moved). */
  ignoreCtime: boolean;
  /** Hash every file whose size and mode are unchanged and link only on an equal hash. */
  checksum: boolean;
}

/**
 * Timestamp granularity the racy test allows for: filesystems stamp files from a clock that lags the
 * process's clock by up to one tick (a jiffy on Linux), and some store whole seconds (HFS+) or two-second
 * steps (FAT). Files changed within this margin before the previous backup began are hashed, never linked
 * on metadata alone.
 */
export const DEFAULT_RACY_MARGIN_NS = 2_000_000_000n;

export type ChangeDecision =
  /** Every identity field matches and the file was not racy: link without reading it. */
  | { action: 'link'; reason: 'unchanged' }
  /** Read and hash the source; link if the hash equals the previous one, else copy what was read. */
  | { action: 'hash-then-link'; reason: 'racy' | 'no-identity' | 'checksum' }
  | {
      action: 'copy';
      reason:
        | 'new'
        | 'type-changed'
        | 'size-changed'
        /** Never link across a mode change: an older backup's inode must keep its mode. */
        | 'mode-changed'
        | 'mtime-changed'
        | 'inode-changed'
        | 'ctime-changed';
    };

export function decideChange(
  source: SourceIdentity,
  previous: PreviousEntry | undefined,
  options: ChangeRuleOptions,
): ChangeDecision {
  if (previous === undefined) return { action: 'copy', reason: 'new' };
  if (previous.type !== 'file') return { action: 'copy', reason: 'type-changed' };
  if (previous.size !== source.size) return { action: 'copy', reason: 'size-changed' };
  if (previous.mode !== source.mode) return { action: 'copy', reason: 'mode-changed' };
  if (options.checksum) return { action: 'hash-then-link', reason: 'checksum' };
  if (
    previous.mtimeNs === undefined ||
    (previous.ctimeNs === undefined && !options.ignoreCtime) ||
    (previous.ino === undefined && !options.ignoreInode)
  ) {
    return { action: 'hash-then-link', reason: 'no-identity' };
  }
  if (microseconds(previous.mtimeNs) !== microseconds(source.mtimeNs)) {
    return { action: 'copy', reason: 'mtime-changed' };
  }
  // Inode before ctime: a replaced file (renamed over) has both new, and "another file" is the better reason.
  if (!options.ignoreInode && previous.ino !== source.ino) return { action: 'copy', reason: 'inode-changed' };
  if (!options.ignoreCtime && previous.ctimeNs !== source.ctimeNs) {
    return { action: 'copy', reason: 'ctime-changed' };
  }
  if (isRacy(previous, options)) return { action: 'hash-then-link', reason: 'racy' };
  return { action: 'link', reason: 'unchanged' };
}

/**
 * mtimes compare to the microsecond: Node sets timestamps through libuv, which keeps microseconds, so a store
 * restored by statesnap (or any Node tool) carries each mtime truncated to its microsecond, rounded down in
 * time order (before 1970 too, where BigInt division would round towards 1970). Nothing real is lost: a write
 * after a backup that found the file non-racy moves its mtime by at least the racy margin.
 */
function microseconds(ns: bigint): bigint {
  return ns / 1000n - (ns % 1000n < 0n ? 1n : 0n);
}

/**
 * Whether the recorded timestamps are too close to (or after) the previous backup's start to prove that a
 * later write would have moved them. An ignored ctime is not consulted: after a restore every ctime is new,
 * which is why the user asked to ignore it.
 */
function isRacy(previous: PreviousEntry, options: ChangeRuleOptions): boolean {
  if (options.previousStartNs === undefined) return true;
  const threshold = options.previousStartNs - options.racyMarginNs;
  if (previous.mtimeNs !== undefined && previous.mtimeNs >= threshold) return true;
  return !options.ignoreCtime && previous.ctimeNs !== undefined && previous.ctimeNs >= threshold;
}
