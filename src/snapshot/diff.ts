// `diff()`: what changed between two backups, or between a backup and the live store, per category, from the
// indexes: added, removed, changed (content or type) and mode-changed entries. Two backups: no file is read.
// A live store: a file whose recorded identity still matches (the snapshot change rule) is not read either;
// only files whose identity moved while their size and mode did not are hashed.

import { createHash } from 'node:crypto';
import { createReadStream, lstatSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_RACY_MARGIN_NS, decideChange, previousEntryOf } from '../backup/change-rule.js';
import { DEFAULT_EXCLUDES, planSource } from '../backup/planner.js';
import { describeCause, StatesnapError, throwIfAborted } from '../core/errors.js';
import { ExcludeRules } from '../core/excludes.js';
import { compareEntryPaths } from '../core/index-order.js';
import { requirePath, signalOption, stringListOption } from '../core/options.js';
import { fsPath } from '../core/protocol.js';
import type { SkipKind } from '../core/walk.js';
import { type IndexEntry, readIndex } from '../format/index-reader.js';
import { MANIFEST_FILE, OXIOS_CATEGORIES } from '../format/manifest.js';
import { type LocalBackupReader, openBackup } from '../read/backup-reader.js';
import { resolveBackupPath } from './repository.js';

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
  durationMs: number;
  exitCode: 0;
}

const OTHER = '(other)';

function statesnapBackup(
  path: string,
  role: string,
): LocalBackupReader & { extras: NonNullable<LocalBackupReader['extras']> } {
  const reader = openBackup(resolveBackupPath(path));
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
    { format: reader.format!, ...reader.extras.index },
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

  /** `b`'s entry at `path` against `a`'s (taken out of `recorded`: what remains there was removed). */
  compare(recorded: Map<string, IndexEntry>, path: string, b: DiffSide): void {
    const before = recorded.get(path);
    recorded.delete(path);
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

/** Walks the live store `root`, comparing each entry with `recorded` (which it empties as it goes). */
async function diffLive(
  root: string,
  recorded: Map<string, IndexEntry>,
  startNs: bigint | undefined,
  collector: Collector,
  signal: AbortSignal,
): Promise<number> {
  const files: string[] = [];
  const source = planSource(root, {
    excludes: new ExcludeRules({ exclude: [], include: [], defaults: DEFAULT_EXCLUDES }),
    changedRetries: 0,
  });
  await source.entries(
    {
      dir: (dir) => {
        if (dir.rel !== '') collector.compare(recorded, dir.rel, { type: 'dir', mode: dir.mode });
      },
      file: (op) => {
        files.push(op.rel);
        return undefined;
      },
      skip: (rel: string, kind: SkipKind) => {
        if (kind !== 'excluded' && kind !== 'reserved') collector.compare(recorded, rel, { type: kind });
      },
      problem: (rel, _problem, message) => {
        throw new StatesnapError('ERR_SOURCE_UNREADABLE', `cannot read ${join(root, rel)}: ${message}`, {
          path: join(root, rel),
        });
      },
    },
    signal,
  );
  let hashed = 0;
  for (const rel of files) {
    throwIfAborted(signal, root);
    const before = recorded.get(rel);
    recorded.delete(rel);
    if (before === undefined) {
      const stats = lstatSync(fsPath(join(root, rel)));
      collector.add(rel, 'added', null, { type: 'file', size: stats.size, mode: stats.mode & 0o7777 });
      continue;
    }
    let compared: Awaited<ReturnType<typeof compareLiveFile>>;
    try {
      compared = await compareLiveFile(root, rel, before, startNs);
    } catch (error) {
      throw new StatesnapError(
        'ERR_SOURCE_UNREADABLE',
        `cannot read ${join(root, rel)}: ${describeCause(error)}`,
        {
          path: join(root, rel),
          cause: error,
        },
      );
    }
    if (compared.hashed) hashed++;
    if (compared.change !== null) collector.add(rel, compared.change, sideOf(before), compared.side);
  }
  return hashed;
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
  const bPath = resolveBackupPath(requirePath('b', options.b));
  const bIsBackup = lstatSync(join(bPath, MANIFEST_FILE), { throwIfNoEntry: false }) !== undefined;
  const collector = new Collector(
    stringListOption('categories', options.categories, a.extras.categories ?? OXIOS_CATEGORIES),
  );
  // One side's entries by path: the indexes are not yet written in one canonical order to merge-join.
  const recorded = new Map<string, IndexEntry>();
  for await (const entry of entriesOf(a)) recorded.set(entry.path, entry);
  throwIfAborted(signal, a.root);
  let filesHashed = 0;
  let bRoot: string;
  if (bIsBackup) {
    const b = statesnapBackup(bPath, 'b');
    bRoot = b.root;
    for await (const entry of entriesOf(b)) collector.compare(recorded, entry.path, sideOf(entry));
  } else {
    bRoot = liveStore(bPath);
    const startNs = a.extras.started_at_ns === undefined ? undefined : BigInt(a.extras.started_at_ns);
    filesHashed = await diffLive(bRoot, recorded, startNs, collector, signal);
  }
  for (const [path, entry] of recorded) collector.add(path, 'removed', sideOf(entry), null);
  return {
    command: 'diff',
    a: a.root,
    b: bRoot,
    bKind: bIsBackup ? 'backup' : 'live',
    ...collector.finish(),
    filesHashed,
    durationMs: Math.round(performance.now() - started),
    exitCode: 0,
  };
}
