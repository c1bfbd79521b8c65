// `statesnap completion bash`: a bash completion script (zsh loads it through bashcompinit) written from the
// same declarations the parser and the help pages read, so it offers exactly the commands and options that exist.

import { Command, type CommandClass } from 'clipanion';
import { StatesnapError } from '../../core/errors.js';
import { reportFailure } from '../base-command.js';
import { commandName } from '../help.js';
import { commandDocs, optionalArgument } from '../options.js';
import { loadCommands } from '../registry.js';

/** Placeholders whose values are paths: the shell completes file names for them. */
const PATH_PLACEHOLDERS = new Set(['<file>', '<dir>', '<path>']);

function bashScript(commands: readonly CommandClass[]): string {
  const names = commands.map(commandName);
  const optionCases: string[] = [];
  const valueCases: string[] = [];
  for (const command of commands) {
    const { options } = commandDocs(command);
    const words = [...options.flatMap((option) => option.shown), '--help'];
    optionCases.push(`    ${commandName(command)}) options='${words.join(' ')}' ;;`);
    for (const option of options) {
      const placeholder = option.label.slice(option.label.indexOf(' ') + 1);
      if (option.expects === undefined || PATH_PLACEHOLDERS.has(placeholder)) continue;
      const choices = /^<([\w-]+(\|[\w-]+)+)>$/.exec(placeholder)?.[1];
      valueCases.push(
        `    ${commandName(command)}:${option.shown[0]}) COMPREPLY=(${choices ? `$(compgen -W '${choices.replace(/\|/g, ' ')}' -- "$cur")` : ''}); return ;;`,
      );
    }
  }
  return `# bash completion for statesnap: eval "$(statesnap completion bash)"
_statesnap() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}" options=''
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W '${names.join(' ')} help' -- "$cur")); return
  fi
  case "\${COMP_WORDS[1]}:$prev" in
${valueCases.join('\n')}
  esac
  case "\${COMP_WORDS[1]}" in
${optionCases.join('\n')}
    help) COMPREPLY=($(compgen -W '${names.join(' ')}' -- "$cur")); return ;;
  esac
  if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W "$options" -- "$cur")); return; fi
  COMPREPLY=($(compgen -f -- "$cur"))
}
complete -o filenames -F _statesnap statesnap
`;
}

export class CompletionCommand extends Command {
  static override paths = [['completion']];
  static override usage = Command.Usage({
    description: 'Print a shell completion script (bash; zsh through bashcompinit)',
    details: `
      Completes commands, options, the values of options that take one of a few words (\`--mode\`, \`--profile\`)
      and file names. Load it in the current shell with \`eval "$(statesnap completion bash)"\`, or for every new
      one save it where bash-completion finds it (\`~/.local/share/bash-completion/completions/statesnap\`). In
      zsh, run \`autoload -U +X bashcompinit && bashcompinit\` first. It completes the \`statesnap\` command that
      \`npm link\` installs, not \`npx statesnap\`.
    `,
    examples: [['Print the script', '$0 completion bash']],
  });

  shell = optionalArgument('shell');

  async execute(): Promise<number> {
    if (this.shell !== undefined && this.shell !== 'bash') {
      return reportFailure(this.context, {
        command: 'completion',
        error: new StatesnapError(
          'ERR_USAGE',
          `no completion for the shell "${this.shell}"; bash is supported`,
        ),
        json: false,
      });
    }
    this.context.stdout.write(bashScript(await loadCommands()));
    return 0;
  }
}
