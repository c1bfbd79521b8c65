// Explains a command line clipanion refused, in one line that says what was expected and suggests the
// nearest valid spelling (`unknown option --exlude; did you mean --exclude?`). clipanion stays the judge of
// what parses; this walks the same declarations again only to say why, once parsing has failed.

import type { CommandClass } from 'clipanion';
import { StatesnapError } from '../core/errors.js';
import { commandName, usageLine } from './help.js';
import { commandDocs, invalidValue, type OptionDoc } from './options.js';
import { PROGRAM } from './text.js';

/** The options clipanion's built-in help and version commands accept before any command. */
const TOP_LEVEL_OPTIONS = ['--help', '-h', '--version', '-v'];

/** Edit distance with adjacent transpositions (`resotre` is one edit from `restore`). */
function distance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, rows[i - 2]![j - 2]! + 1);
      }
      rows[i]![j] = best;
    }
  }
  return rows[a.length]![b.length]!;
}

/** The candidate a mistyped word most likely meant: a prefix of it, or at most ~a third of it changed. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const bare = (text: string) => text.replace(/^-+/, '');
  const typed = bare(word);
  if (typed.length >= 3) {
    const extended = candidates.filter((candidate) => bare(candidate).startsWith(typed));
    if (extended.length === 1) return extended[0];
  }
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(typed.length / 3));
  for (const candidate of candidates) {
    const d = distance(typed, bare(candidate));
    // Half a word changed is another word (`-x` is not a typo of `-q`).
    if (d >= typed.length / 2) continue;
    if (d <= bestDistance && (best === undefined || d < bestDistance)) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function didYouMean(suggestion: string | undefined): string {
  return suggestion === undefined ? '' : `; did you mean ${suggestion}?`;
}

function usageProblem(message: string): StatesnapError {
  return new StatesnapError('ERR_USAGE', message);
}

/** `unknown command "bakup"; did you mean backup?` */
export function unknownCommand(typed: string, names: readonly string[]): StatesnapError {
  return usageProblem(`unknown command ${JSON.stringify(typed)}${didYouMean(closest(typed, names))}`);
}

export interface UsageFailure {
  /** The command the line was meant for, when it names one. */
  command: string | undefined;
  error: StatesnapError;
  /** Where to read more: `statesnap backup --help`. */
  helpCommand: string;
}

function isOptionLike(token: string): boolean {
  return token.startsWith('-') && token !== '-';
}

/** The tokens before a `--` (after it, everything is an argument). */
function optionTokens(args: readonly string[]): readonly string[] {
  const end = args.indexOf('--');
  return end === -1 ? args : args.slice(0, end);
}

/** Whether the line asked for a JSON result, so that a usage error is reported as JSON too. */
export function wantsJson(args: readonly string[]): boolean {
  return optionTokens(args).includes('--json');
}

/** Checks one option token (and the value it consumes); returns how many tokens it used. */
function checkOption(tokens: readonly string[], at: number, options: readonly OptionDoc[]): number {
  const token = tokens[at]!;
  const bound = token.startsWith('--') ? token.indexOf('=') : -1;
  const name = bound === -1 ? token : token.slice(0, bound);
  if (/^-[a-zA-Z]{2,}$/.test(name)) {
    // A batch of short flags (`-qj`): each letter must be a known one.
    for (const letter of name.slice(1)) checkOption([`-${letter}`], 0, options);
    return 1;
  }
  const option = options.find((candidate) => candidate.accepted.includes(name));
  if (option === undefined) {
    const suggestion = closest(name, [...options.flatMap((candidate) => candidate.shown), '--help']);
    throw usageProblem(`unknown option ${name}${didYouMean(suggestion)}`);
  }
  if (option.expects === undefined) {
    if (bound !== -1) {
      const negatable = option.shown.some((shown) => shown.startsWith('--no-'));
      const forms = negatable ? ` (use ${option.accepted.join(' or ')})` : '';
      throw usageProblem(`${name} takes no value, got ${token}${forms}`);
    }
    return 1;
  }
  if (bound !== -1) {
    option.check(token.slice(bound + 1));
    return 1;
  }
  const value = tokens[at + 1];
  if (value === undefined || isOptionLike(value)) throw invalidValue(name, option.expects, value);
  option.check(value);
  return 2;
}

/** Walks the line against one command's declarations and throws the first mistake found. */
function checkCommandLine(commandClass: CommandClass, args: readonly string[], commandAt: number): void {
  const { options, args: declared } = commandDocs(commandClass);
  const positionals: string[] = [];
  let optionsEnd = args.indexOf('--');
  if (optionsEnd === -1) optionsEnd = args.length;
  for (let at = 0; at < args.length; ) {
    const token = args[at]!;
    if (at === commandAt || at === optionsEnd) {
      at++;
    } else if (at > optionsEnd || !isOptionLike(token)) {
      positionals.push(token);
      at++;
    } else {
      at += checkOption(args.slice(0, optionsEnd), at, options);
    }
  }
  const usage = usageLine(commandClass);
  const missing = declared.filter((arg) => arg.required)[positionals.length];
  if (missing !== undefined) throw usageProblem(`missing argument <${missing.name}> (usage: ${usage})`);
  if (positionals.length > declared.length) {
    const extra = positionals[declared.length]!;
    throw usageProblem(`unexpected argument ${JSON.stringify(extra)} (usage: ${usage})`);
  }
}

/**
 * Turns a parse failure into the one-line error the user sees. `refusal` is what clipanion threw: a
 * StatesnapError from one of our value checks is already the right message.
 */
export function explainUsageError(
  refusal: unknown,
  args: readonly string[],
  commandClasses: readonly CommandClass[],
): UsageFailure {
  const tokens = optionTokens(args);
  const commandAt = tokens.findIndex((token) => !isOptionLike(token));
  const typed = commandAt === -1 ? undefined : tokens[commandAt]!;
  const commandClass = commandClasses.find((candidate) => commandName(candidate) === typed);
  const command = commandClass === undefined ? undefined : typed;
  const helpCommand = `${PROGRAM}${command === undefined ? '' : ` ${command}`} --help`;
  if (refusal instanceof StatesnapError) return { command, error: refusal, helpCommand };
  try {
    if (typed === undefined) {
      const unknown = tokens.find((token) => !TOP_LEVEL_OPTIONS.includes(token) && token !== '--json');
      if (unknown !== undefined)
        throw usageProblem(`unknown option ${unknown}${didYouMean(closest(unknown, TOP_LEVEL_OPTIONS))}`);
      throw usageProblem('missing command');
    }
    if (commandClass === undefined) throw unknownCommand(typed, commandClasses.map(commandName));
    checkCommandLine(commandClass, args, commandAt);
  } catch (error) {
    if (error instanceof StatesnapError) return { command, error, helpCommand };
    throw error;
  }
  // The walk found nothing clipanion would refuse: fall back to clipanion's own reason, first line only.
  const reason = (refusal as Error)?.message?.split('\n')[0] ?? String(refusal);
  return { command, error: usageProblem(reason), helpCommand };
}
