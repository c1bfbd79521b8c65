// `diff()`: what changed between two backups, or between a backup and the live store, per category, from the
// indexes: added, removed, changed (content or type) and mode-changed entries. Two backups: no file is read.
// A live store: a file whose recorded identity still matches (the snapshot change rule) is not read either;
// only files whose identity moved while their size and mode did not are hashed. Canonically ordered indexes
// are merge-joined as they stream (memory: a batch and what changed); others are held in memory.

import { createHash } from 'node:crypto';
import { createReadStream, lstatSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_EXCLUDES, planSource } from '../backup/planner.js';
import { previousEntryOf } from '../backup/previous-entry.js';
import { DEFAULT_RACY_MARGIN_NS, decideChange } from '../core/change-rule.js';
import { describeCause, StatesnapError, throwIfAborted } from '../core/errors.js';
import { ExcludeRules } from '../core/excludes.js';
import {
  compareEntryPaths,
  type HasPath,
  OrderViolation,
  orderedPath,
  SortedCursor,
} from '../core/index-order.js';
import { requirePath, signalOption, stringListOption } from '../core/options.js';
import { fsPath } from '../core/protocol.js';
import type { SkipKind } from '../core/walk.js';
import { type IndexEntry, readIndex } from '../format/index-reader.js';
import { MANIFEST_FILE, OXIOS_CATEGORIES } from '../format/manifest.js';
import { type LocalBackupReader, openBackup } from '../read/backup-reader.js';
import { resolveBackupPath } from '../read/repository-listing.js';

export interface DiffOptions {
  /** A statesnap backup (a snapshot, `<repo>/latest`). */
  a: string;
  /** A statesnap backup, or a live store (any directory without a `manifest.json`). */
  b: string;
  /** Folders the counts are grouped by. @default the categories `a` recorded (the Oxios ones) */
  categories?: string[];
  signal?: AbortSignal;
}

export type DiffChange = 'added' | 'removed' | 'changed' | 'mode-changed';

export interface DiffSide {
  type: string;
  size?: number;
  mode?: number;
  sha256?: string;
}

export interface DiffEntry {
  path: string;
  change: DiffChange;
  /** The longest category the path lies in, or `(other)`. */
  category: string;
  a: DiffSide | null;
  b: DiffSide | null;
}

export interface DiffCounts {
  added: number;
  removed: number;
  changed: number;
  modeChanged: number;
}

export interface DiffResult {
  command: 'diff';
  a: string;
  b: string;
  /** `backup`: two indexes compared; `live`: `b` walked and compared with `a`'s index. */
  bKind: 'backup' | 'live';
  counts: DiffCounts;
  byCategory: Array<{ category: string } & DiffCounts>;
  /** In canonical order: each directory's changes together. */
  entries: DiffEntry[];
  /** Live files read and hashed because their identity moved while size and mode did not. */
  filesHashed: number;
  /**
   * True when the indexes were merge-joined as they were read (memory bounded by a batch and the changes);
   * false when `a`'s index had to be held in memory because an index is not in canonical order (format 1).
   */
  streamed: boolean;
  durationMs: number;
  exitCode: 0;
}

const OTHER = '(other)';

function statesnapBackup(
  path: string,
  role: string,
): LocalBackupReader & { extras: NonNullable<LocalBackupReader['extras']> } {
  const reader = openBackup(path);
  if (reader.extras === undefined || reader.format === null) {
    throw new StatesnapError(
      'ERR_INVALID_OPTION',
      `diff compares statesnap backups (with an index), and ${role} ${path} was made by Oxios`,
      { path },
    );
  }
  return reader as LocalBackupReader & { extras: NonNullable<LocalBackupReader['extras']> };
}

function entriesOf(reader: ReturnType<typeof statesnapBackup>): AsyncGenerator<IndexEntry> {
  return readIndex(
    reader.root,
    { format: reader.format!, ...reader.extras.index, order: reader.extras.index_order },
    { refuseCaseCollisions: false },
  );
}

