// What every statesnap command shares: --json and --quiet, SIGINT handling, and the routing of errors to
// stderr as one line with a stable exit code (clipanion would print them on stdout and exit 1).

import { Command, Option } from 'clipanion';
import { ExitCode, isStatesnapError, type Warning } from '../index.js';
import { ProgressLine } from './progress-line.js';

/**
 * Control characters in a message (a file name may hold a newline) are shown escaped, so every warning and
 * error stays one line on stderr. The --json result keeps the exact paths.
 */
function oneLine(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f]/g, (char) => {
    if (char === '\n') return '\\n';
    if (char === '\r') return '\\r';
    if (char === '\t') return '\\t';
    return `\\x${char.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}

export abstract class BaseCommand extends Command {
  json = Option.Boolean('--json', false, { description: 'Print exactly one JSON result object on stdout' });
  quiet = Option.Boolean('--quiet,-q', false, {
    description: 'Print nothing but errors (and the --json result)',
  });

  /** Aborted on the first SIGINT; the operation cleans up and the command exits with 130. */
  protected readonly interrupt = new AbortController();

  protected abstract run(): Promise<number>;

  protected progressLine(): ProgressLine {
    return new ProgressLine(process.stderr, !this.quiet && !this.json);
  }

  protected printResult(result: object, summary: () => string): void {
    if (this.json) this.context.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else if (!this.quiet) this.context.stdout.write(`${summary()}\n`);
  }

  protected reportWarning(progress: ProgressLine): (warning: Warning) => void {
    return (warning) => {
      if (this.quiet) return;
      progress.clear();
      this.context.stderr.write(`statesnap: warning: ${oneLine(`${warning.path}: ${warning.message}`)}\n`);
    };
  }

  async execute(): Promise<number> {
    let interrupts = 0;
    const onSigint = () => {
      // A second Ctrl-C means "now": skip the cleanup the first one started.
      if (++interrupts > 1) process.exit(ExitCode.interrupted);
      this.interrupt.abort(new Error('SIGINT'));
    };
    process.on('SIGINT', onSigint);
    try {
      return await this.run();
    } catch (error) {
      if (isStatesnapError(error)) {
        this.context.stderr.write(`statesnap: error: ${oneLine(error.message)} [${error.code}]\n`);
        return error.exitCode;
      }
      this.context.stderr.write(`statesnap: internal error: ${(error as Error)?.stack ?? String(error)}\n`);
      return ExitCode.failed;
    } finally {
      process.off('SIGINT', onSigint);
    }
  }
}
