// The quiescing hooks of a snapshot (`--exec-before`, `--exec-after`): shell commands run around the copy so
// an operator can pause the application writing the store. Their output goes to stderr (stdout stays the
// result); each runs in its own process group, so a Ctrl-C meant for statesnap does not kill it.

import { spawn } from 'node:child_process';
import { describeCause } from '../core/errors.js';

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
