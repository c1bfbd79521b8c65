// The previous backup of `--link-dest`: checked once (a complete backup, on the new backup's filesystem, apart
// from both trees), read as a stream of entries in canonical order, and joined with the walk of the source so
// the change rule decides, file by file, whether to link it from there, hash it first, or copy it.

import { type BigIntStats, lstatSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  type ChangeRuleOptions,
  linkPlanFor,
  type PreviousEntry,
  sourceStatOf,
} from '../core/change-rule.js';
import { abortError, describeCause, isStatesnapError, StatesnapError } from '../core/errors.js';
import { type HasPath, OrderViolation, orderedPath, SortedCursor } from '../core/index-order.js';
import { isWithin } from '../core/paths.js';
import type { EntrySource } from '../core/pipeline.js';
import type { FileOp } from '../core/protocol.js';
import { walk } from '../core/walk.js';
import { readIndexBatches } from '../format/index-reader.js';
import { formatOf, RESERVED_ROOT_NAMES, type StatesnapExtras } from '../format/manifest.js';
import { openBackup } from '../read/backup-reader.js';
import { previousEntryOf } from './previous-entry.js';

/** A previous backup that files are linked from. */
export interface LinkSource {
  /** Its real path. */
  root: string;
  /** As the user named it, for messages and the manifest. */
  given: string;
  /** When its manifest says it was made. */
  createdAt: string;
  /** When it started reading its source (the racy check's reference), if its manifest records it. */
  startedAtNs: bigint | undefined;
  /** Its totals, which a progress display can use as the new backup's estimate; null if it records none. */
  totals: { files: number; bytes: number } | null;
  /** Its entries in canonical order, in batches. */
  entries(signal: AbortSignal): AsyncIterable<readonly PreviousRecord[]>;
}

export interface PreviousRecord extends HasPath {
  entry: PreviousEntry;
}

function invalid(given: string, why: string, cause?: unknown): StatesnapError {
  return new StatesnapError('ERR_LINK_DEST_INVALID', `--link-dest ${given} ${why}`, { path: given, cause });
}

/**
 * Checks and opens the previous backup at `given` for a backup of `source` (a real path) into `dest` (a
 * resolved path whose parent exists). Refuses (ERR_LINK_DEST_INVALID) one that is missing or not a complete
 * backup, overlaps either tree, or lies on another filesystem than `dest`: hard links cannot cross
 * filesystems, and falling back to a full copy would silently cost what the user asked to save.
 */
export function openLinkSource(given: string, paths: { source: string; dest: string }): LinkSource {
  let reader: ReturnType<typeof openBackup>;
  try {
    reader = openBackup(given);
  } catch (error) {
    if (!isStatesnapError(error)) throw error;
    throw invalid(given, `is not a complete backup: ${error.message}`, error);
  }
  const { root } = reader;
  if (isWithin(root, paths.source) || isWithin(paths.source, root)) {
    throw invalid(given, `overlaps the source ${paths.source}: linking from it would share live files`);
  }
  if (isWithin(root, paths.dest) || isWithin(paths.dest, root)) {
    throw invalid(given, `overlaps the destination ${paths.dest}`);
  }
  let sameDevice: boolean;
  try {
    sameDevice = lstatSync(root).dev === lstatSync(dirname(paths.dest)).dev;
  } catch (error) {
    throw invalid(given, `cannot be read: ${describeCause(error)}`, error);
  }
  if (!sameDevice) {
    throw invalid(
      given,
      `is on another filesystem than ${paths.dest}: hard links cannot cross filesystems (leave out --link-dest for a full copy)`,
    );
  }
  const { extras } = reader;
  return {
    root,
    given,
    createdAt: reader.manifest.created_at,
    startedAtNs: extras?.started_at_ns === undefined ? undefined : BigInt(extras.started_at_ns),
    totals: extras ? { files: extras.totals.files, bytes: extras.totals.bytes } : null,
    entries: (signal) =>
      extras?.index_order === 'canonical' && formatOf(extras) === 2
        ? indexRecords(root, extras, signal)
        : treeRecords(root, signal),
  };
}

const BATCH = 512;

/** A canonically ordered index: every identity field and hash it records, a batch per slice of it read. */
async function* indexRecords(
  root: string,
  extras: StatesnapExtras,
  signal: AbortSignal,
): AsyncGenerator<PreviousRecord[]> {
  for await (const lines of readIndexBatches(
    root,
    { format: 2, ...extras.index, order: 'canonical' },
    { refuseCaseCollisions: false },
  )) {
    if (signal.aborted) throw abortError(signal, root);
    const batch: PreviousRecord[] = [];
    for (const line of lines) batch.push({ path: orderedPath(line.path), entry: previousEntryOf(line) });
    yield batch;
  }
}

/**
 * A backup without a canonically ordered index (an older statesnap's, or Oxios'), walked as a tree in
 * canonical order: types, sizes and modes only, so every same-size same-mode file is hashed on both sides.
 * The walk pushes; this pulls, holding at most a few batches, and stops the walk when the reader stops.
 */
