// `statesnap list <repo>`: argument parsing and output only; the work is the library's list().

import { Command } from 'clipanion';
import { type ListResult, list } from '../../index.js';
import { BaseCommand } from '../base-command.js';
import { givenS3Options, repositoryArgument, S3_OPTIONS } from '../options.js';
import { formatBytes } from '../progress-line.js';
import { countOf, formatNumber } from '../text.js';

function count(value: number | null): string {
  return value === null ? '?' : formatNumber(value);
}

export function describeList(result: ListResult): string {
  const lines = [`repository ${result.repository}: ${countOf(result.snapshots.length, 'snapshot')}`];
  const header = ['id', 'time', 'files', 'bytes', 'bytes new', 'linked', 'copied', 'state'];
  const rows = result.snapshots.map((row) => [
    row.id,
    row.localTime,
    formatNumber(row.files),
    formatBytes(row.bytes),
    row.bytesNew === null ? '?' : formatBytes(row.bytesNew),
    count(row.linked),
    count(row.copied),
    row.state,
  ]);
  for (const row of result.unfinished) {
    const state = row.holder === null ? row.state : `${row.state} (${row.holder})`;
    rows.push([row.name, '', '', '', '', '', '', state]);
  }
  if (rows.length > 0) {
    const widths = header.map((title, column) =>
      Math.max(title.length, ...rows.map((row) => row[column]!.length)),
    );
    for (const row of [header, ...rows]) {
      lines.push(
        `  ${row
          .map((cell, column) => cell.padEnd(widths[column]!))
          .join('  ')
          .trimEnd()}`,
      );
    }
  }
  return lines.join('\n');
}

export class ListCommand extends BaseCommand {
  static override paths = [['list']];
  static override usage = Command.Usage({
    description: 'List the snapshots of a snapshot repository',
    details: `
      One row per snapshot, oldest first: its id, when it started (local time with its UTC offset), files,
      bytes, bytes new (what it added to the disk), files linked from the previous snapshot and copied, and its
      state. Unfinished entries (\`.partial-*\` being built, \`.deleting-*\` being removed) show as in progress
      while the run holding the repository works on them, else as abandoned (the next snapshot or prune removes
      them). Everything comes from the manifests; no tree is walked.

      Entries that are not snapshots (anything copied into the repository by hand) are never used or removed;
      \`--json\` lists them under \`foreign\` with the reason.

      A repository in object storage is named \`s3://bucket/prefix\`; its snapshots are the ones whose manifest
      was written (a run that did not finish shows under \`unfinished\` in \`--json\` only). \`--endpoint\`,
      \`--region\` and \`--profile\` say how to reach it, else the AWS environment does (\`AWS_ENDPOINT_URL\`, ...).

      Exit codes: 0 ok, 1 failed (not a repository: ERR_REPO_INVALID; ERR_S3_* for object storage), 2 usage error.
    `,
    examples: [
      [
        'Make a snapshot, then list the repository',
        '$0 snapshot ./demo/store ./demo/snapshots && $0 list ./demo/snapshots',
      ],
      ['As JSON', '$0 list --json ./demo/snapshots'],
    ],
  });

  repository = repositoryArgument('repo');
  endpoint = S3_OPTIONS.endpoint();
  region = S3_OPTIONS.region();
  profile = S3_OPTIONS.profile();

  protected async run(): Promise<number> {
    const s3 = givenS3Options(this);
    const result = await list({
      repository: this.repository,
      signal: this.interrupt.signal,
      ...(s3 && { s3 }),
    });
    return this.printResult(result, () => describeList(result));
  }
}
