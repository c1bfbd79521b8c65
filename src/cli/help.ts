// The help pages: the overview (`statesnap --help`, `statesnap help`) and one page per command
// (`statesnap help backup`, `statesnap backup --help`), rendered from the commands' own declarations in the
// layout people know from git, npm and restic: usage line, options with placeholders, details, examples.

import { type CommandClass, formatMarkdownish } from 'clipanion';
import { type ArgumentDoc, commandDocs } from './options.js';
import { PROGRAM } from './text.js';

const WIDTH = 80;
const PLAIN = { header: same, bold: same, error: same, code: same };
function same(text: string): string {
  return text;
}

/** Where the examples of every page start from. */
const DEMO_SETUP = 'demo ./demo';

/** The first word of a command's first path: `backup`. */
export function commandName(commandClass: CommandClass): string {
  const name = commandClass.paths?.[0]?.[0];
  if (name === undefined) throw new Error(`Assertion failed: ${commandClass.name} has no path`);
  return name;
}

function argumentsOf(args: readonly ArgumentDoc[]): string {
  return args.map((arg) => (arg.required ? `<${arg.name}>` : `[${arg.name}]`)).join(' ');
}

/** `statesnap backup [options] <source> <dest>` */
export function usageLine(commandClass: CommandClass): string {
  const { options, args } = commandDocs(commandClass);
  return [PROGRAM, commandName(commandClass), options.length > 0 ? '[options]' : '', argumentsOf(args)]
    .filter((part) => part !== '')
    .join(' ');
}

/** Word-wraps `text` to `width` columns, continuation lines indented by `indent` spaces. */
function wrap(text: string, width: number, indent: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`);
}

/** Two columns (`  label   description`), descriptions wrapped to the page width. */
function table(rows: ReadonlyArray<readonly [string, string]>): string {
  const labelWidth = Math.min(Math.max(...rows.map(([label]) => label.length)), 30);
  const indent = 2 + labelWidth + 2;
  return rows
    .map(([label, description]) => {
      const head = `  ${label.padEnd(labelWidth)}  `;
      const body = wrap(description, WIDTH - indent, indent);
      return head.length > indent ? `${head.trimEnd()}\n${' '.repeat(indent)}${body}` : `${head}${body}`;
    })
    .join('\n');
}

function examplesSection(examples: ReadonlyArray<readonly [string, string]>): string {
  const commands = examples.map(([, command]) => command.replace(/\$0/g, PROGRAM));
  const lines = ['Examples:'];
  const makesDemo = commands.some((command) => command.includes(` ${DEMO_SETUP}`));
  if (!makesDemo && commands.some((command) => command.includes('./demo/'))) {
    lines.push(`  (on ./demo/store and ./demo/backup, which '${PROGRAM} ${DEMO_SETUP}' creates)`);
  }
  examples.forEach(([label], index) => {
    lines.push(`  ${label}`);
    for (const command of commands[index]!.split('\n')) lines.push(`    $ ${command}`);
  });
  return lines.join('\n');
}

/** The page of one command. */
export function renderCommandHelp(commandClass: CommandClass): string {
  const usage = commandClass.usage ?? {};
  const { options } = commandDocs(commandClass);
  const sections = [
    `${PROGRAM} ${commandName(commandClass)}: ${(usage.description ?? '').replace(/^./, (c) => c.toLowerCase())}`,
    `Usage: ${usageLine(commandClass)}`,
  ];
  if (usage.details) {
    const details = formatMarkdownish(usage.details, { format: PLAIN, paragraphs: true });
    sections.push(details.replace(/ +$/gm, '').trimEnd());
  }
  sections.push(
    `Options:\n${table([
      ...options.map((option) => [option.label, option.description] as const),
      ['-h, --help', 'Show this help'],
    ])}`,
  );
  if (usage.examples && usage.examples.length > 0) sections.push(examplesSection(usage.examples));
  return `${sections.join('\n\n')}\n`;
}

const OVERVIEW_EXAMPLES: ReadonlyArray<readonly [string, string]> = [
  ['Generate a demo store in ./demo, back it up and inspect the backup', `$0 ${DEMO_SETUP}`],
  [
    'Check the backup, then restore it into a new directory',
    '$0 verify ./demo/backup\n$0 restore ./demo/backup ./demo/restored',
  ],
  ["Show a command's options and examples", '$0 help backup'],
];

/** The overview: every command with its arguments, the common options, examples. */
export function renderOverview(commandClasses: readonly CommandClass[], version: string): string {
  const commands = table(
    commandClasses.map((commandClass) => {
      const args = argumentsOf(commandDocs(commandClass).args);
      const name = commandName(commandClass);
      return [args === '' ? name : `${name} ${args}`, commandClass.usage?.description ?? ''] as const;
    }),
  );
  const common = table([
    ['--json', 'Print exactly one JSON document on stdout, also when the command fails'],
    ['-q, --quiet', 'Print nothing but errors, one line about warnings, and the --json result'],
    ['-h, --help', 'Show help'],
    ['-v, --version', 'Show the version'],
  ]);
  return `${[
    `statesnap ${version}: fast, safe backups and restores of large state stores`,
    `Usage: ${PROGRAM} <command> [options] [arguments]`,
    `Commands:\n${commands}`,
    `Options of every command:\n${common}`,
    examplesSection(OVERVIEW_EXAMPLES),
    `Exit codes: 0 ok, 1 failed, 2 usage error, 3 completed with warnings,\n` +
      `130 interrupted (SIGINT), 143 terminated (SIGTERM).\n` +
      `Run '${PROGRAM} help <command>' for the options and examples of a command.`,
  ].join('\n\n')}\n`;
}
