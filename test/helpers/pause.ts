// Runs the real CLI with the test-only pause points (docs/test-hooks.md): the run stops itself (SIGSTOP) at each
// named phase, the test looks at the disk exactly there, then kills the run or lets it go on. A run that ends
// before it reaches a pause point fails the test: a kill test can no longer pass by missing its point.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';
import { type CliOptions, type CliRun, type RunningCli, startCli, tempDir } from './tree.js';

export interface PausedCli extends RunningCli {
  /** Resolves once the run is stopped at `phase`; rejects, with the run's output, if it ends first. */
  reached(phase: string): Promise<void>;
  /** Lets the stopped run go on (SIGCONT). */
  resume(): void;
  /** Kills the run where it stands (SIGKILL) and waits for its end. */
  kill(): Promise<CliRun>;
}

/** Whether the process is stopped (state T in /proc/<pid>/stat): every thread of it, not only the main one. */
export function isStopped(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] === 'T';
  } catch {
    return false;
  }
}

/** The phases a run has paused at so far, from the lines it wrote (`<phase> <filesDone> <pid>`). */
function pausedPhases(lineFile: string): string[] {
  try {
    return readFileSync(lineFile, 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => line.split(' ')[0]!);
  } catch {
    return [];
  }
}

/**
 * Starts `statesnap <args>` to pause at each of `points` in turn (`phase`, or `copying:N` for the first batch
 * after which at least N files are done). The run is killed when the test ends, if it is still there.
 */
export function startPausedCli(
  args: readonly string[],
  points: readonly string[],
  options: CliOptions = {},
): PausedCli {
  const lineFile = join(tempDir('statesnap-pause-'), 'paused');
  const running = startCli(args, {
    ...options,
    env: { ...options.env, STATESNAP_TEST_PAUSE_AT: points.join(','), STATESNAP_TEST_PAUSE_FILE: lineFile },
  });
  const { child } = running;
  let ended: CliRun | null = null;
  void running.done.then((run) => {
    ended = run;
  });
  onTestFinished(async () => {
    if (ended !== null) return;
    child.kill('SIGKILL');
    await running.done;
  });
  return {
    ...running,
    async reached(phase) {
      const name = phase.split(':')[0]!;
      while (!(pausedPhases(lineFile).includes(name) && isStopped(child.pid!))) {
        const run: CliRun | null = ended;
        if (run !== null) {
          throw new Error(
            `statesnap ${args.join(' ')} ended before pausing at ${name} ` +
              `(exit ${run.exitCode}, signal ${run.signal}): ${run.stderr.trim()}`,
          );
        }
        await new Promise((resolveTick) => setTimeout(resolveTick, 2));
      }
    },
    resume() {
      child.kill('SIGCONT');
    },
    async kill() {
      child.kill('SIGKILL');
      return running.done;
    },
  };
}
