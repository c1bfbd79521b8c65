// `statesnap verify <backup | repository>`: argument parsing and output only; the work is the library's verify()
// and verifyRepository().

import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'clipanion';
import { REPOSITORY_MARKER } from '../../format/snapshot-id.js';
import type { VerifyRepositoryResult, VerifyResult } from '../../index.js';
import { isS3Location } from '../../s3/location.js';
import { BaseCommand } from '../base-command.js';
import {
  flag,
  givenS3Options,
  progressFlag,
  repositoryArgument,
  S3_OPTIONS,
  threadsOption,
} from '../options.js';
import { formatBytes } from '../progress-line.js';
import { countOf, describeNotes, escapeControls, formatCounts, formatNumber, oneLine } from '../text.js';

/** The verdict in one line: `backup /b FAILED: 2 problems (1 missing, 1 corrupt)`. */
function verdict(result: VerifyResult): string {
  if (result.ok) return `backup ${escapeControls(result.backup)} OK`;
  return `backup ${escapeControls(result.backup)} FAILED: ${countOf(result.problems.count, 'problem')} (${formatCounts(result.problems.byProblem)})`;
}

export function describeVerify(result: VerifyResult): string {
  const how = result.hashesChecked
    ? `sizes and ${result.hashAlgorithm} compared with the index`
    : result.kind === 'oxios'
      ? 'made by Oxios: hashes unavailable; manifest and readability checked'
      : 'manifest unusable';
  const notRead =
    result.filesNotRead > 0 ? ` read, ${formatNumber(result.filesNotRead)} linked checked by lstat only` : '';
  const counts = `${countOf(result.files, 'file')}${notRead}, ${countOf(result.dirs, 'dir')}, ${formatBytes(result.bytes)}`;
  const notes = describeNotes(result.notes, '  note: ');
  if (result.ok) return [`${verdict(result)}: ${counts} (${how})`, ...notes].join('\n');
  const lines = [`${verdict(result)}; ${counts} matched (${how})`, ...notes];
  for (const problem of result.problems.list)
    lines.push(`  ${problem.problem.padEnd(10)} ${oneLine(`${problem.path}: ${problem.message}`)}`);
  const more = result.problems.count - result.problems.list.length;
  if (more > 0) lines.push(`  … and ${formatNumber(more)} more`);
  return lines.join('\n');
}

/** One line per snapshot, then what was read in all: `repository /r OK: 3 snapshots, 120 files read …`. */
export function describeRepositoryVerify(result: VerifyRepositoryResult): string {
  const failed = result.snapshots.filter((snapshot) => !snapshot.ok).length;
  const head = result.ok
    ? `repository ${result.repository} OK: ${countOf(result.snapshots.length, 'snapshot')}`
    : `repository ${result.repository} FAILED: ${failed} of ${countOf(result.snapshots.length, 'snapshot')} with problems`;
  const lines = [
    `${head}; ${countOf(result.filesRead, 'file')} read (${formatBytes(result.bytesRead)}), ` +
      `${formatNumber(result.filesShared)} judged by an older snapshot's read of the same file` +
      (result.newOnly ? `, ${formatNumber(result.filesLinkedNotRead)} linked and not read (--new-only)` : ''),
  ];
  for (const snapshot of result.snapshots) {
    const state = snapshot.ok ? 'OK' : `FAILED: ${countOf(snapshot.problems.count, 'problem')}`;
    lines.push(
      `  ${snapshot.id} ${state} (${formatNumber(snapshot.files)} read, ${formatNumber(snapshot.filesNotRead)} not read)`,
    );
    for (const problem of snapshot.problems.list)
      lines.push(`    ${problem.problem.padEnd(10)} ${oneLine(`${problem.path}: ${problem.message}`)}`);
  }
  return lines.join('\n');
}

export class VerifyCommand extends BaseCommand {
  static override paths = [['verify']];
  static override usage = Command.Usage({
    description: 'Check every file of a backup (or of every snapshot of a repository) against its index',
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

      Given a snapshot repository, verifies every complete snapshot in it in one run, oldest first. A file a
      snapshot linked from the one before is the same inode: it is read once, for the first snapshot that has
      it, and every later snapshot that shares it is judged by that read after an lstat of its own name (type,
      size, mode), so a tampered shared file is reported in every snapshot that has it. \`--json\` gives each
      snapshot's verdict and \`filesRead\` (each distinct inode once) against \`filesShared\`. An entry named like
      a snapshot whose manifest is unusable is reported as a failed snapshot, never left out. With
      \`--new-only\`, a linked file whose inode an older snapshot's read found under another hash is read.

      \`--new-only\` reads only what each backup copied: files it hard-linked from the previous backup are
      checked from their lstat, their content having been read when that backup was verified. After an
      \`--new-only\` check of each new snapshot, an occasional full run catches what only a read can (bit rot).

      Exit codes: 0 everything matched, 1 problems found (listed on stdout; \`--json\` for machines), 2 usage error,
      130 interrupted (SIGINT), 143 terminated (SIGTERM).
    `,
    examples: [
      ['Verify a backup', '$0 verify ./demo/backup'],
      ['As JSON, for a script', '$0 verify --json ./demo/backup'],
      [
        'Verify every snapshot of a repository, each shared file read once',
        '$0 snapshot --quiet ./demo/store ./demo/snapshots && $0 verify ./demo/snapshots',
      ],
      ['Check only what the newest snapshot copied', '$0 verify --new-only ./demo/snapshots/latest'],
    ],
  });

  backup = repositoryArgument('backup');
  endpoint = S3_OPTIONS.endpoint();
  region = S3_OPTIONS.region();
  profile = S3_OPTIONS.profile();
  threads = threadsOption();
  newOnly = flag('--new-only', 'Read only the files each backup copied; check its linked files by lstat');
  progress = progressFlag();

  protected async run(): Promise<number> {
    const progress = this.progressLine(this.progress);
    const { verify, verifyRepository } = await import('../../read/verify.js');
    if (
      !isS3Location(this.backup) &&
      lstatSync(join(this.backup, REPOSITORY_MARKER), { throwIfNoEntry: false }) !== undefined
    ) {
      const result = await verifyRepository({
        repository: this.backup,
        newOnly: this.newOnly,
        threads: this.threads,
        signal: this.interrupt.signal,
        onProgress: progress.listener(),
      });
      return this.printResult(
        result,
        () => describeRepositoryVerify(result),
        result.ok ? undefined : `repository ${result.repository} FAILED`,
      );
    }
    const result = await verify({
      backup: this.backup,
      s3: givenS3Options(this),
      newOnly: this.newOnly,
      threads: this.threads,
      signal: this.interrupt.signal,
      onProgress: progress.listener(),
    });
    return this.printResult(result, () => describeVerify(result), result.ok ? undefined : verdict(result));
  }
}
