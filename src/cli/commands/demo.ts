// `statesnap demo [dir]`: generates a small Oxios-like store, backs it up and inspects the backup, so a
// newcomer sees the whole job (and what is skipped) in a few seconds.

import { mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Command, Option } from 'clipanion';
import { generateStore } from '../../demo/generator.js';
import { backup, inspect, StatesnapError } from '../../index.js';
import { BaseCommand } from '../base-command.js';
import { describeBackup } from './backup.js';
import { describeInspect } from './inspect.js';

function prepareDemoDir(dir: string | undefined): string {
  if (dir === undefined) return mkdtempSync(join(tmpdir(), 'statesnap-demo-'));
  const root = resolve(dir);
  mkdirSync(root, { recursive: true });
  if (readdirSync(root).length > 0) {
    throw new StatesnapError('ERR_INVALID_OPTION', `demo directory ${root} is not empty`, { path: root });
  }
  return root;
}

export class DemoCommand extends BaseCommand {
  static override paths = [['demo']];
  static override usage = Command.Usage({
    description: 'Generate a small Oxios-like store, back it up and inspect the backup',
    details: `
      Creates \`<dir>/store\` (a few thousand JSON/Markdown files in the Oxios layout, with symlinks, an
      in-flight temp file and an empty folder among them), backs it up to \`<dir>/backup\` and inspects the
      result. Without \`dir\`, a new temporary directory is used. Nothing outside \`dir\` is touched.
    `,
    examples: [
      ['Run the demo in a temporary directory', '$0 demo'],
      ['Keep the demo files in ./demo', '$0 demo ./demo'],
    ],
  });

  dir = Option.String({ name: 'dir', required: false });

  protected async run(): Promise<number> {
    const root = prepareDemoDir(this.dir);
    const store = join(root, 'store');
    const say = (text: string) => {
      if (!this.json && !this.quiet) this.context.stdout.write(`${text}\n`);
    };
    const generated = await generateStore(store, { profile: 'demo' });
    say(
      `generated ${store}: ${generated.files} files, ${generated.symlinks} symlinks, ${generated.tempFiles} temp files`,
    );
    const progress = this.progressLine();
    const backupResult = await backup({
      source: store,
      dest: join(root, 'backup'),
      signal: this.interrupt.signal,
      onWarning: this.reportWarning(progress),
    });
    say(describeBackup(backupResult));
    const inspectResult = await inspect({ backup: backupResult.dest, signal: this.interrupt.signal });
    say(describeInspect(inspectResult));
    if (this.json) {
      this.context.stdout.write(
        `${JSON.stringify({ command: 'demo', generated, backup: backupResult, inspect: inspectResult }, null, 2)}\n`,
      );
    }
    say(
      `\nnext: statesnap verify ${backupResult.dest}   (or inspect it yourself; all files are under ${root})`,
    );
    return backupResult.exitCode;
  }
}
