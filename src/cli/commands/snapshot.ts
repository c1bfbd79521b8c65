// `statesnap snapshot <source> <repo>`: argument parsing and output only; the work is the library's snapshot().

import { Command } from 'clipanion';
import { type SnapshotResult, snapshot } from '../../index.js';
import {
  durationOption,
  flag,
  givenS3Options,
  lockWaitOption,
  pathArgument,
  repositoryArgument,
  S3_OPTIONS,
  textOption,
} from '../options.js';
import { formatBytes } from '../progress-line.js';
import { SourceCommand } from '../source-options.js';
import { countOf, describeWarnings } from '../text.js';
import { describeMade } from './backup.js';

function stored(result: SnapshotResult): string {
  if (result.uploaded) {
    return `uploaded ${countOf(result.uploaded.objects, 'data object')}, ${formatBytes(result.uploaded.bytes)}`;
  }
  return result.synced ? 'flushed to disk' : 'not flushed';
}

export function describeSnapshot(result: SnapshotResult): string {
  const lines = [
    `snapshot ${result.id} in ${result.repository}: ${countOf(result.files, 'file')}, ` +
      `${countOf(result.dirs, 'dir')}, ${formatBytes(result.bytes)} in ${(result.durationMs / 1000).toFixed(1)} s ` +
      `(${result.linkSource ? `unchanged files ${result.uploaded ? 'reused' : 'linked'} from ${result.linkSource.id}` : 'full copy'}, ` +
      `${stored(result)})`,
  ];
  for (const hook of result.hooks) {
    if (!hook.ok) lines.push(`warning: hook \`${hook.command}\` failed: ${hook.status}`);
  }
  if (result.removedLeftovers.length > 0) {
    lines.push(`removed what killed runs left: ${result.removedLeftovers.join(', ')}`);
  }
  return [...lines, ...describeMade(result)].join('\n');
}

export class SnapshotCommand extends SourceCommand {
  static override paths = [['snapshot']];
  static override usage = Command.Usage({
    description: 'Add a snapshot of a state store to a snapshot repository',
    details: `
      Backs up \`source\` into a new snapshot in the repository \`repo\`, named by its UTC start time
      (\`2026-11-30T02-47-11Z\`, then \`-01\`, \`-02\` … for more in the same second). Each snapshot is an
      ordinary backup: \`restore\`, \`verify\` and \`inspect\` take \`<repo>/<id>\`, and \`<repo>/latest\` names the
      newest complete one. A missing or empty \`repo\` becomes a repository (a \`.statesnap-repository\` marker);
      any other non-empty directory is refused.

      The snapshot is built as \`<repo>/.partial-<id>\` and renamed to \`<repo>/<id>\` only once complete and
      flushed; the \`latest\` symlink then points at it. A killed run leaves only the hidden \`.partial-<id>\`,
      which the next snapshot or prune removes. \`snapshot\` and \`prune\` take the repository's lock: a second
      one fails with ERR_REPO_BUSY, or waits with \`--wait\`. A lock whose process is gone is removed.

      Files unchanged since the newest complete snapshot are hard-linked from it, as \`backup --link-dest\` does
      (\`--ignore-inode\`, \`--ignore-ctime\`, \`--checksum\` as there); \`--full\` copies every file. Options for
      what to copy are those of \`statesnap backup\`.

      A repository in object storage is named \`s3://bucket/prefix\` (reached with \`--endpoint\`, \`--region\`,
      \`--profile\`, else the AWS environment): small files go into tar packs of ~14 MiB, files of 4 MiB or more
      into objects of their own; files unchanged since the newest snapshot point into the objects already there
      and are neither read nor uploaded. The manifest is written last, only if absent: a run that did not finish
      leaves objects but no snapshot.

      Hooks: \`--exec-before\` runs (with \`/bin/sh -c\`, its output on stderr) once the lock is taken and the id
      chosen, before the store is read; if it fails or times out the snapshot stops (ERR_HOOK_FAILED) before
      anything is written. \`--exec-after\` runs after the snapshot whatever happened, with \`STATESNAP_STATUS\`
      set to success, failure or interrupted; its failure makes a successful run exit 3. Both get
      \`STATESNAP_SOURCE\`, \`STATESNAP_REPOSITORY\` and \`STATESNAP_SNAPSHOT_ID\`, and run in their own process
      group, so a Ctrl-C meant for statesnap does not reach them.

      Exit codes: 0 ok, 1 failed (no snapshot made; also ERR_REPO_BUSY, ERR_REPO_INVALID), 2 usage error,
      3 completed with warnings, 130 interrupted (SIGINT), 143 terminated (SIGTERM).
    `,
    examples: [
      [
        'Snapshot the demo store (the repository is made on first use)',
        '$0 snapshot ./demo/store ./demo/snapshots',
      ],
      [
        'Another one, waiting up to 10 minutes if a prune or snapshot holds the repository',
        '$0 snapshot --wait 10m --json ./demo/store ./demo/snapshots',
      ],
      [
        'Pause the application around the snapshot',
        "$0 snapshot --exec-before 'echo pausing' --exec-after 'echo resuming after $STATESNAP_STATUS' ./demo/store ./demo/snapshots",
      ],
      ['Check the newest snapshot', '$0 verify ./demo/snapshots/latest'],
    ],
  });

  source = pathArgument('source');
  repository = repositoryArgument('repo');
  endpoint = S3_OPTIONS.endpoint();
  region = S3_OPTIONS.region();
  profile = S3_OPTIONS.profile();
  ignoreInode = flag(
    '--ignore-inode',
    'Leave inode numbers out of the change rule (the store was restored or moved)',
  );
  ignoreCtime = flag(
    '--ignore-ctime',
    'Leave ctimes out of the change rule (the store was restored or moved)',
  );
  checksum = flag('--checksum', 'Hash every file that could be linked; link on equal hashes');
  full = flag('--full', 'Copy every file instead of linking the unchanged ones from the newest snapshot');
  wait = lockWaitOption();
  execBefore = textOption(
    '--exec-before',
    'command',
    'Run this shell command before reading the store (e.g. to pause the application); its failure stops the snapshot',
  );
  execAfter = textOption(
    '--exec-after',
    'command',
    'Run this shell command after the snapshot, also when it failed or was interrupted ($STATESNAP_STATUS says which)',
  );
  execTimeout = durationOption(
    '--exec-timeout',
    'The longest each hook may run before it gets SIGTERM (default: 5m)',
  );

  protected async run(): Promise<number> {
    const progress = this.progressLine(this.progress);
    const s3 = givenS3Options(this);
    const result = await snapshot({
      ...this.sourceOptions(progress),
      ...(s3 && { s3 }),
      repository: this.repository,
      full: this.full,
      ignoreInode: this.ignoreInode,
      ignoreCtime: this.ignoreCtime,
      checksum: this.checksum,
      waitForLockMs: this.wait,
      execBefore: this.execBefore,
      execAfter: this.execAfter,
      execTimeoutMs: this.execTimeout,
    });
    this.noteUnmatched(result);
    return this.printResult(result, () => describeSnapshot(result), describeWarnings(result.warnings));
  }
}
