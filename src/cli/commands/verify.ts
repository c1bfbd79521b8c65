// `statesnap verify <backup>`: argument parsing and output only; the work is the library's verify().

import { Command } from 'clipanion';
import type { VerifyResult } from '../../index.js';
import { backupPath } from '../backup-path.js';
import { BaseCommand } from '../base-command.js';
import { givenS3Options, progressFlag, repositoryArgument, S3_OPTIONS, threadsOption } from '../options.js';
import { formatBytes } from '../progress-line.js';
import { countOf, describeNotes, formatCounts, formatNumber } from '../text.js';

/** The verdict in one line: `backup /b FAILED: 2 problems (1 missing, 1 corrupt)`. */
function verdict(result: VerifyResult): string {
  if (result.ok) return `backup ${result.backup} OK`;
  return `backup ${result.backup} FAILED: ${countOf(result.problems.count, 'problem')} (${formatCounts(result.problems.byProblem)})`;
}

export function describeVerify(result: VerifyResult): string {
  const how = result.hashesChecked
    ? `sizes and ${result.hashAlgorithm} compared with the index`
    : result.kind === 'oxios'
      ? 'made by Oxios: hashes unavailable; manifest and readability checked'
      : 'manifest unusable';
  const counts = `${countOf(result.files, 'file')}, ${countOf(result.dirs, 'dir')}, ${formatBytes(result.bytes)}`;
  const notes = describeNotes(result.notes, '  note: ');
  if (result.ok) return [`${verdict(result)}: ${counts} (${how})`, ...notes].join('\n');
  const lines = [`${verdict(result)}; ${counts} matched (${how})`, ...notes];
  for (const problem of result.problems.list)
    lines.push(`  ${problem.problem.padEnd(10)} ${problem.path}: ${problem.message}`);
  const more = result.problems.count - result.problems.list.length;
  if (more > 0) lines.push(`  … and ${formatNumber(more)} more`);
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

      A snapshot in object storage (\`s3://bucket/prefix/<snapshot id>\` or \`…/latest\`; endpoint and credentials
      from \`--endpoint\` and the AWS environment) is downloaded, every file's sha256 compared with its index;
      a damaged index or a missing or short data object is reported as the one problem found.

      A backup made by Oxios has no index and no hashes: its manifest is checked and every file is read in full,
      and the output says hashes were unavailable. Section entry counts that differ from the tree are printed as
      notes, not problems (Oxios counts symlinks it does not copy, and a live store changes while it is copied).

      Exit codes: 0 everything matched, 1 problems found (listed on stdout; \`--json\` for machines), 2 usage error,
      130 interrupted (SIGINT), 143 terminated (SIGTERM).
    `,
    examples: [
      ['Verify a backup', '$0 verify ./demo/backup'],
      ['As JSON, for a script', '$0 verify --json ./demo/backup'],
    ],
  });

  backup = repositoryArgument('backup');
  endpoint = S3_OPTIONS.endpoint();
  region = S3_OPTIONS.region();
  profile = S3_OPTIONS.profile();
  threads = threadsOption();
  progress = progressFlag();

  protected async run(): Promise<number> {
    const progress = this.progressLine(this.progress);
    const { verify } = await import('../../read/verify.js');
    const result = await verify({
      backup: await backupPath(this.backup),
      s3: givenS3Options(this),
      threads: this.threads,
      signal: this.interrupt.signal,
      onProgress: progress.listener(),
    });
    return this.printResult(result, () => describeVerify(result), result.ok ? undefined : verdict(result));
  }
}
