// What every statesnap command shares: --json and --quiet, SIGINT and SIGTERM handling, and one way to report a result
// or a failure: stdout holds only the result (exactly one JSON document with --json, also on failure),
// stderr the errors, one line each, with a stable exit code (clipanion would print them on stdout, exit 1).

import { Command } from 'clipanion';
import {
  describeCause,
  ExitCode,
  isOutOfResources,
  isStatesnapError,
  StatesnapError,
  systemLimitError,
} from '../core/errors.js';
import type { Warning } from '../index.js';
import { flag } from './options.js';
import { ProgressLine, progressMode } from './progress-line.js';
import { oneLine } from './text.js';

export interface Streams {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/** The --json document of a failed command: the same for every command and every kind of failure. */
export interface FailureDocument {
  command: string | null;
  error: { code: string; message: string; path: string | null };
  exitCode: number;
}

/**
 * Reports a failure: one line on stderr (plus `hint`, e.g. where to find the usage), and with `json` the
 * failure document on stdout. Returns the exit code.
 */
export function reportFailure(
  streams: Streams,
  failure: { command: string | undefined; error: StatesnapError; json: boolean; hint?: string },
): number {
  const { error } = failure;
  streams.stderr.write(`statesnap: error: ${oneLine(error.message)} [${error.code}]\n`);
  if (failure.hint !== undefined) streams.stderr.write(`statesnap: ${failure.hint}\n`);
  if (failure.json) {
    const document: FailureDocument = {
      command: failure.command ?? null,
      error: { code: error.code, message: error.message, path: error.path ?? null },
      exitCode: error.exitCode,
    };
    streams.stdout.write(`${JSON.stringify(document, null, 2)}\n`);
  }
  return error.exitCode;
}

const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;
type StopSignal = (typeof STOP_SIGNALS)[number];
const STOP_EXIT_CODES: Record<StopSignal, number> = {
  SIGINT: ExitCode.interrupted,
  SIGTERM: ExitCode.terminated,
};

export abstract class BaseCommand extends Command {
  json = flag('--json', 'Print exactly one JSON document on stdout, also when the command fails', {
    common: true,
  });
  quiet = flag('--quiet,-q', 'Print nothing but errors, one line about warnings, and the --json result', {
    common: true,
  });

  /**
   * Aborted on the first SIGINT or SIGTERM; the operation cleans up and the command exits with 130 (SIGINT)
   * or 143 (SIGTERM).
   */
  protected readonly interrupt = new AbortController();

  /** Set once the result is printed, so that a later failure does not print a second JSON document. */
  #printed = false;

  /** The run's progress display, erased before anything else is written to stderr. */
  #progress = new ProgressLine(process.stderr, 'off');

  protected abstract run(): Promise<number>;

  /**
   * The progress display of this run: `forced` is `--progress` (true) or `--no-progress` (false); by default
   * it is drawn only on a terminal and not with --quiet or --json.
   */
  protected progressLine(forced: boolean | undefined): ProgressLine {
    this.#progress = new ProgressLine(
      process.stderr,
      progressMode(process.stderr, forced, this.quiet || this.json),
    );
    return this.#progress;
  }

  /**
   * Prints the result: the JSON document, or the text summary. `attention` is the one line that must reach
   * a cron job even under --quiet (why the exit code is not 0); it goes to stderr then, as a warning for
   * exit 3 and an error otherwise.
   */
  protected printResult<R extends { exitCode: number }>(
    result: R,
    summary: () => string,
    attention?: string,
  ): number {
    this.#progress.clear();
    this.#printed = true;
    if (this.json) this.context.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else if (!this.quiet) this.context.stdout.write(`${summary()}\n`);
    if (this.quiet && attention !== undefined) {
      const level = result.exitCode === ExitCode.completedWithWarnings ? 'warning' : 'error';
      this.context.stderr.write(`statesnap: ${level}: ${oneLine(attention)}\n`);
    }
    return result.exitCode;
  }

  /** A line on stderr that is neither a warning nor an error (hidden by --quiet). */
  protected note(text: string): void {
    if (this.quiet) return;
    this.#progress.clear();
    this.context.stderr.write(`statesnap: note: ${oneLine(text)}\n`);
  }

  protected reportWarning(): (warning: Warning) => void {
    return (warning) => {
      if (this.quiet) return;
      this.#progress.clear();
      this.context.stderr.write(`statesnap: warning: ${oneLine(`${warning.path}: ${warning.message}`)}\n`);
    };
  }

  async execute(): Promise<number> {
    let stoppedBy: StopSignal | null = null;
    const onSignal = (signal: StopSignal) => {
      // A second signal means "now": skip the cleanup the first one started.
      if (stoppedBy !== null) process.exit(STOP_EXIT_CODES[signal]);
      stoppedBy = signal;
      this.#progress.stop();
      this.interrupt.abort(new Error(signal));
    };
    for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
    try {
      return await this.run();
    } catch (caught) {
      this.#progress.stop();
      let error: StatesnapError;
      if (isStatesnapError(caught, 'ERR_ABORTED') && stoppedBy === 'SIGTERM') {
        error = new StatesnapError('ERR_TERMINATED', 'operation terminated (SIGTERM)', {
          path: caught.path,
          cause: caught,
        });
      } else if (isStatesnapError(caught)) {
        error = caught;
      } else if (isOutOfResources(caught) || /\b(EMFILE|ENFILE|ENOMEM)\b/.test(describeCause(caught))) {
        // Running out of descriptors or memory can strike anywhere (a module loaded late, a child process): not
        // every such place can name a path, but the remedy is the same.
        error = systemLimitError(undefined, describeCause(caught), caught);
      } else {
        // A bug. It still gets one line (and --json its one document); the stack trace only when asked for,
        // to go with the report.
        if (process.env.STATESNAP_DEBUG) {
          this.context.stderr.write(`statesnap: ${(caught as Error)?.stack ?? String(caught)}\n`);
        }
        const message = (caught as Error)?.message ?? String(caught);
        error = new StatesnapError(
          'ERR_INTERNAL',
          `internal error (a bug: please report it with the output of STATESNAP_DEBUG=1): ${message}`,
          { cause: caught },
        );
      }
      return reportFailure(this.context, {
        command: this.path[0],
        error,
        json: this.json && !this.#printed,
      });
    } finally {
      for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
    }
  }
}
