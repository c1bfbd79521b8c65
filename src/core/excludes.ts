// Which paths of a source a backup leaves out, and which paths of a backup a partial restore writes: patterns read
// as rsync and .gitignore users expect them, compiled once, asked per entry, able to say which matched nothing.

import picomatch from 'picomatch';
import { StatesnapError } from './errors.js';

/** The in-flight temp files of an Oxios store (`<name>.<pid>.<uuid>.tmp`) are never worth backing up. */
export const DEFAULT_EXCLUDES: readonly string[] = ['**/*.tmp'];

/** The patterns of one backup, as the user gave them. */
export interface ExcludePatterns {
  /** Paths to leave out; a pattern starting with `!` re-includes (as in .gitignore), like `include`. */
  exclude: readonly string[];
  /** Paths copied even when an exclude pattern matches them. */
  include: readonly string[];
  /** Applied like `exclude`, but never reported as unmatched (the store's in-flight temp files). */
  defaults: readonly string[];
}

export interface UnmatchedPattern {
  /** As the user wrote it. */
  pattern: string;
  kind: 'exclude' | 'include';
}

interface Rule {
  given: string;
  kind: 'exclude' | 'include';
  /** A trailing `/`: only directories match. */
  directoryOnly: boolean;
  test: (rel: string) => boolean;
  /** Matched at least one path asked about (defaults start as matched: they are never reported). */
  matched: boolean;
}

function invalidPattern(given: string, kind: Rule['kind'], why: string): StatesnapError {
  return new StatesnapError('ERR_INVALID_OPTION', `${kind} pattern \`${given}\` ${why}`);
}

/**
 * One pattern, with .gitignore's placement rules on top of fast-glob's syntax: without a slash it matches a
 * name at any depth; a leading slash or one inside anchors it at the source root; a trailing slash matches
 * directories only and does not anchor by itself.
 */
function compileRule(given: string, kind: Rule['kind'], reported: boolean): Rule {
  let body = given;
  if (kind === 'exclude' && body.startsWith('!')) {
    kind = 'include';
    body = body.slice(1);
  }
  const directoryOnly = body.endsWith('/');
  body = body.replace(/\/+$/, '');
  const anchored = body.includes('/');
  body = body.replace(/^\/+/, '');
  if (body === '') throw invalidPattern(given, kind, 'names no path');
  // `dot`: a hidden name matches `*` like any other (a store's dot-files are ordinary entries). Flag `s`: a name
  // may hold a newline, and without it the regex's `.` inside `**` stops there, so `**` would skip that path.
  const test = picomatch(anchored ? body : `**/${body}`, { dot: true, flags: 's' });
  return { given, kind, directoryOnly, test, matched: !reported };
}

/** The compiled patterns of one backup. */
export class ExcludeRules {
  readonly #includes: Rule[];
  readonly #excludes: Rule[];

  constructor(patterns: ExcludePatterns) {
    const rules = [
      ...patterns.defaults.map((given) => compileRule(given, 'exclude', false)),
      ...patterns.exclude.map((given) => compileRule(given, 'exclude', true)),
      ...patterns.include.map((given) => compileRule(given, 'include', true)),
    ];
    this.#includes = rules.filter((rule) => rule.kind === 'include');
    this.#excludes = rules.filter((rule) => rule.kind === 'exclude');
  }

  /**
   * Whether the entry at `rel` (relative, `/`-separated) is itself left out: an exclude pattern matches it and
   * no include pattern does. Its parent directories are not looked at: a walk asks about them first and never
   * enters one that is left out. Patterns that have not matched yet are always tried, so `unmatched()` is exact.
   */
  excludes(rel: string, isDirectory: boolean): boolean {
    let included = false;
    for (const rule of this.#includes) {
      if ((included && rule.matched) || (rule.directoryOnly && !isDirectory)) continue;
      if (rule.test(rel)) rule.matched = included = true;
    }
    let excluded = false;
    for (const rule of this.#excludes) {
      if (((included || excluded) && rule.matched) || (rule.directoryOnly && !isDirectory)) continue;
      if (rule.test(rel)) rule.matched = excluded = true;
    }
    return excluded && !included;
  }

  /** Whether `rel` is left out, by itself or because a directory above it is (for callers outside a walk). */
  isExcluded(rel: string, isDirectory: boolean): boolean {
    for (let slash = rel.indexOf('/'); slash !== -1; slash = rel.indexOf('/', slash + 1)) {
      if (this.excludes(rel.slice(0, slash), true)) return true;
    }
    return this.excludes(rel, isDirectory);
  }

  /** The user's patterns that matched no path asked about so far (inside a left-out directory nothing is asked). */
  unmatched(): UnmatchedPattern[] {
    return [...this.#excludes, ...this.#includes]
      .filter((rule) => !rule.matched)
      .map(({ given, kind }) => ({ pattern: given, kind }));
  }
}

/**
 * The `--include` patterns of a partial restore, in the syntax of `--exclude`: an entry is selected when a
 * pattern matches it or a directory above it (`memory/facts` selects that directory with everything below).
 */
export class IncludeRules {
  readonly #rules: Rule[];

  constructor(patterns: readonly string[]) {
    this.#rules = patterns.map((given) => compileRule(given, 'include', true));
  }

  /**
   * Whether a pattern matches `rel` itself (its parent directories are not looked at: the caller knows whether
   * one of them was selected). Patterns that have not matched yet are always tried, so `unmatched()` is exact.
   */
  matches(rel: string, isDirectory: boolean): boolean {
    let matched = false;
    for (const rule of this.#rules) {
      if ((matched && rule.matched) || (rule.directoryOnly && !isDirectory)) continue;
      if (rule.test(rel)) rule.matched = matched = true;
    }
    return matched;
  }

  /** The patterns that matched no entry asked about so far, as the user wrote them. */
  unmatched(): string[] {
    return this.#rules.filter((rule) => !rule.matched).map((rule) => rule.given);
  }
}

/**
 * The patterns of an exclude file (`--exclude-from`): one per line; blank lines and lines starting with `#`
 * are ignored, and trailing whitespace (an editor's, or a `\r`) is dropped.
 */
export function parsePatternFile(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.replace(/\s+$/, ''))
    .filter((line) => line !== '' && !line.startsWith('#'));
}
