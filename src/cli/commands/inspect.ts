// `statesnap inspect <backup>`: what a backup holds, for statesnap- and Oxios-made backups alike.

import { Command } from 'clipanion';
import type { InspectResult } from '../../index.js';
import { backupPath } from '../backup-path.js';
import { BaseCommand } from '../base-command.js';
import { givenS3Options, repositoryArgument, S3_OPTIONS } from '../options.js';
import { formatBytes } from '../progress-line.js';
import { countOf, describeNotes, formatCounts } from '../text.js';
import { describeSections } from './backup.js';

export function describeInspect(result: InspectResult): string {
  const tool = result.tool ? `${result.tool.name} ${result.tool.version}` : 'Oxios (no index, no hashes)';
  const lines = [
    `backup ${result.backup}`,
    `  made by     ${tool}, app version ${result.appVersion}, at ${result.createdAt}`,
    `  contents    ${countOf(result.files, 'file')}, ${countOf(result.dirs, 'dir')}, ${formatBytes(result.bytes)}`,
    `  hashes      ${result.hashAlgorithm ?? 'none'}${result.indexEntries === null ? '' : ` (${countOf(result.indexEntries, 'index entry', 'index entries')})`}`,
    `  sections    ${describeSections(result.sections)}`,
  ];
  if (result.skipped) {
    lines.push(`  skipped     ${formatCounts(result.skipped) || 'nothing'}`);
  }
  if (result.warnings) {
    const kinds = formatCounts(result.warnings.byProblem);
    lines.push(
      `  warnings    ${result.warnings.count === 0 ? 'none' : `${countOf(result.warnings.count, 'warning')} (${kinds})`}`,
    );
  }
  if (result.storage) {
    const { objects, objectBytes, bytesUploaded, base } = result.storage;
    lines.push(
      `  objects     ${countOf(objects, 'data object')}, ${formatBytes(objectBytes)}; this run uploaded ${formatBytes(bytesUploaded)}${base === null ? '' : `, unchanged files from ${base}`}`,
    );
  }
  lines.push(...describeNotes(result.notes, '  note        '));
  return lines.join('\n');
}

export class InspectCommand extends BaseCommand {
  static override paths = [['inspect']];
  static override usage = Command.Usage({
    description: 'Show what a backup holds',
    details: `
      Reads and validates the backup's \`manifest.json\` and prints its sections, totals, hash algorithm, when
      and by which tool it was made, and the warnings recorded while it was made. Backups made by Oxios (no
      statesnap index) are inspected too; their totals come from walking the tree. A snapshot in object storage
      (\`s3://bucket/prefix/<snapshot id>\` or \`…/latest\`) is inspected from its manifest, with its data objects.

      Exit codes: 0 ok, 1 failed (no readable manifest), 2 usage error.
    `,
    examples: [
      ['Inspect a backup', '$0 inspect ./demo/backup'],
      ['As JSON', '$0 inspect --json ./demo/backup'],
    ],
  });

  backup = repositoryArgument('backup');
  endpoint = S3_OPTIONS.endpoint();
  region = S3_OPTIONS.region();
  profile = S3_OPTIONS.profile();

  protected async run(): Promise<number> {
    const { inspect } = await import('../../read/inspect.js');
    const result = await inspect({
      backup: await backupPath(this.backup),
      s3: givenS3Options(this),
      signal: this.interrupt.signal,
    });
    return this.printResult(result, () => describeInspect(result));
  }
}
