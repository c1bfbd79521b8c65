// The manifest's `sections`, counted as Oxios counts them, so Oxios and statesnap agree on what a store holds.

import { readdirSync } from 'node:fs';
import { join } from 'node:path';

/** Oxios' `list_category`: entries of any type directly in the folder whose name ends in .md or .json. */
export function countCategoryEntries(root: string, category: string): number {
  try {
    return readdirSync(join(root, category)).filter((name) => name.endsWith('.md') || name.endsWith('.json'))
      .length;
  } catch {
    return 0; // Oxios skips a category it cannot list
  }
}

export function computeSections(
  root: string,
  categories: readonly string[],
): Array<{ name: string; entry_count: number }> {
  return categories
    .map((name) => ({ name, entry_count: countCategoryEntries(root, name) }))
    .filter((section) => section.entry_count > 0);
}
