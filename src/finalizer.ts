// Finishes a backup built under a temporary sibling name: directory modes and mtimes bottom-up after their
// contents, the manifest last, a flush, then one rename that makes the backup visible. Also cleans up what a
// killed run left beside the destination.

import { chmodSync, existsSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describeCause, StatesnapError } from './errors.js';
import type { Flusher } from './flush.js';
import { MANIFEST_FILE, type Manifest, serializeManifest } from './manifest.js';
import type { PlannedDir } from './planner.js';
import { findStaleSiblings, siblingPath } from './siblings.js';

function depth(rel: string): number {
  if (rel === '') return 0;
  let slashes = 1;
  for (const char of rel) if (char === '/') slashes++;
  return slashes;
}

/**
 * Gives every directory its recorded mode and mtime, deepest first: writing into a directory changes its
 * mtime, and a read-only mode set too early would stop its contents from being written (Node's fs.cp does
 * the same in mkDirAndCopy).
 */
export function applyDirectoryAttributes(root: string, dirs: readonly PlannedDir[]): void {
  const ordered = [...dirs].sort((a, b) => depth(b.rel) - depth(a.rel));
  for (const dir of ordered) {
    const path = dir.rel === '' ? root : join(root, dir.rel);
    chmodSync(path, dir.mode);
    utimesSync(path, Number(dir.atimeNs) / 1e9, Number(dir.mtimeNs) / 1e9);
  }
}

export function writeManifest(root: string, manifest: Manifest): void {
  writeFileSync(join(root, MANIFEST_FILE), serializeManifest(manifest), { flag: 'wx', mode: 0o644 });
}

/**
 * Flushes the finished tree and renames it to `dest`. An existing `dest` (allowed only with force, checked
 * by the caller) is first renamed aside and removed only after the new backup is in place.
 * Returns whether an existing backup was replaced.
 */
export async function publish(partial: string, dest: string, flusher: Flusher): Promise<boolean> {
  await flusher.finish();
  let replaced: string | null = null;
  try {
    if (existsSync(dest)) {
      replaced = siblingPath(dest, 'replaced');
      renameSync(dest, replaced);
    }
    renameSync(partial, dest);
    flusher.syncDirectory(dirname(dest));
  } catch (error) {
    if (replaced !== null && !existsSync(dest)) renameSync(replaced, dest);
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

export function discard(partial: string): void {
  rmSync(partial, { recursive: true, force: true, maxRetries: 2 });
}

/**
 * Cleans what a killed backup left beside `dest`: an unfinished tree is removed; a previous backup that was
 * renamed aside for `--force` is put back if the new one never arrived, removed otherwise.
 */
export function cleanStaleBackupSiblings(dest: string): void {
  for (const sibling of findStaleSiblings(dest, ['partial', 'replaced'])) {
    if (sibling.purpose === 'replaced' && !existsSync(dest)) renameSync(sibling.path, dest);
    else discard(sibling.path);
  }
}
