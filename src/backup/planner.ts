// The live source of a backup as the pipeline's entry source: walked with lstat (never following a link), with
// the user's and the default exclude patterns and the backup's own root names left out.

import picomatch from 'picomatch';
import { CAN_LOCATE_FDS } from '../core/paths.js';
import type { EntrySource } from '../core/pipeline.js';
import { walk } from '../core/walk.js';
import { RESERVED_ROOT_NAMES } from '../format/manifest.js';

/** The in-flight temp files of an Oxios store (`<name>.<pid>.<uuid>.tmp`) are never worth backing up. */
export const DEFAULT_EXCLUDES: readonly string[] = ['**/*.tmp'];

/** The exclude patterns as one matcher of relative POSIX paths. */
export function compileExcludes(patterns: readonly string[]): (rel: string) => boolean {
  if (patterns.length === 0) return () => false;
  // fast-glob's syntax; picomatch is the matcher underneath it. `dot`: hidden files match `*` like any other.
  return picomatch(patterns as string[], { dot: true });
}

export interface PlanOptions {
  /** Glob patterns (relative to the source) left out, the defaults included. */
  exclude: readonly string[];
  /** How often a file modified while it was read is read again before it is reported. */
  changedRetries: number;
}

/**
 * The source at `root` (a real path). A root `manifest.json` or `.statesnap` (left there when Oxios restored one
 * of our backups: its restore copies the whole tree) is skipped as `reserved`: the new backup's own take its place.
 */
export function planSource(root: string, options: PlanOptions): EntrySource {
  const isExcluded = compileExcludes(options.exclude);
  return {
    read: {
      root,
      confineTo: CAN_LOCATE_FDS ? root : null,
      attributesFrom: 'source',
      changedRetries: options.changedRetries,
      expectSize: false,
    },
    entries: (sink, signal) =>
      walk(root, { tree: 'source', isExcluded, reservedRootNames: RESERVED_ROOT_NAMES, signal }, sink),
  };
}
