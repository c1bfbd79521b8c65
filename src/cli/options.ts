// Option and argument declarations that describe themselves: clipanion parses argv from the same
// declarations that the help pages and the explanations of usage errors read, so the three never disagree.
// A value that does not fit is refused while parsing, with a message naming the option and what it expects.

import { resolve } from 'node:path';
import { type CommandClass, Option } from 'clipanion';
import * as t from 'typanion';
import { StatesnapError } from '../core/errors.js';
import { isS3Location } from '../s3/location.js';
import type { S3Options } from '../s3/settings.js';

/** What help shows for one option, and what a usage error needs to explain a mistake with it. */
export interface OptionDoc {
  /** As help lists it: `--threads <n>`, `--no-sync`, `-q, --quiet`. */
  label: string;
  description: string;
  /** The spellings worth suggesting for a near miss (`--no-sync`, not the `--sync` it negates). */
  shown: string[];
  /** Every spelling the parser accepts, including clipanion's `--no-<flag>` for every flag. */
  accepted: string[];
  /** For an option that takes a value: what it must be (`an integer >= 1`); undefined for a flag. */
  expects: string | undefined;
  /** Throws the parser's own error for a value that does not fit. */
  check: (value: string) => void;
  /** Shared by every command (--json, --quiet): listed after the command's own options. */
  common: boolean;
}

export interface ArgumentDoc {
  name: string;
  required: boolean;
}

const OPTION_DOC = Symbol('statesnap/option-doc');
const ARGUMENT_DOC = Symbol('statesnap/argument-doc');

function documented<T>(declaration: T, key: symbol, doc: OptionDoc | ArgumentDoc): T {
  Object.defineProperty(declaration, key, { value: doc });
  return declaration;
}

/** The options and positional arguments a command class declares, in declaration order. */
export function commandDocs(commandClass: CommandClass): { options: OptionDoc[]; args: ArgumentDoc[] } {
  const options: OptionDoc[] = [];
  const args: ArgumentDoc[] = [];
  // clipanion finds declarations the same way: by instantiating the command and reading its fields.
  const instance = new commandClass() as unknown as Record<string, unknown>;
  for (const key of Object.keys(instance)) {
    const value = instance[key] as Record<symbol, unknown> | null;
    if (typeof value !== 'object' || value === null) continue;
    if (value[OPTION_DOC]) options.push(value[OPTION_DOC] as OptionDoc);
    if (value[ARGUMENT_DOC]) args.push(value[ARGUMENT_DOC] as ArgumentDoc);
  }
  return { options: [...options.filter((o) => !o.common), ...options.filter((o) => o.common)], args };
}