function sideOf(entry: IndexEntry): DiffSide {
  if (entry.type === 'file')
    return { type: 'file', size: entry.size, mode: entry.mode, sha256: entry.sha256 };
  if (entry.type === 'dir') return { type: 'dir', mode: entry.mode };
  return { type: entry.type };
}

/** How two sides differ, or null when they hold the same (timestamps alone are not a change). */
function compareSides(a: DiffSide, b: DiffSide): DiffChange | null {
  if (a.type !== b.type || a.size !== b.size || a.sha256 !== b.sha256) return 'changed';
  return a.mode === b.mode ? null : 'mode-changed';
}

class Collector {
  readonly entries: DiffEntry[] = [];
  readonly #categories: string[];

  constructor(categories: string[]) {
    // Longest first: a path in `memory/facts` belongs there, not to `memory`.
    this.#categories = [...categories].sort((x, y) => y.length - x.length);
  }

  /** `b`'s entry at `path` against `a`'s (`before`, if `a` has one). */
  compare(path: string, before: IndexEntry | undefined, b: DiffSide): void {
    const change = before === undefined ? 'added' : compareSides(sideOf(before), b);
    if (change !== null) this.add(path, change, before === undefined ? null : sideOf(before), b);
  }

  add(path: string, change: DiffChange, a: DiffSide | null, b: DiffSide | null): void {
    const category = this.#categories.find((name) => path === name || path.startsWith(`${name}/`)) ?? OTHER;
    this.entries.push({ path, change, category, a, b });
  }

  finish(): Pick<DiffResult, 'counts' | 'byCategory' | 'entries'> {
    const empty = (): DiffCounts => ({ added: 0, removed: 0, changed: 0, modeChanged: 0 });
    const counts = empty();
    const byCategory = new Map<string, DiffCounts>();
    for (const entry of this.entries) {
      const key = entry.change === 'mode-changed' ? 'modeChanged' : entry.change;
      counts[key]++;
      const group = byCategory.get(entry.category) ?? empty();
      group[key]++;
      byCategory.set(entry.category, group);
    }
    this.entries.sort((x, y) => compareEntryPaths(x.path, y.path));
    return {
      counts,
      byCategory: [...byCategory]
        .map(([category, group]) => ({ category, ...group }))
        .sort((x, y) => (x.category < y.category ? -1 : 1)),
      entries: this.entries,
    };
  }
}

async function hashFile(path: string | Buffer): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** One live file against its recorded entry: unchanged by identity without reading it, else by its hash. */
async function compareLiveFile(
  root: string,
  rel: string,
  recorded: IndexEntry,
  startNs: bigint | undefined,
): Promise<{ side: DiffSide; change: DiffChange | null; hashed: boolean }> {
  const path = fsPath(join(root, rel));
  const stats = lstatSync(path, { bigint: true });
  const side: DiffSide = { type: 'file', size: Number(stats.size), mode: Number(stats.mode) & 0o7777 };
  const before = sideOf(recorded);
  if (recorded.type !== 'file' || side.size !== before.size)
    return { side, change: 'changed', hashed: false };
  const decision = decideChange(
    { size: side.size!, mode: side.mode!, mtimeNs: stats.mtimeNs, ctimeNs: stats.ctimeNs, ino: stats.ino },
    previousEntryOf(recorded),
    {
      previousStartNs: startNs,
      racyMarginNs: DEFAULT_RACY_MARGIN_NS,
      ignoreInode: false,
      ignoreCtime: false,
      checksum: false,
    },
  );
  if (decision.action === 'link')
    return { side: { ...side, sha256: before.sha256 }, change: null, hashed: false };
  side.sha256 = await hashFile(path);
  return { side, change: compareSides(before, side), hashed: true };
}

