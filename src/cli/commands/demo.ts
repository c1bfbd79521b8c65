// `statesnap demo [dir]`: generates a small Oxios-like store, backs it up and inspects the backup, so a
// newcomer sees the whole job (and what is skipped) in a few seconds.

import { mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'clipanion';
import { StatesnapError } from '../../core/errors.js';
import { BaseCommand } from '../base-command.js';
import { optionalPathArgument, progressFlag } from '../options.js';
import { countOf, describeWarnings, formatNumber, PROGRAM, shellQuote } from '../text.js';
import { describeBackup } from './backup.js';
import { describeInspect } from './inspect.js';

/** `root`, created if missing; refused unless empty, so nothing of the user's is mixed with what is generated. */
export function prepareEmptyDir(root: string): string {
  mkdirSync(root, { recursive: true });
  if (readdirSync(root).length > 0) {
    throw new StatesnapError('ERR_INVALID_OPTION', `directory ${root} is not empty`, { path: root });
  }
  return root;
}

/** What to try next, as commands that run as printed. */
function nextSteps(root: string, backupDir: string): string {
  const run = (...args: string[]) => `  ${PROGRAM} ${args.map(shellQuote).join(' ')}`;
  return [
    `next (all files are under ${root}):`,
    run('verify', backupDir),
    run('restore', backupDir, join(root, 'restored')),
  ].join('\n');
}

export class DemoCommand extends BaseCommand {
  static override paths = [['demo']];
  static override usage = Command.Usage({
    description: 'Generate a small Oxios-like store, back it up and inspect the backup',
    details: `
      Creates \`<dir>/store\` (about 3,000 JSON/Markdown files in the Oxios layout, with symlinks, in-flight
      temp files and an empty folder among them), backs it up to \`<dir>/backup\` and inspects the result.
      \`dir\` must be empty or missing; without it, a new temporary directory is used. Nothing outside it is
      touched.

      Exit codes: 0 ok, 1 failed, 2 usage error (\`dir\` not empty), 130 interrupted (SIGINT), 143 terminated
      (SIGTERM).
    `,
    examples: [
      ['Run the demo in a new temporary directory', '$0 demo'],
      ['Keep the demo files in ./demo (the store and backup the other examples use)', '$0 demo ./demo'],
    ],
  });

  dir = optionalPathArgument('dir');
  progress = progressFlag();

  protected async run(): Promise<number> {
    const root =
      this.dir === undefined ? mkdtempSync(join(tmpdir(), 'statesnap-demo-')) : prepareEmptyDir(this.dir);
    const say = (text: string) => {
      if (!this.json && !this.quiet) this.context.stdout.write(`${text}\n`);
    };
    const [{ generateStore }, { backup }, { inspect }] = await Promise.all([
      import('../../demo/generator.js'),
      import('../../backup/backup.js'),
      import('../../read/inspect.js'),
    ]);
    const generated = await generateStore(join(root, 'store'), { profile: 'demo' });
    say(
      `generated ${generated.root}: ${countOf(generated.files, 'file')} (${formatNumber(generated.tempFiles)} of them ` +
        `in-flight temp files), ${countOf(generated.symlinks, 'symlink')}, ${countOf(generated.dirs, 'dir')}`,
    );
    const progress = this.progressLine(this.progress);
    const backupResult = await backup({
      source: generated.root,
      dest: join(root, 'backup'),
      signal: this.interrupt.signal,
      onProgress: progress.listener(),
      onWarning: this.reportWarning(),
    });
    say(describeBackup(backupResult));
    const inspectResult = await inspect({ backup: backupResult.dest, signal: this.interrupt.signal });
    const result = {
      command: 'demo' as const,
      dir: root,
      generated,
      backup: backupResult,
      inspect: inspectResult,
      exitCode: backupResult.exitCode,
    };
    return this.printResult(
      result,
      () => `${describeInspect(inspectResult)}\n\n${nextSteps(root, backupResult.dest)}`,
      describeWarnings(backupResult.warnings),
    );
  }
}
