// The manifest's `sections`, counted as Oxios counts them, so Oxios and statesnap agree on what a store holds.

import { type Dirent, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Manifest, unsafeRelativePathReason } from './manifest.js';

/** Oxios' `list_category`: entries directly in the folder whose name ends in .md or .json, of any type (links included). */
function listCategory(root: string, category: string): Dirent[] {
  try {
    return readdirSync(join(root, category), { withFileTypes: true }).filter((entry) =>
      isCounted(entry.name),
    );
  } catch {
    return []; // Oxios skips a category it cannot list
  }
}

function isCounted(name: string): boolean {
  return name.endsWith('.md') || name.endsWith('.json');
}

type IsExcluded = (rel: string, isDirectory: boolean) => boolean;
type Listed = Dirent | Dirent<Buffer>;

/**
 * The sections of a store being backed up: what Oxios' create_backup would record for `root`, minus the
 * entries the backup leaves out by its exclude patterns, so the manifest never claims content the backup lacks.
 * Without excludes that match counted names (the default `**\/*.tmp` never does) they equal Oxios' exactly.
 * `isExcluded` answers for a path and the folders above it, as the walk leaves an excluded folder out whole.
 * A category folder the backup's walk lists is counted from that listing (`listed`), so a file written there
 * after the walk passed is neither copied nor counted; one the walk never lists (behind a symlink, which Oxios
 * follows and the walk does not, or missing) is listed when the sections are asked for.
 */
export class SectionCounter {
  readonly #root: string;
  readonly #categories: readonly string[];
  readonly #isExcluded: IsExcluded;
  readonly #counted = new Map<string, number>();

  constructor(root: string, categories: readonly string[], isExcluded: IsExcluded) {
    this.#root = root;
    this.#categories = categories;
    this.#isExcluded = isExcluded;
  }

  /** A folder the walk listed, with its entries' names (`names`, or the entries' own when null). */
  listed(dirRel: string, entries: readonly Listed[], names: readonly string[] | null): void {
    if (this.#categories.includes(dirRel)) this.#counted.set(dirRel, this.#count(dirRel, entries, names));
  }

  sections(): Manifest['sections'] {
    return this.#categories
      .map((name) => ({
        name,
        entry_count: this.#counted.get(name) ?? this.#count(name, listCategory(this.#root, name), null),
      }))
      .filter((section) => section.entry_count > 0);
  }

  #count(category: string, entries: readonly Listed[], names: readonly string[] | null): number {
    let count = 0;
    entries.forEach((entry, i) => {
      const name = names?.[i] ?? (entry.name as string);
      if (isCounted(name) && !this.#isExcluded(`${category}/${name}`, entry.isDirectory())) count++;
    });
    return count;
  }
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
