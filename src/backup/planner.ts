// The live source of a backup as the pipeline's entry source: walked with lstat (never following a link), with
// the exclude rules and the backup's own root names left out; and a quick count of what that walk will find,
// so progress has a total long before the walk (held back by the copy) has found everything.

import { type Dirent, readdirSync } from 'node:fs';
import type { ExcludeRules } from '../core/excludes.js';
import { CAN_LOCATE_FDS } from '../core/paths.js';
import type { EntrySource } from '../core/pipeline.js';
import { type WalkOptions, walk } from '../core/walk.js';
import { RESERVED_ROOT_NAMES } from '../format/manifest.js';

export { DEFAULT_EXCLUDES } from '../core/excludes.js';

export interface PlanOptions {
  /** What is left out: the user's patterns and the defaults. */
  excludes: ExcludeRules;
  /** How often a file modified while it was read is read again before it is reported. */
  changedRetries: number;
  /**
   * lstat every file while planning (its size, and what the change rule of `--link-dest` compares); false:
   * files are planned by name and the workers learn their sizes (a copy stats the descriptor it opens anyway).
   */
  statFiles: boolean;
  /** Sees each directory's listing as the walk reads it (the manifest's sections are counted from them). */
  listed?: WalkOptions['listed'];
}

/**
 * The source at `root` (a real path). A root `manifest.json` or `.statesnap` (left there when Oxios restored one
 * of our backups: its restore copies the whole tree) is skipped as `reserved`: the new backup's own take its place.
 */
export function planSource(root: string, options: PlanOptions): EntrySource {
  const { excludes, statFiles } = options;
  return {
    sizesPlanned: statFiles,
    read: {
      root,
      confineTo: CAN_LOCATE_FDS ? root : null,
      attributesFrom: 'source',
      changedRetries: options.changedRetries,
      expectSize: false,
    },
    entries: (sink, signal) =>
      walk(
        root,
        {
          tree: 'source',
          isExcluded: (rel, isDirectory) => excludes.excludes(rel, isDirectory),
          reservedRootNames: RESERVED_ROOT_NAMES,
          signal,
          statFiles,
          listed: options.listed,
        },
        sink,
      ),
  };
}

// Names counted between two yields to the event loop: the count shares the main thread with the copy.
const NAMES_PER_SLICE = 4096;

/**
 * How many files the walk of `root` will plan, counted from directory listings alone (no lstat: ~1 µs per
 * name against the walk's ~10 µs), with the same exclude rules. An estimate: the source may change meanwhile,
 * and an entry whose type the filesystem does not report is counted as a file. Resolves to null when `signal`
 * fires first; a directory that cannot be listed counts as empty.
 */
export async function countFiles(
  root: string,
  excludes: ExcludeRules,
  signal: AbortSignal,
): Promise<number | null> {
  let files = 0;
  let sinceYield = 0;
  const pending: string[] = [''];
  while (pending.length > 0) {
    const rel = pending.pop()!;
    let entries: Dirent[];
    try {
      entries = readdirSync(rel === '' ? root : `${root}/${rel}`, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const entry of entries) {
      const entryRel = rel === '' ? entry.name : `${rel}/${entry.name}`;
      const isDirectory = entry.isDirectory();
      const counted =
        !(rel === '' && RESERVED_ROOT_NAMES.has(entry.name)) &&
        !isNeverCopied(entry) &&
        !excludes.excludes(entryRel, isDirectory);
      if (counted && isDirectory) pending.push(entryRel);
      else if (counted) files++;
      if (++sinceYield >= NAMES_PER_SLICE) {
        sinceYield = 0;
        await new Promise((resolveYield) => setImmediate(resolveYield));
        if (signal.aborted) return null;
      }
    }
  }
  return files;
}

function isNeverCopied(entry: Dirent): boolean {
  return (
    entry.isSymbolicLink() ||
    entry.isFIFO() ||
    entry.isSocket() ||
    entry.isCharacterDevice() ||
    entry.isBlockDevice()
  );
}
