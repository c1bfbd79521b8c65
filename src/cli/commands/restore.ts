// `statesnap restore <backup> <target>`: argument parsing and output only; the work is the library's restore().

import { Command } from 'clipanion';
import type { RestorePlan, RestoreResult } from '../../index.js';
import { backupPath } from '../backup-path.js';
import { BaseCommand } from '../base-command.js';
import {
  choiceOption,
  flag,
  givenS3Options,
  negatableFlag,
  pathArgument,
  progressFlag,
  repositoryArgument,
  S3_OPTIONS,
  threadsOption,
} from '../options.js';
import { formatBytes } from '../progress-line.js';
import { countOf, describeNotes, describeWarnings, formatCounts } from '../text.js';
import { describeRecoveryActions } from './recover.js';

function describePlan(plan: RestorePlan): string {
  const lines = [
    `dry run: would restore ${plan.backup} into ${plan.target} (${plan.mode}): ${countOf(plan.files, 'file')}, ` +
      `${countOf(plan.dirs, 'dir')}, ${formatBytes(plan.bytes)} (manifest and index checked; nothing was written)`,
  ];
  if (plan.recoversFirst) lines.push(`would first finish an interrupted restore of ${plan.target}`);
  if (plan.createdParents.length > 0) lines.push(`would create ${plan.createdParents.join(', ')}`);
  if (plan.createsTarget) lines.push(`would create ${plan.target}`);
  else if (plan.replacesTarget) {
    lines.push(
      `would replace ${plan.target} (${countOf(plan.filesReplaced, 'file')} of the backup's are there now); ` +
        'the previous state would be kept as a rollback copy unless --no-keep',
    );
  } else {
    lines.push(
      `would overwrite ${countOf(plan.filesReplaced, 'file')} in ${plan.target} and create ` +
        `${countOf(plan.files - plan.filesReplaced, 'file')}; files only in the target stay`,
    );
  }
  if (plan.skippedEntries.count > 0) {
    lines.push(`would not restore (recorded as skipped): ${formatCounts(plan.skippedEntries.byKind)}`);
  }
  const warnings = describeWarnings(plan.warnings);
  if (warnings) lines.push(warnings.replace(/^completed/, 'checked'));
  return lines.join('\n');
}

export function describeRestore(result: RestoreResult | RestorePlan): string {
  if (result.dryRun) return describePlan(result);
  const checked = result.verified
    ? 'sizes and sha256 verified'
    : result.kind === 'oxios'
      ? 'Oxios backup: no hashes to verify'
      : 'hashes not verified (--no-verify)';
  const lines = [
    `restored ${result.backup} into ${result.target} (${result.mode}): ${countOf(result.files, 'file')}, ` +
      `${countOf(result.dirs, 'dir')}, ${formatBytes(result.bytes)} in ${(result.durationMs / 1000).toFixed(1)} s (${checked})`,
  ];
  if (result.createdParents.length > 0) lines.push(`created ${result.createdParents.join(', ')}`);
  if (result.rollback) lines.push(`previous state kept at ${result.rollback}`);
  else if (result.createdTarget) lines.push(`created ${result.target}`);
  else if (result.mode === 'replace') lines.push('previous state removed (--no-keep)');
  if (result.skipped.count > 0) {
    lines.push(`not restored (recorded as skipped): ${formatCounts(result.skipped.byKind)}`);
  }
  if (result.recovered.length > 0) lines.push(describeRecoveryActions(result.recovered));
  lines.push(...describeNotes(result.notes));
  const warnings = describeWarnings(result.warnings);
  if (warnings) lines.push(warnings);
  return lines.join('\n');
}