function shownValue(value: string): string {
  return value === '' || /[\s"'\\]|[^\x20-\x7e]/.test(value) ? JSON.stringify(value) : value;
}

/** The error every refused value gets: `--threads expects an integer >= 1, got -1`. */
export function invalidValue(label: string, expects: string, value: string | undefined): StatesnapError {
  const got = value === undefined ? 'nothing' : shownValue(value);
  return new StatesnapError('ERR_INVALID_OPTION', `${label} expects ${expects}, got ${got}`);
}

/**
 * A typanion validator that converts the text with `parse` (which throws the user-facing error) and hands
 * the converted value to clipanion the way typanion's own coercing validators do.
 */
function converter<T>(parse: (text: string) => T): t.StrictValidator<unknown, T> {
  return t.makeValidator<unknown, T>({
    test: (value, state): value is T => {
      const converted = parse(String(value));
      if (state?.coercions && state.coercion) {
        state.coercions.push([state.p ?? '.', state.coercion.bind(null, converted)]);
      }
      return true;
    },
  });
}

function longName(names: string): string {
  return names.split(',').find((name) => name.startsWith('--')) ?? names;
}

function flagLabel(names: string): string {
  return names
    .split(',')
    .sort((a, b) => a.length - b.length)
    .join(', ');
}

function flagDoc(names: string, description: string, shown: string[], common: boolean): OptionDoc {
  const long = longName(names);
  return {
    label: shown.length === 1 ? shown[0]! : flagLabel(names),
    description,
    shown,
    accepted: [...names.split(','), `--no-${long.slice(2)}`],
    expects: undefined,
    check: () => {},
    common,
  };
}

/** An off-by-default flag: `--force`. */
export function flag(names: string, description: string, options: { common?: boolean } = {}) {
  return documented(
    Option.Boolean(names, false, { description }),
    OPTION_DOC,
    flagDoc(names, description, names.split(','), options.common ?? false),
  );
}

/**
 * A flag that forces something either way, with a default that depends on the situation: `--progress` and
 * `--no-progress` (undefined when neither is given).
 */
export function eitherWayFlag(name: string, description: string) {
  const negated = `--no-${name.slice(2)}`;
  return documented(Option.Boolean(name, { description }), OPTION_DOC, {
    ...flagDoc(name, description, [name, negated], false),
    label: `${name}, ${negated}`,
  });
}

/**
 * An on-by-default flag, shown as the `--no-<name>` that turns it off (`--no-sync`); `--<name>` still parses.
 * `description` says what the `--no-` form does.
 */
export function negatableFlag(name: string, description: string) {
  const negated = `--no-${name.slice(2)}`;
  return documented(
    Option.Boolean(name, true, { description }),
    OPTION_DOC,
    flagDoc(name, description, [negated], false),
  );
}

function valueDoc(
  name: string,
  placeholder: string,
  description: string,
  expects: string,
  check: (v: string) => void,
): OptionDoc {
  return {
    label: `${name} <${placeholder}>`,
    description,
    shown: [name],
    accepted: [name],
    expects,
    check,
    common: false,
  };
}

function valueOption<T extends {}>(
  name: string,
  placeholder: string,
  description: string,
  expects: string,
  parse: (text: string) => T,
) {
  return documented(
    Option.String<T>(name, { description, validator: converter(parse) }),
    OPTION_DOC,
    valueDoc(name, placeholder, description, expects, parse),
  );
}

/** A free-form text value: `--app-version <version>`. */
export function textOption(
  name: string,
  placeholder: string,
  description: string,
  expects = `a ${placeholder}`,
) {
  return valueOption(name, placeholder, description, expects, (text) => {
    if (text === '') throw invalidValue(name, expects, text);
    return text;
  });
}

/** A path value, made absolute against the working directory: `--out <dir>`. */
export function pathOption(name: string, placeholder: string, description: string) {
  return valueOption(name, placeholder, description, 'a path', (text) => toPath(name, text));
}

/** A repeatable text value: `--exclude <glob>` (every occurrence is kept, in order). */
export function listOption(name: string, placeholder: string, description: string) {
  const check = (text: string) => {
    if (text === '') throw invalidValue(name, `a ${placeholder}`, text);
  };
  // clipanion validates the list as a whole, after collecting every occurrence.
  const validator = t.makeValidator<unknown, string[]>({
    test: (values): values is string[] => {
      for (const value of values as string[]) check(value);
      return true;
    },
  });
  return documented(
    Option.Array(name, { description, validator }),
    OPTION_DOC,
    valueDoc(name, placeholder, description, `a ${placeholder}`, check),
  );
}

/** A repeatable path value, each made absolute against the working directory: `--exclude-from <file>`. */
export function pathListOption(name: string, placeholder: string, description: string) {
  const validator = t.makeValidator<unknown, string[]>({
    test: (values, state): values is string[] => {
      const paths = (values as string[]).map((value) => toPath(name, value));
      if (state?.coercions && state.coercion) {
        state.coercions.push([state.p ?? '.', state.coercion.bind(null, paths)]);
      }
      return true;
    },
  });
  return documented(
    Option.Array(name, { description, validator }),
    OPTION_DOC,
    valueDoc(name, placeholder, description, 'a path', (text) => toPath(name, text)),
  );
}

/** A whole number of at least `min`: `--threads <n>`. */
export function integerOption(name: string, min: number, description: string, placeholder = 'n') {
  const expects = `an integer >= ${min}`;
  return valueOption(name, placeholder, description, expects, (text) => {
    const value = Number(text);
    if (!/^[-+]?\d+$/.test(text.trim()) || value < min) throw invalidValue(name, expects, text);
    return value;
  });
}

/** A number greater than zero: `--scale <x>`. */
export function positiveNumberOption(name: string, description: string, placeholder = 'x') {
  const expects = 'a number > 0';
  return valueOption(name, placeholder, description, expects, (text) => {
    const value = Number(text);
    if (text.trim() === '' || !Number.isFinite(value) || value <= 0) throw invalidValue(name, expects, text);
    return value;
  });
}

/** One of a fixed set of words, with a default: `--mode <replace|merge>`. */
export function choiceOption<const T extends string>(
  name: string,
  choices: readonly T[],
  fallback: NoInfer<T>,
  description: string,
) {
  const expects = choices.length === 2 ? `${choices[0]} or ${choices[1]}` : `one of ${choices.join(', ')}`;
  const parse = (text: string): T => {
    if (!choices.includes(text as T)) throw invalidValue(name, expects, text);
    return text as T;
  };
  return documented(
    Option.String<T>(name, fallback, { description, validator: converter(parse) }),
    OPTION_DOC,
    valueDoc(name, choices.join('|'), description, expects, parse),
  );
}

function toPath(label: string, text: string): string {
  if (text === '' || text.includes('\0')) throw invalidValue(label, 'a path', text);
  return resolve(text);
}

/** A required path argument (`<source>`), made absolute against the working directory. */
export function pathArgument(name: string) {
  return documented(
    Option.String({ name, validator: converter((text) => toPath(`<${name}>`, text)) }),
    ARGUMENT_DOC,
    { name, required: true },
  );
}

/**
 * A repository or backup argument: an `s3://bucket/prefix[/<id>]` location as given (checked where it is
 * used), or a path made absolute against the working directory.
 */
export function repositoryArgument(name: string) {
  return documented(
    Option.String({
      name,
      validator: converter((text) => (isS3Location(text) ? text : toPath(`<${name}>`, text))),
    }),
    ARGUMENT_DOC,
    { name, required: true },
  );
}

/** `--endpoint`, `--region`, `--profile`: how an `s3://` repository is reached (the AWS environment otherwise). */
export const S3_OPTIONS = {
  endpoint: () =>
    textOption(
      '--endpoint',
      'url',
      'S3 endpoint of an s3:// repository (default: $AWS_ENDPOINT_URL, else AWS)',
    ),
  region: () =>
    textOption(
      '--region',
      'name',
      'Region of an s3:// repository (default: $AWS_REGION; us-east-1 with an endpoint)',
    ),
  profile: () =>
    textOption('--profile', 'name', 'AWS profile for an s3:// repository (default: $AWS_PROFILE)'),
};

/** The S3 options given on the command line, or undefined when none was. */
export function givenS3Options(options: {
  endpoint: string | undefined;
  region: string | undefined;
  profile: string | undefined;
}): S3Options | undefined {
  const { endpoint, region, profile } = options;
  if (endpoint === undefined && region === undefined && profile === undefined) return undefined;
  return { ...(endpoint && { endpoint }), ...(region && { region }), ...(profile && { profile }) };
}

/** An optional path argument (`[dir]`), made absolute against the working directory. */
export function optionalPathArgument(name: string) {
  return documented(
    Option.String({ name, required: false, validator: converter((text) => toPath(`[${name}]`, text)) }),
    ARGUMENT_DOC,
    { name, required: false },
  );
}

/** An optional word argument (`[command]`), taken as typed. */
export function optionalArgument(name: string) {
  return documented(Option.String({ name, required: false }), ARGUMENT_DOC, { name, required: false });
}

/** The progress display, the same option for every command that shows one. */
export function progressFlag() {
  return eitherWayFlag(
    '--progress',
    'Show progress on stderr, or not (default: only when stderr is a terminal, and not with --quiet or --json)',
  );
}

/** Worker threads, the same option for every command that runs the worker pool. */
export function threadsOption() {
  return integerOption(
    '--threads',
    1,
    'Most worker threads (default: the cores, at most 16); started as batches need them, at most 4 per core',
  );
}

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A span of time, in ms: `--wait <duration>` (`500ms`, `30s`, `10m`, `2h`; a bare number is seconds). */
export function durationOption(name: string, description: string) {
  const expects = 'a duration such as 30s, 10m or 2h';
  return valueOption(name, 'duration', description, expects, (text) => {
    const match = /^(\d+)(ms|s|m|h)?$/.exec(text.trim());
    const value = match && Number(match[1]) * DURATION_UNITS_MS[match[2] ?? 's']!;
    if (value === null || !Number.isSafeInteger(value) || value > 2 ** 31 - 1) {
      throw invalidValue(name, expects, text);
    }
    return value;
  });
}

/** How long to wait for a repository's lock, the same option for `snapshot` and `prune`. */
export function lockWaitOption() {
  return durationOption(
    '--wait',
    'If another snapshot or prune holds the repository, wait this long for it (default: fail at once)',
  );
}