/** A live entry of the walk, waiting its turn to be compared. */
type LiveEntry = { rel: string; side: DiffSide } | { rel: string; file: true };

/**
 * Walks the live store `root` (in canonical order) and compares each entry with `a`'s at its path. The walk's
 * entries queue up and are compared in order whenever the walk offers a file, which it waits for: the queue
 * holds what the walk found since its last file (directories and skipped entries), never the store.
 */
async function diffLive(
  root: string,
  a: RecordedSide,
  startNs: bigint | undefined,
  collector: Collector,
  signal: AbortSignal,
): Promise<number> {
  let hashed = 0;
  const queue: LiveEntry[] = [];
  const compareOne = async (live: LiveEntry): Promise<void> => {
    const found = a.find(live.rel);
    const before = found instanceof Promise ? await found : found;
    if ('side' in live) {
      collector.compare(live.rel, before, live.side);
    } else if (before === undefined) {
      const stats = lstatSync(fsPath(join(root, live.rel)));
      collector.add(live.rel, 'added', null, { type: 'file', size: stats.size, mode: stats.mode & 0o7777 });
    } else {
      const compared = await compareLiveFile(root, live.rel, before, startNs).catch((error: unknown) => {
        throw new StatesnapError(
          'ERR_SOURCE_UNREADABLE',
          `cannot read ${join(root, live.rel)}: ${describeCause(error)}`,
          {
            path: join(root, live.rel),
            cause: error,
          },
        );
      });
      if (compared.hashed) hashed++;
      if (compared.change !== null) collector.add(live.rel, compared.change, sideOf(before), compared.side);
    }
  };
  const drain = async (): Promise<void> => {
    throwIfAborted(signal, root);
    for (let live = queue.shift(); live !== undefined; live = queue.shift()) await compareOne(live);
  };
  const source = planSource(root, {
    excludes: new ExcludeRules({ exclude: [], include: [], defaults: DEFAULT_EXCLUDES }),
    changedRetries: 0,
    statFiles: false,
  });
  await source.entries(
    {
      dir: (dir) => {
        if (dir.rel !== '') queue.push({ rel: dir.rel, side: { type: 'dir', mode: dir.mode } });
      },
      file: (op) => {
        queue.push({ rel: op.rel, file: true });
        return drain();
      },
      skip: (rel: string, kind: SkipKind) => {
        if (kind !== 'excluded' && kind !== 'reserved') queue.push({ rel, side: { type: kind } });
      },
      problem: (rel, _problem, message) => {
        throw new StatesnapError('ERR_SOURCE_UNREADABLE', `cannot read ${join(root, rel)}: ${message}`, {
          path: join(root, rel),
        });
      },
    },
    signal,
  );
  await drain();
  return hashed;
}

/** `a`'s entries, looked up by path in the order of `b`'s; `finish` reports the ones never looked up. */
interface RecordedSide {
  find(path: string): IndexEntry | undefined | Promise<IndexEntry | undefined>;
  finish(): Promise<void>;
  close(): Promise<void>;
}

interface Recorded extends HasPath {
  entry: IndexEntry;
}

const BATCH = 512;

