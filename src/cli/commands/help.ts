// `statesnap help [command]`: the overview, or the page of one command (the same as `<command> --help`).

import { Command } from 'clipanion';
import { reportFailure } from '../base-command.js';
import { commandName } from '../help.js';
import { optionalArgument } from '../options.js';
import { loadCommands } from '../registry.js';
import { PROGRAM } from '../text.js';
import { unknownCommand } from '../usage-error.js';
import { CompletionCommand } from './completion.js';

export class HelpCommand extends Command {
  static override paths = [['help'], ['--help'], ['-h']];
  static override usage = Command.Usage({
    description: 'Show the overview, or the options and examples of one command',
    examples: [
      ['List the commands', '$0 help'],
      ['Show the options and examples of backup', '$0 help backup'],
    ],
  });

  command = optionalArgument('command');

  async execute(): Promise<number> {
    const pages = [...(await loadCommands()), HelpCommand, CompletionCommand];
    const page = this.command === undefined ? null : pages.find((c) => commandName(c) === this.command);
    if (page === undefined) {
      return reportFailure(this.context, {
        command: 'help',
        error: unknownCommand(this.command!, pages.map(commandName)),
        json: false,
        hint: `run '${PROGRAM} help' for the list of commands`,
      });
    }
    this.context.stdout.write(this.cli.usage(page));
    return 0;
  }
}
