// The options of every operation: resolved once, before any I/O, into a complete internal form, and a bad
// value refused with a message showing what was received. What the operations share has one resolver.

import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { StatesnapError } from './errors.js';
import type { Warning } from './warnings.js';

export function invalidOption(name: string, expectation: string, received: unknown): StatesnapError {
  return new StatesnapError(
    'ERR_INVALID_OPTION',
    `\`${name}\` must be ${expectation}, got \`${String(received)}\``,
  );
}

export function requirePath(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.includes('\0')) {
    throw invalidOption(name, 'a non-empty path', value);
  }
  return value;
}

export function integerOption(
  name: string,
  value: unknown,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalidOption(name, `an integer from ${min} to ${max}`, value);
  }
  return value;
}

export function booleanOption(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalidOption(name, 'a boolean', value);
  return value;
}

export function choiceOption<T extends string>(
  name: string,
  value: unknown,
  choices: readonly T[],
  fallback: T,
): T {
  if (value === undefined) return fallback;
  if (!choices.includes(value as T)) throw invalidOption(name, `one of ${choices.join(', ')}`, value);
  return value as T;
}

export function stringListOption(name: string, value: unknown, fallback: readonly string[]): string[] {
  if (value === undefined) return [...fallback];
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string' || item.length === 0)) {
    throw invalidOption(name, 'an array of non-empty strings', JSON.stringify(value));
  }
  return [...value];
}

/** An injected clock (tests): the time `value` holds, or the system clock's. */
export function clockOption(name: string, value: unknown): () => number {
  if (value === undefined) return Date.now;
  if (!(value instanceof Date) || Number.isNaN(value.getTime()))
    throw invalidOption(name, 'a valid Date', value);
  const fixed = value.getTime();
  return () => fixed;
}

export function signalOption(value: AbortSignal | undefined): AbortSignal {
  return value ?? new AbortController().signal;
}

function callbackOption<T extends (...args: never[]) => void>(name: string, value: unknown, noop: T): T {
  if (value === undefined) return noop;
  if (typeof value !== 'function') throw invalidOption(name, 'a function', typeof value);
  return value as T;
}

/** More threads than cores did not help (on 2 cores: 2 threads 9.1 s, 4 threads 20.8 s; docs/performance.md). */
function defaultThreads(): number {
  return Math.max(1, Math.min(availableParallelism(), 16));
}

/** The options backup, restore, verify and recover share. */
export interface RunOptions<Progress> {
  /**
   * The most worker threads the run may use. A run starts a thread only when a batch of files finds every
   * thread busy, and never more than 4 per core (the result's `threads` says how many it started).
   * @default os.availableParallelism() (at most 16)
   */
  threads?: number;
  /** Flush what is written to stable storage before it becomes visible. @default true */
  sync?: boolean;
  signal?: AbortSignal;
  /** Called (throttle it yourself) as the work goes on. @default no-op */
  onProgress?: (progress: Progress) => void;
  /** Called for each problem that does not stop the run. @default no-op */
  onWarning?: (warning: Warning) => void;
}

export interface ResolvedRunOptions<Progress> {
  threads: number;
  sync: boolean;
  signal: AbortSignal;
  onProgress: (progress: Progress) => void;
  onWarning: (warning: Warning) => void;
}

/** Resolves the shared options; `warningOption` is what the caller's API calls `onWarning` (verify: `onProblem`). */
export function resolveRunOptions<Progress>(
  options: RunOptions<Progress>,
  warningOption = 'onWarning',
): ResolvedRunOptions<Progress> {
  return {
    threads: integerOption('threads', options.threads, defaultThreads(), 1, 256),
    sync: booleanOption('sync', options.sync, true),
    signal: signalOption(options.signal),
    onProgress: callbackOption('onProgress', options.onProgress, () => {}),
    onWarning: callbackOption(warningOption, options.onWarning, () => {}),
  };
}

export const TOOL_VERSION: string = (
  JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
