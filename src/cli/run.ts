// The statesnap command line: registers the commands, renders help from their declarations, and turns a
// line it cannot parse into one explained error on stderr (and the failure document with --json), exit 2.

import { Builtins, Cli, Command, type CommandClass } from 'clipanion';
import { TOOL_VERSION } from '../core/options.js';
import { reportFailure } from './base-command.js';
import { CompletionCommand } from './commands/completion.js';
import { HelpCommand } from './commands/help.js';
import { renderCommandHelp, renderOverview } from './help.js';
import { loadCommandsFor } from './registry.js';
import { PROGRAM } from './text.js';
import { explainUsageError, wantsJson } from './usage-error.js';

/** Runs the command line `args` (the words after the program's name); sets the process's exit code. */
export async function runCommandLine(args: readonly string[]): Promise<void> {
  const listed: readonly CommandClass[] = [...(await loadCommandsFor(args)), HelpCommand, CompletionCommand];

  /** clipanion, with its help pages (`--help`, `-h`, no command) replaced by statesnap's own. */
  class StatesnapCli extends Cli {
    override usage(command: CommandClass | Command | null = null): string {
      if (command === null) return renderOverview(listed, TOOL_VERSION);
      return renderCommandHelp(command instanceof Command ? (command.constructor as CommandClass) : command);
    }
  }

  const cli = new StatesnapCli({
    binaryLabel: 'statesnap',
    binaryName: PROGRAM,
    binaryVersion: TOOL_VERSION,
  });
  for (const command of [...listed, Builtins.VersionCommand]) cli.register(command);

  const context = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };
  let command: Command | undefined;
  try {
    command = cli.process([...args], context);
  } catch (refusal) {
    const failure = explainUsageError(refusal, args, listed);
    process.exitCode = reportFailure(context, {
      command: failure.command,
      error: failure.error,
      json: wantsJson(args),
      hint: `run '${failure.helpCommand}' for usage`,
    });
  }
  if (command !== undefined) process.exitCode = await cli.run(command, context);
}
