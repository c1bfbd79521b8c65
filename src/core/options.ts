// Shared checks for the options objects of every operation: each is resolved once, before any I/O, into a
// complete internal form, and a bad value is refused with a message showing what was received.

import { readFileSync } from 'node:fs';
import { StatesnapError } from './errors.js';

function invalid(name: string, expectation: string, received: unknown): StatesnapError {
  return new StatesnapError(
    'ERR_INVALID_OPTION',
    `\`${name}\` must be ${expectation}, got \`${String(received)}\``,
  );
}

export function requirePath(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.includes('\0')) {
    throw invalid(name, 'a non-empty path', value);
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
    throw invalid(name, `an integer from ${min} to ${max}`, value);
  }
  return value;
}

export function booleanOption(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalid(name, 'a boolean', value);
  return value;
}

export function choiceOption<T extends string>(
  name: string,
  value: unknown,
  choices: readonly T[],
  fallback: T,
): T {
  if (value === undefined) return fallback;
  if (!choices.includes(value as T)) throw invalid(name, `one of ${choices.join(', ')}`, value);
  return value as T;
}

export function stringListOption(name: string, value: unknown, fallback: readonly string[]): string[] {
  if (value === undefined) return [...fallback];
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string' || item.length === 0)) {
    throw invalid(name, 'an array of non-empty strings', JSON.stringify(value));
  }
  return [...value];
}

export function signalOption(value: AbortSignal | undefined): AbortSignal {
  return value ?? new AbortController().signal;
}

export function callbackOption<T extends (...args: never[]) => void>(
  name: string,
  value: unknown,
  noop: T,
): T {
  if (value === undefined) return noop;
  if (typeof value !== 'function') throw invalid(name, 'a function', typeof value);
  return value as T;
}

export const TOOL_VERSION: string = (
  JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