export class RestoreCommand extends BaseCommand {
  static override paths = [['restore']];
  static override usage = Command.Usage({
    description: 'Restore a backup into a state directory',
    details: `
      Validates the backup's manifest and index and, before the target changes, every file's size and sha256.
      The backup may be a snapshot in object storage, \`s3://bucket/prefix/<snapshot id>\` or
      \`s3://bucket/prefix/latest\` (endpoint and credentials from \`--endpoint\` and the AWS environment): its
      files are downloaded in ranged GETs and checked in the same way; a missing, short or altered data object
      or index refuses the restore with the target untouched.
      Backups made by Oxios (a plain tree with manifest.json, no index) restore whenever Oxios' own restore
      would: a section count that differs from the tree (Oxios counts symlinks it does not copy) is printed as
      a note, never a refusal; their files have no hashes to check. The backup's own \`manifest.json\` and
      \`.statesnap/\` are never restored; symlinks and special files are never followed or recreated.

      Replace mode (default): the restored tree is built and flushed in a staging directory beside \`target\`, then
      swapped in with two renames recorded in a journal (\`<target>.restore-journal\`); the previous target is kept
      as \`<target>.pre-restore-<timestamp>\` (\`--no-keep\` removes it). A restore killed at any point leaves the old
      or the new state, never a mix: the next restore of the target, or \`statesnap recover <target>\`, finishes
      the swap and removes the debris.

      Merge mode (\`--mode merge\`): Oxios' behaviour, made safe. The backup's files are written over the target
      through temp files renamed into place (no torn files); files only in the target stay. A symlink in the target
      where the backup has a directory is refused, never written through; nothing is written outside the target.
      A merge that fails midway leaves every file either old or new, but not all of them new.

      \`--dry-run\` makes every check a restore makes before it writes (manifest, index, target) and reports what
      would be written and replaced, changing nothing; it does not read file contents (\`statesnap verify\` does).
      Modes and mtimes come from the index. Run as root, files and directories also get the numeric owners the
      backup records (as \`tar --numeric-owner\` does); run as any other user, they belong to that user. Setuid and
      setgid bits are dropped unless \`--keep-setid\` is given.

      Exit codes: 0 ok, 1 failed (target unchanged), 2 usage error, 3 completed with warnings, 130 interrupted (SIGINT),
      143 terminated (SIGTERM).
    `,
    examples: [
      ['Restore into a new directory', '$0 restore ./demo/backup ./demo/restored'],
      [
        'Restore again over it, without keeping the previous state as a rollback copy, as JSON',
        '$0 restore --no-keep --json ./demo/backup ./demo/restored',
      ],
      [
        'See what merging the backup into the live store would overwrite, changing nothing',
        '$0 restore --dry-run --mode merge ./demo/backup ./demo/store',
      ],
      [
        'Copy a backup over a live store, keeping files only the store has',
        '$0 restore --mode merge ./demo/backup ./demo/store',
      ],
    ],
  });

  backup = repositoryArgument('backup');
  target = pathArgument('target');
  mode = choiceOption(
    '--mode',
    ['replace', 'merge'],
    'replace',
    'replace (atomic swap, rollback copy kept) or merge (write over the target, keep extra files)',
  );
  verify = negatableFlag(
    '--verify',
    'Do not check file hashes before the target changes (the structural checks always run)',
  );
  allowEmpty = flag('--allow-empty', 'Restore a backup that declares no entries');
  keep = negatableFlag(
    '--keep',
    'Remove the previous target (kept as <target>.pre-restore-<timestamp>) after a successful restore',
  );
  keepSetid = flag(
    '--keep-setid',
    'Restore setuid/setgid bits as the backup records them (dropped by default)',
  );
  threads = threadsOption();
  sync = negatableFlag(
    '--sync',
    'Do not flush the restored files to disk before the swap (throwaway copies)',
  );

  dryRun = flag(
    '--dry-run,-n',
    'Check the backup and report what would be written and replaced; change nothing',
  );
  mkpath = flag('--mkpath', 'Create the missing parent directories of target');
  progress = progressFlag();
  endpoint = S3_OPTIONS.endpoint();
  region = S3_OPTIONS.region();
  profile = S3_OPTIONS.profile();

  protected async run(): Promise<number> {
    const progress = this.progressLine(this.progress);
    const { restore } = await import('../../restore/restore.js');
    const result = await restore({
      backup: await backupPath(this.backup),
      s3: givenS3Options(this),
      target: this.target,
      mode: this.mode,
      verify: this.verify,
      allowEmpty: this.allowEmpty,
      keep: this.keep,
      keepSetid: this.keepSetid,
      threads: this.threads,
      sync: this.sync,
      dryRun: this.dryRun,
      mkpath: this.mkpath,
      signal: this.interrupt.signal,
      onProgress: progress.listener(),
      onWarning: this.reportWarning(),
    });
    return this.printResult(result, () => describeRestore(result), describeWarnings(result.warnings));
  }
}
