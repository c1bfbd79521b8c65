// `statesnap inspect <backup>`: what a backup holds, for statesnap- and Oxios-made backups alike.

import { Command, Option } from 'clipanion';
import { type InspectResult, inspect } from '../../index.js';
import { BaseCommand } from '../base-command.js';
import { formatBytes, formatCounts } from '../progress-line.js';

export function describeInspect(result: InspectResult): string {
  const tool = result.tool ? `${result.tool.name} ${result.tool.version}` : 'Oxios (no index, no hashes)';
  const lines = [
    `backup ${result.backup}`,
    `  made by     ${tool}, app version ${result.appVersion}, at ${result.createdAt}`,
    `  contents    ${result.files.toLocaleString('en-US')} files, ${result.dirs.toLocaleString('en-US')} dirs, ${formatBytes(result.bytes)}`,
    `  hashes      ${result.hashAlgorithm ?? 'none'}${result.indexEntries === null ? '' : ` (${result.indexEntries} index entries)`}`,
    `  sections    ${result.sections.map((s) => `${s.name} ${s.entry_count}`).join(', ') || 'none'}`,
  ];
  if (result.skipped) {
    lines.push(`  skipped     ${formatCounts(result.skipped) || 'nothing'}`);
  }
  if (result.warnings) {
    const kinds = formatCounts(result.warnings.byProblem);
    lines.push(`  warnings    ${result.warnings.count}${kinds ? ` (${kinds})` : ''}`);
  }
  return lines.join('\n');
}

export class InspectCommand extends BaseCommand {
  static override paths = [['inspect']];
  static override usage = Command.Usage({
    description: 'Show what a backup holds',
    details: `
      Reads and validates the backup's \`manifest.json\` and prints its sections, totals, hash algorithm, when
      and by which tool it was made, and the warnings recorded while it was made. Backups made by Oxios (no
      statesnap index) are inspected too; their totals come from walking the tree.
    `,
    examples: [
      ['Inspect a backup', '$0 inspect /backups/oxios-2026-11-23'],
      ['As JSON', '$0 inspect --json /backups/oxios-2026-11-23'],
    ],
  });

  backup = Option.String({ name: 'backup' });

  protected async run(): Promise<number> {
    const result = await inspect({ backup: this.backup, signal: this.interrupt.signal });
    this.printResult(result, () => describeInspect(result));
    return 0;
  }
}