async function* recordBatches(reader: ReturnType<typeof statesnapBackup>): AsyncGenerator<Recorded[]> {
  let batch: Recorded[] = [];
  for await (const entry of entriesOf(reader)) {
    batch.push({ path: orderedPath(entry.path), entry });
    if (batch.length >= BATCH) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

/** A canonically ordered index, read as a cursor: asked in canonical order, it holds one batch. */
function streamedSide(
  reader: ReturnType<typeof statesnapBackup>,
  onRemoved: (entry: IndexEntry) => void,
): RecordedSide {
  const cursor = new SortedCursor<Recorded>(recordBatches(reader), (record) => onRemoved(record.entry));
  return {
    find: (path) => {
      const found = cursor.seek(orderedPath(path));
      return found instanceof Promise ? found.then((record) => record?.entry) : found?.entry;
    },
    finish: () => cursor.finish(),
    close: () => cursor.close(),
  };
}

/** An index in any order, read whole into memory first (format 1 wrote files in completion order). */
async function heldSide(
  reader: ReturnType<typeof statesnapBackup>,
  onRemoved: (entry: IndexEntry) => void,
): Promise<RecordedSide> {
  const recorded = new Map<string, IndexEntry>();
  for await (const entry of entriesOf(reader)) recorded.set(entry.path, entry);
  return {
    find: (path) => {
      const entry = recorded.get(path);
      recorded.delete(path);
      return entry;
    },
    finish: async () => {
      for (const entry of recorded.values()) onRemoved(entry);
    },
    close: async () => undefined,
  };
}

/** Whether a backup's index lists its entries in canonical order (format 2 does; format 1 did not). */
function isCanonical(reader: ReturnType<typeof statesnapBackup>): boolean {
  return reader.format === 2 && reader.extras.index_order === 'canonical';
}

/** The real path of a live store, which must be a directory. */
function liveStore(path: string): string {
  let real: string;
  try {
    real = realpathSync(path);
  } catch (error) {
    throw new StatesnapError('ERR_SOURCE_UNREADABLE', `cannot read ${path}: ${describeCause(error)}`, {
      path,
      cause: error,
    });
  }
  if (!statSync(real).isDirectory()) {
    throw new StatesnapError('ERR_SOURCE_NOT_DIRECTORY', `${path} is not a directory`, { path });
  }
  return real;
}

/** Compares `options.a` (a backup) with `options.b` (a backup or a live store). */
export async function diff(options: DiffOptions): Promise<DiffResult> {
  const started = performance.now();
  const signal = signalOption(options.signal);
  const a = statesnapBackup(requirePath('a', options.a), 'a');
  // Resolved here already: whether `b` is a backup or a live store is decided from what it names.
  const bPath = resolveBackupPath(requirePath('b', options.b));
  const bIsBackup = lstatSync(join(bPath, MANIFEST_FILE), { throwIfNoEntry: false }) !== undefined;
  const collector = new Collector(
    stringListOption('categories', options.categories, a.extras.categories ?? OXIOS_CATEGORIES),
  );
  const b = bIsBackup ? statesnapBackup(bPath, 'b') : null;
  // Streamed when `b` comes in canonical order too: a live walk always does, a backup's index from format 2.
  const streamed = isCanonical(a) && (b === null || isCanonical(b));
  const onRemoved = (entry: IndexEntry) => collector.add(entry.path, 'removed', sideOf(entry), null);
  const recorded = streamed ? streamedSide(a, onRemoved) : await heldSide(a, onRemoved);
  throwIfAborted(signal, a.root);
  let filesHashed = 0;
  let bRoot: string;
  try {
    if (b !== null) {
      bRoot = b.root;
      for await (const entry of entriesOf(b)) {
        const found = recorded.find(entry.path);
        collector.compare(entry.path, found instanceof Promise ? await found : found, sideOf(entry));
      }
    } else {
      bRoot = liveStore(bPath);
      const startNs = a.extras.started_at_ns === undefined ? undefined : BigInt(a.extras.started_at_ns);
      filesHashed = await diffLive(bRoot, recorded, startNs, collector, signal);
    }
    await recorded.finish();
  } catch (error) {
    if (!(error instanceof OrderViolation)) throw error;
    throw new StatesnapError('ERR_INDEX_INVALID', `an index is not in canonical order: ${error.message}`, {
      path: a.root,
      cause: error,
    });
  } finally {
    await recorded.close();
  }
  return {
    command: 'diff',
    a: a.root,
    b: bRoot,
    bKind: bIsBackup ? 'backup' : 'live',
    ...collector.finish(),
    filesHashed,
    streamed,
    durationMs: Math.round(performance.now() - started),
    exitCode: 0,
  };
}
