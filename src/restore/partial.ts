// Partial restore: which entries of a backup's stream an `--include` selection lets through, with the
// directories that lead to them, so both passes of a restore (scan and copy) see the same smaller backup.

import type { IncludeRules } from '../core/excludes.js';
import type { EntrySource } from '../core/pipeline.js';
import type { EntrySink, PlannedDir } from '../core/walk.js';

function parentOf(rel: string): string {
  const slash = rel.lastIndexOf('/');
  return slash === -1 ? '' : rel.slice(0, slash);
}

/**
 * One pass's filter. A directory that is not selected itself is held back and passed on only when something
 * below it is selected, just before that entry: a restore of `memory/facts` creates `memory`, but a pattern
 * that selects nothing under `logs` leaves no empty `logs` behind.
 */
class SelectingSink implements EntrySink {
  readonly #selectedDirs = new Set<string>();
  readonly #heldBack = new Map<string, PlannedDir>();

  constructor(
    private readonly inner: EntrySink,
    private readonly rules: IncludeRules,
  ) {}

  #selects(rel: string, isDirectory: boolean): boolean {
    return this.#selectedDirs.has(parentOf(rel)) || this.rules.matches(rel, isDirectory);
  }

  /** Passes on the held-back directories above `rel`, outermost first. */
  #releaseParents(rel: string): void {
    for (let slash = rel.indexOf('/'); slash !== -1; slash = rel.indexOf('/', slash + 1)) {
      const parent = this.#heldBack.get(rel.slice(0, slash));
      if (parent === undefined) continue;
      this.#heldBack.delete(parent.rel);
      this.inner.dir(parent);
    }
  }

  dir(dir: PlannedDir): void {
    if (dir.rel === '') {
      this.inner.dir(dir);
    } else if (this.#selects(dir.rel, true)) {
      this.#releaseParents(dir.rel);
      this.#selectedDirs.add(dir.rel);
      this.inner.dir(dir);
    } else {
      this.#heldBack.set(dir.rel, dir);
    }
  }

  file(...args: Parameters<EntrySink['file']>): ReturnType<EntrySink['file']> {
    const rel = args[0].rel;
    if (!this.#selects(rel, false)) return undefined;
    this.#releaseParents(rel);
    return this.inner.file(...args);
  }

  skip(...args: Parameters<EntrySink['skip']>): void {
    if (!this.#selects(args[0], false)) return;
    this.#releaseParents(args[0]);
    this.inner.skip(...args);
  }

  problem(...args: Parameters<EntrySink['problem']>): void {
    this.inner.problem(...args);
  }
}

/** `sink`, sent only the entries `rules` select (and the directories above them); the root always. */
export function selectingSink(sink: EntrySink, rules: IncludeRules | null): EntrySink {
  return rules === null ? sink : new SelectingSink(sink, rules);
}

/**
 * `source` with only the entries `rules` select (and the directories above them); the root always. Everything
 * else of `source` is kept: an object-storage snapshot's files come through its `remote` fetcher, not a read.
 */
export function selectEntries(source: EntrySource, rules: IncludeRules | null): EntrySource {
  if (rules === null) return source;
  return { ...source, entries: (sink, signal) => source.entries(selectingSink(sink, rules), signal) };
}
