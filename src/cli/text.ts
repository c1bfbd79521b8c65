// How the CLI writes numbers, counts and commands in its text output: one number format (`3,017`), real
// plurals (`1 warning`, `2 warnings`), and commands printed the way the user can run them again.

import { readableMessage } from '../core/errors.js';

export { shellQuote } from '../core/paths.js';

/** `3017` → `3,017`: the one number format of every text output. */
export function formatNumber(value: number): string {
  return value.toLocaleString('en-US');
}

/** `countOf(1, 'file')` → `1 file`, `countOf(3017, 'file')` → `3,017 files`. */
export function countOf(count: number, singular: string, plural = `${singular}s`): string {
  return `${formatNumber(count)} ${count === 1 ? singular : plural}`;
}

/**
 * Plurals of the kinds that are nouns; the other count keys (`excluded`, `vanished`, `corrupt`, …) are
 * adjectives and read right unchanged.
 */
const NOUN_PLURALS: Record<string, [singular: string, plural: string]> = {
  symlink: ['symlink', 'symlinks'],
  fifo: ['FIFO', 'FIFOs'],
  socket: ['socket', 'sockets'],
  char_device: ['char device', 'char devices'],
  block_device: ['block device', 'block devices'],
};

/** `{symlink: 2, fifo: 0, excluded: 1}` → `2 symlinks, 1 excluded` (zero counts left out). */
export function formatCounts(counts: Readonly<Record<string, number>>): string {
  return Object.entries(counts)
    .filter(([, count]) => count > 0)
    .map(([kind, count]) => {
      const noun = NOUN_PLURALS[kind];
      return noun ? countOf(count, ...noun) : `${formatNumber(count)} ${kind}`;
    })
    .join(', ');
}

/** `completed with 2 warnings: 1 vanished, 1 changed`, or undefined when there were none. */
export function describeWarnings(warnings: {
  count: number;
  byProblem: Readonly<Record<string, number>>;
}): string | undefined {
  if (warnings.count === 0) return undefined;
  return `completed with ${countOf(warnings.count, 'warning')}: ${formatCounts(warnings.byProblem)}`;
}

/** One line per manifest note: `note: section "memory/facts" declares 1358 entries; the backup holds 1357`. */
export function describeNotes(notes: ReadonlyArray<{ message: string }>, prefix = 'note: '): string[] {
  return notes.map((note) => `${prefix}${oneLine(note.message)}`);
}

/**
 * How the user started statesnap, so that the commands it prints (help examples, the demo's next step) run
 * as printed: `npx statesnap` inside a clone (where a bare `statesnap` is not on PATH), `statesnap` after
 * `npm link` or a global install. npm sets `npm_lifecycle_event=npx` for `npx` and `npm exec`.
 */
export const PROGRAM = process.env.npm_lifecycle_event === 'npx' ? 'npx statesnap' : 'statesnap';

/**
 * Control characters in a message (a file name may hold a newline) are shown escaped and long paths shortened
 * to their ends, so every warning and error stays one readable line on stderr. The --json result keeps the
 * exact paths.
 */
export function oneLine(text: string): string {
  return readableMessage(escapeControls(text));
}

/** Control characters shown escaped, the rest kept whole: a listed path stays on its line and exact otherwise. */
export function escapeControls(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f]/g, (char) => {
    if (char === '\n') return '\\n';
    if (char === '\r') return '\\r';
    if (char === '\t') return '\\t';
    return `\\x${char.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}