async function* treeRecords(root: string, signal: AbortSignal): AsyncGenerator<PreviousRecord[]> {
  const stop = new AbortController();
  const walkSignal = AbortSignal.any([signal, stop.signal]);
  const ready: PreviousRecord[][] = [];
  let batch: PreviousRecord[] = [];
  // Who waits for whom: the reader for a batch, or the walk for the reader to take some.
  const waiting: { reader: (() => void) | null; walk: (() => void) | null } = { reader: null, walk: null };
  let ended = false;
  let failure: unknown;
  const wake = () => {
    waiting.reader?.();
    waiting.reader = null;
  };
  const resumeWalk = () => {
    waiting.walk?.();
    waiting.walk = null;
  };
  const add = (path: string, entry: PreviousEntry): undefined | Promise<void> => {
    if (walkSignal.aborted) throw abortError(walkSignal, root);
    batch.push({ path: orderedPath(path), entry });
    if (batch.length < BATCH) return undefined;
    ready.push(batch);
    batch = [];
    wake();
    if (ready.length < 4) return undefined;
    return new Promise((resume) => {
      waiting.walk = resume;
    });
  };
  const walking = walk(
    root,
    { isExcluded: () => false, reservedRootNames: RESERVED_ROOT_NAMES, signal: walkSignal, tree: 'backup' },
    {
      dir: (dir) => {
        if (dir.rel !== '') add(dir.rel, { type: 'dir' });
      },
      file: (op: FileOp, stats?: BigIntStats) =>
        add(op.rel, { type: 'file', size: op.size, mode: Number(stats?.mode ?? 0) & 0o7777 }),
      skip: (rel, kind) => {
        if (kind !== 'excluded' && kind !== 'reserved') add(rel, { type: kind });
      },
      // A directory of the previous backup that cannot be read has nothing to link from: its files are copied.
      problem: () => undefined,
    },
  ).then(
    () => {
      if (batch.length > 0) ready.push(batch);
      ended = true;
      wake();
    },
    (error: unknown) => {
      failure = error;
      ended = true;
      wake();
    },
  );
  try {
    for (;;) {
      const next = ready.shift();
      if (next !== undefined) {
        resumeWalk();
        yield next;
      } else if (ended) {
        if (failure !== undefined && !stop.signal.aborted) throw failure;
        return;
      } else {
        await new Promise<void>((resume) => {
          waiting.reader = resume;
        });
      }
    }
  } finally {
    stop.abort();
    resumeWalk();
    await walking;
  }
}

/** What a dry run says `--link-dest` would do with the source's files. */
export interface LinkPlan {
  /** Unchanged by the change rule: would be linked without being read. */
  link: number;
  /** Racy, or no identity to compare (`--checksum`, an older or Oxios-made previous backup): read, then linked if equal. */
  hashThenLink: number;
  /** Changed or new: would be copied. */
  copy: number;
}

/** `inner` (a `linkingSource`) with each file's planned operation counted into `plan`. */
export function countingLinkPlan(inner: EntrySource, plan: LinkPlan): EntrySource {
  return {
    read: inner.read,
    entries: (sink, signal) =>
      inner.entries(
        {
          ...sink,
          file: (op, stats) => {
            if (op.link?.action === 'link') plan.link++;
            else if (op.link?.action === 'hash-then-link') plan.hashThenLink++;
            else plan.copy++;
            return sink.file(op, stats);
          },
        },
        signal,
      ),
  };
}

/** How many files of the previous backup the new one no longer has (deleted, renamed, excluded since). */
export interface JoinCounts {
  removedSinceLinkSource: number;
}

/**
 * `inner` (the walk of the source, with lstat) with each file joined to the previous backup's entry at its
 * path and given a link plan where the change rule allows one: what a dry run counts and object storage packs.
 * Entries of the previous backup that no file of the source matches are counted when they are files.
 */
export function linkingSource(
  inner: EntrySource,
  link: LinkSource,
  rule: ChangeRuleOptions,
  counts: JoinCounts,
): EntrySource {
  return joinedSource(inner, link, counts, (op, stats, previous) => {
    if (stats === undefined || previous === undefined) return;
    const linkPlan = linkPlanFor(sourceStatOf(stats), previous, rule);
    if (linkPlan !== undefined) op.link = linkPlan;
  });
}

/**
 * `inner` (the walk of the source, by name) with each file given the previous backup's entry at its path when
 * that is a regular file: the workers lstat the file and apply the change rule (a walk that lstats every file
 * on one thread is what a backup of an unchanged store waits for). Counted as `linkingSource` counts.
 */
export function previousJoiningSource(inner: EntrySource, link: LinkSource, counts: JoinCounts): EntrySource {
  return joinedSource(inner, link, counts, (op, _stats, previous) => {
    if (previous?.type !== 'file' || previous.size === undefined || previous.mode === undefined) return;
    const { size, mode, mtimeNs, ctimeNs, ino, sha256 } = previous;
    op.previous = { size, mode, mtimeNs, ctimeNs, ino, sha256 };
  });
}

function joinedSource(
  inner: EntrySource,
  link: LinkSource,
  counts: JoinCounts,
  onFile: (op: FileOp, stats: BigIntStats | undefined, previous: PreviousEntry | undefined) => void,
): EntrySource {
  return {
    read: inner.read,
    entries: async (sink, signal) => {
      const cursor = new SortedCursor<PreviousRecord>(link.entries(signal), (record) => {
        if (record.entry.type === 'file') counts.removedSinceLinkSource++;
      });
      try {
        await inner.entries(
          {
            ...sink,
            file: (op, stats) => {
              const found = cursor.seek(orderedPath(op.rel));
              if (!(found instanceof Promise)) {
                onFile(op, stats, found?.entry);
                return sink.file(op);
              }
              return found.then((previous) => {
                onFile(op, stats, previous?.entry);
                return sink.file(op);
              });
            },
          },
          signal,
        );
        await cursor.finish();
      } catch (error) {
        if (error instanceof OrderViolation) {
          throw new StatesnapError(
            'ERR_INDEX_INVALID',
            `index of --link-dest ${link.given} is not in canonical order: ${error.message}`,
            { path: link.given, cause: error },
          );
        }
        throw error;
      } finally {
        await cursor.close();
      }
    },
  };
}
