// The quiescing hooks of a snapshot (`--exec-before`, `--exec-after`): shell commands run around the copy so
// an operator can pause the application writing the store. Their output goes to stderr (stdout stays the
// result); each runs in its own process group, so a Ctrl-C meant for statesnap does not kill it.

import { spawn } from 'node:child_process';
import { describeCause, StatesnapError } from '../core/errors.js';
import { integerOption, invalidOption } from '../core/options.js';

export interface HookOutcome {
  command: string;
  ok: boolean;
  /** `exit 3`, `killed by SIGTERM after the 300 s timeout`, or why it could not start. */
  status: string;
}

/** Runs `command` with `/bin/sh -c`, stdin closed, stdout and stderr to this process's stderr. */
export function runHook(
  command: string,
  env: Record<string, string>,
  timeoutMs: number,
): Promise<HookOutcome> {
  return new Promise((settle) => {
    let timedOut = false;
    const child = spawn('/bin/sh', ['-c', command], {
      stdio: ['ignore', 2, 2],
      env: { ...process.env, ...env },
      detached: true,
    });
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGTERM');
      } catch {}
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      settle({ command, ok: false, status: `could not start: ${describeCause(error)}` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0 && !timedOut) return settle({ command, ok: true, status: 'exit 0' });
      const after = timedOut ? ` after the ${Math.round(timeoutMs / 1000)} s timeout` : '';
      settle({ command, ok: false, status: signal ? `killed by ${signal}${after}` : `exit ${code}${after}` });
    });
  });
}

const DEFAULT_HOOK_TIMEOUT_MS = 5 * 60_000;

function commandOption(name: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.trim() === '')
    throw invalidOption(name, 'a non-empty command', value);
  return value;
}

function hookFailed(outcome: HookOutcome): StatesnapError {
  return new StatesnapError('ERR_HOOK_FAILED', `hook \`${outcome.command}\` failed: ${outcome.status}`);
}

/** The run's own error, with the after-hook's failure added to its message. */
function withAfterHookFailure(error: unknown, outcome: HookOutcome): unknown {
  if (!(error instanceof StatesnapError)) return error;
  const message = `${error.message}; the after-hook \`${outcome.command}\` failed too: ${outcome.status}`;
  return new StatesnapError(error.code, message, { path: error.path, cause: error.cause });
}

/** The hooks of a snapshot, checked. */
export interface SnapshotHooks {
  before: string | undefined;
  after: string | undefined;
  timeoutMs: number;
}

export function hooksOption(options: {
  execBefore?: string;
  execAfter?: string;
  execTimeoutMs?: number;
}): SnapshotHooks {
  return {
    before: commandOption('execBefore', options.execBefore),
    after: commandOption('execAfter', options.execAfter),
    timeoutMs: integerOption('execTimeoutMs', options.execTimeoutMs, DEFAULT_HOOK_TIMEOUT_MS, 1, 2 ** 31 - 1),
  };
}

/**
 * Runs `body` between the hooks: the before-hook's failure stops it before anything is read; the after-hook
 * runs however it ended, with STATESNAP_STATUS, and its failure is added to the body's error.
 */
export async function withHooks<T>(
  hooks: SnapshotHooks,
  env: Record<string, string>,
  signal: AbortSignal,
  body: () => Promise<T>,
  afterSuccess: () => void = () => undefined,
): Promise<{ made: T; ran: HookOutcome[] }> {
  const ran: HookOutcome[] = [];
  let made: T;
  try {
    if (hooks.before !== undefined) {
      const outcome = await runHook(hooks.before, env, hooks.timeoutMs);
      ran.push(outcome);
      if (!outcome.ok) throw hookFailed(outcome);
    }
    made = await body();
  } catch (error) {
    if (hooks.after === undefined) throw error;
    const status = signal.aborted ? 'interrupted' : 'failure';
    const outcome = await runHook(hooks.after, { ...env, STATESNAP_STATUS: status }, hooks.timeoutMs);
    throw outcome.ok ? error : withAfterHookFailure(error, outcome);
  }
  afterSuccess();
  if (hooks.after !== undefined) {
    ran.push(await runHook(hooks.after, { ...env, STATESNAP_STATUS: 'success' }, hooks.timeoutMs));
  }
  return { made, ran };
}
