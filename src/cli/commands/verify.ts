// `statesnap verify <backup>`: argument parsing and output only; the work is the library's verify().

import { Command, Option } from 'clipanion';
import * as t from 'typanion';
import { type VerifyResult, verify } from '../../index.js';
import { BaseCommand } from '../base-command.js';
import { formatBytes, formatCounts } from '../progress-line.js';

export function describeVerify(result: VerifyResult): string {
  const how = result.hashesChecked
    ? `sizes and ${result.hashAlgorithm} compared with the index`
    : result.kind === 'oxios'
      ? 'made by Oxios: hashes unavailable; manifest, section counts and readability checked'
      : 'manifest unusable';
  const counts = `${result.files.toLocaleString('en-US')} files, ${result.dirs.toLocaleString('en-US')} dirs, ${formatBytes(result.bytes)}`;
  if (result.ok) return `backup ${result.backup} OK: ${counts} (${how})`;
  const lines = [
    `backup ${result.backup} FAILED: ${result.problems.count} problems (${formatCounts(result.problems.byProblem)}); ${counts} matched (${how})`,
  ];
  for (const problem of result.problems.list)
    lines.push(`  ${problem.problem.padEnd(10)} ${problem.path}: ${problem.message}`);
  const more = result.problems.count - result.problems.list.length;
  if (more > 0) lines.push(`  … and ${more} more`);
  return lines.join('\n');
}

export class VerifyCommand extends BaseCommand {
  static override paths = [['verify']];
  static override usage = Command.Usage({
    description: 'Check every file of a backup against its manifest and index',
    details: `
      Re-reads every file of the backup in parallel and compares its size and sha256 with the index, then walks
      the tree for entries the index does not list. Reports every problem found: manifest (invalid manifest or
      index), missing, corrupt (size or hash mismatch, not a regular file), extra, unreadable.

      A backup made by Oxios has no index and no hashes: its manifest shape and section entry counts are checked
      and every file is read in full, and the output says hashes were unavailable.

      Exit codes: 0 everything matched, 1 problems found (listed on stdout; \`--json\` for machines), 2 usage error,
      130 interrupted.
    `,
    examples: [
      ['Verify a backup', '$0 verify /backups/oxios-2026-11-23'],
      ['As JSON, for a script', '$0 verify --json /backups/oxios-2026-11-23'],
    ],
  });

  backup = Option.String({ name: 'backup' });
  threads = Option.String('--threads', {
    validator: t.isNumber(),
    description: 'Worker threads (default: cores)',
  });

  protected async run(): Promise<number> {
    const progress = this.progressLine();
    const result = await verify({
      backup: this.backup,
      threads: this.threads,
      signal: this.interrupt.signal,
      onProgress: (p) =>
        progress.update({
          label: 'verifying',
          filesDone: p.filesDone,
          bytesDone: p.bytesDone,
          filesTotal: p.filesTotal,
          bytesTotal: p.bytesTotal,
          totalKnown: p.totalKnown,
        }),
    });
    progress.clear();
    this.printResult(result, () => describeVerify(result));
    return result.exitCode;
  }
}
