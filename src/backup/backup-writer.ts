// Finishes a backup built under a temporary sibling name: directory modes and mtimes bottom-up after their
// contents, the manifest last, a flush, then one rename that makes the backup visible. Also cleans up what a
// killed run left beside the destination.

import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describeCause, StatesnapError } from '../core/errors.js';
import type { Flusher } from '../core/flush.js';
import { discard, entryExists } from '../core/fs-tree.js';
import { findStaleSiblings, siblingPath } from '../core/siblings.js';
import { MANIFEST_FILE, type Manifest, serializeManifest } from '../format/manifest.js';

export function writeManifest(root: string, manifest: Manifest): void {
  writeFileSync(join(root, MANIFEST_FILE), serializeManifest(manifest), { flag: 'wx', mode: 0o644 });
}

/**
 * Flushes the finished tree and renames it to `dest`. With `force`, an existing `dest` is first renamed aside
 * and removed only after the new backup is in place. Without it, a `dest` that appeared since the caller
 * checked (another run finished first) is refused, never replaced. Returns whether a backup was replaced.
 */
export async function publish(
  partial: string,
  dest: string,
  flusher: Flusher,
  force: boolean,
): Promise<boolean> {
  await flusher.finish();
  if (!force && entryExists(dest)) {
    throw new StatesnapError(
      'ERR_DEST_EXISTS',
      `destination ${dest} appeared while the backup ran (use --force to replace it)`,
      { path: dest },
    );
  }
  let replaced: string | null = null;
  try {
    if (force && entryExists(dest)) {
      replaced = siblingPath(dest, 'replaced');
      renameSync(dest, replaced);
    }
    renameSync(partial, dest);
    flusher.syncDirectory(dirname(dest));
  } catch (error) {
    if (replaced !== null && !entryExists(dest)) renameSync(replaced, dest);
    throw new StatesnapError(
      'ERR_DEST_WRITE',
      `cannot move the finished backup to ${dest}: ${describeCause(error)}`,
      {
        path: dest,
        cause: error,
      },
    );
  }
  if (replaced !== null) rmSync(replaced, { recursive: true, force: true });
  return replaced !== null;
}

/**
 * Cleans what a killed backup left beside `dest`: an unfinished tree is removed; a previous backup that was
 * renamed aside for `--force` is put back if the new one never arrived, removed otherwise.
 */
export function cleanStaleBackupSiblings(dest: string): void {
  for (const sibling of findStaleSiblings(dest, ['partial', 'replaced'])) {
    if (sibling.purpose === 'replaced' && !entryExists(dest)) renameSync(sibling.path, dest);
    else discard(sibling.path);
  }
}
