// The manifest's `sections`, counted as Oxios counts them, so Oxios and statesnap agree on what a store holds.

import { type Dirent, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Manifest, unsafeRelativePathReason } from './manifest.js';

/** Oxios' `list_category`: entries directly in the folder whose name ends in .md or .json, of any type (links included). */
function listCategory(root: string, category: string): Dirent[] {
  try {
    return readdirSync(join(root, category), { withFileTypes: true }).filter(
      (entry) => entry.name.endsWith('.md') || entry.name.endsWith('.json'),
    );
  } catch {
    return []; // Oxios skips a category it cannot list
  }
}

/**
 * The sections of a store about to be backed up: what Oxios' create_backup would record for `root`, minus the
 * entries the backup leaves out by its exclude patterns, so the manifest never claims content the backup lacks.
 * Without excludes that match counted names (the default `**\/*.tmp` never does) they equal Oxios' exactly.
 * `isExcluded` answers for a path and the folders above it, as the walk leaves an excluded folder out whole.
 */
export function computeSections(
  root: string,
  categories: readonly string[],
  isExcluded: (rel: string, isDirectory: boolean) => boolean,
): Manifest['sections'] {
  return categories
    .map((name) => ({
      name,
      entry_count: listCategory(root, name).filter(
        (entry) => !isExcluded(`${name}/${entry.name}`, entry.isDirectory()),
      ).length,
    }))
    .filter((section) => section.entry_count > 0);
}

/**
 * How many entries a backup at `root` holds for `section`, counted as Oxios counts them; null when the name is
 * not a safe relative folder (it is never joined to a path). Folders are not followed through symlinks: a
 * backup's links are never restored, so what lies behind one is not part of it.
 */
export function countSectionInBackup(root: string, section: string): number | null {
  if (unsafeRelativePathReason(section) !== null) return null;
  let folder = root;
  for (const segment of section.split('/')) {
    folder = join(folder, segment);
    try {
      if (!lstatSync(folder, { throwIfNoEntry: false })?.isDirectory()) return 0;
    } catch {
      return 0; // as Oxios' list_category: a folder it cannot reach holds nothing it can count
    }
  }
  return listCategory(root, section).length;
}
