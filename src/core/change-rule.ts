// The change rule of an incremental snapshot: whether a source file may be hard-linked from the previous
// backup, must be read and hashed first, or must be copied. Decided from the source's lstat against the
// previous backup's index entry, never from the stat of the previous backup's own file (a hard link
// changes that file's ctime, and its mode is what the previous backup restores). Pure, importing only the
// worker protocol's types: the file workers apply it where they lstat, dry runs and diffs on the main thread.

import type { ChangeRuleOptions, LinkPlan, StoredContent } from './protocol.js';

export type { ChangeRuleOptions } from './protocol.js';

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

/** The source file as an lstat describes it: what the rule compares, and what the index records when linked. */
export interface SourceStat extends SourceIdentity {
  uid: number;
  gid: number;
}

/** The fields of a bigint lstat (`fs.BigIntStats`) the rule reads. */
export interface BigIntLstat {
  size: bigint;
  mode: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  ino: bigint;
  uid: bigint;
  gid: bigint;
}

export function sourceStatOf(stats: BigIntLstat): SourceStat {
  return {
    size: Number(stats.size),
    mode: Number(stats.mode) & 0o7777,
    mtimeNs: stats.mtimeNs,
    ctimeNs: stats.ctimeNs,
    ino: stats.ino,
    uid: Number(stats.uid),
    gid: Number(stats.gid),
  };
}

/**
 * How the file `source` describes is taken from the previous backup, whose entry at its path is `previous`:
 * a plan to link it (unread, or once its hash is found equal), or undefined when it must be copied.
 */
export function linkPlanFor(
  source: SourceStat,
  previous: PreviousEntry | undefined,
  options: ChangeRuleOptions,
): LinkPlan | undefined {
  const decision = decideChange(source, previous, options);
  if (decision.action === 'copy' || previous === undefined) return undefined;
  const { mtimeNs, ctimeNs, ino, uid, gid } = source;
  return {
    ...(previous.stored && { stored: previous.stored }),
    action: decision.action,
    size: source.size,
    mode: previous.mode ?? source.mode,
    sha256: previous.sha256,
    source: { mtimeNs, ctimeNs, ino, uid, gid },
  };
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
