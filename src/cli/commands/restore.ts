// `statesnap restore <backup> <target>`: argument parsing and output only; the work is the library's restore().

import { Command, Option } from 'clipanion';
import * as t from 'typanion';
import { type RestoreResult, restore } from '../../index.js';
import { BaseCommand } from '../base-command.js';
import { formatBytes, formatCounts } from '../progress-line.js';
import { describeRecoveryActions } from './recover.js';

export function describeRestore(result: RestoreResult): string {
  const checked = result.verified
    ? 'sizes and sha256 verified'
    : result.kind === 'oxios'
      ? 'Oxios backup: no hashes to verify'
      : 'hashes not verified (--no-verify)';
  const lines = [
    `restored ${result.backup} into ${result.target} (${result.mode}): ${result.files.toLocaleString('en-US')} files, ` +
      `${result.dirs.toLocaleString('en-US')} dirs, ${formatBytes(result.bytes)} in ${(result.durationMs / 1000).toFixed(1)} s (${checked})`,
  ];
  if (result.rollback) lines.push(`previous state kept at ${result.rollback}`);
  else if (result.createdTarget) lines.push(`created ${result.target}`);
  if (result.skipped.count > 0) {
    lines.push(`not restored (recorded as skipped): ${formatCounts(result.skipped.byKind)}`);
  }
  if (result.recovered.length > 0) lines.push(describeRecoveryActions(result.recovered));
  if (result.warnings.count > 0) {
    lines.push(
      `completed with ${result.warnings.count} warnings: ${formatCounts(result.warnings.byProblem)}`,
    );
  }
  return lines.join('\n');
}

export class RestoreCommand extends BaseCommand {
  static override paths = [['restore']];
  static override usage = Command.Usage({
    description: 'Restore a backup into a state directory',
    details: `
      Validates the backup's manifest and index and, before the target changes, every file's size and sha256.
      Backups made by Oxios (a plain tree with manifest.json, no index) restore too, checked by manifest shape,
      section entry counts and file presence only. The backup's own \`manifest.json\` and \`.statesnap/\` are never
      restored; symlinks and special files are never followed or recreated.

      Replace mode (default): the restored tree is built and flushed in a staging directory beside \`target\`, then
      swapped in with two renames recorded in a journal (\`<target>.restore-journal\`); the previous target is kept
      as \`<target>.pre-restore-<timestamp>\` (\`--no-keep\` removes it). A restore killed at any point leaves the old
      or the new state, never a mix: the next restore of the target, or \`statesnap recover <target>\`, finishes
      the swap and removes the debris.

      Merge mode (\`--mode merge\`): Oxios' behaviour, made safe. The backup's files are written over the target
      through temp files renamed into place (no torn files); files only in the target stay. A symlink in the target
      where the backup has a directory is refused, never written through; nothing is written outside the target.
      A merge that fails midway leaves every file either old or new, but not all of them new.

      Exit codes: 0 ok, 1 failed (target unchanged), 2 usage error, 3 completed with warnings, 130 interrupted.
    `,
    examples: [
      [
        'Restore, keeping the previous state as a rollback copy',
        '$0 restore /backups/oxios-2026-11-23 ~/.oxios/state',
      ],
      [
        'Copy a backup over a live store, keeping extra files',
        '$0 restore --mode merge /backups/b ~/.oxios/state',
      ],
      ['Restore without a rollback copy, as JSON', '$0 restore --no-keep --json /backups/b /srv/state'],
    ],
  });

  backup = Option.String({ name: 'backup' });
  target = Option.String({ name: 'target' });
  mode = Option.String('--mode', 'replace', {
    validator: t.isEnum(['replace', 'merge'] as const),
    description:
      'replace (atomic swap, rollback copy kept) or merge (write over the target, keep extra files)',
  });
  verify = Option.Boolean('--verify', true, {
    description:
      'Check every file hash before the target changes (--no-verify skips hashing, never the structural checks)',
  });
  allowEmpty = Option.Boolean('--allow-empty', false, {
    description: 'Restore a backup that declares no entries',
  });
  keep = Option.Boolean('--keep', true, {
    description:
      'Keep the previous target as <target>.pre-restore-<timestamp> (--no-keep removes it after success)',
  });
  threads = Option.String('--threads', {
    validator: t.isNumber(),
    description: 'Worker threads (default: cores)',
  });
  sync = Option.Boolean('--sync', true, {
    description: 'Flush the restored files to disk before the swap (--no-sync for throwaway copies)',
  });

  protected async run(): Promise<number> {
    const progress = this.progressLine();
    const result = await restore({
      backup: this.backup,
      target: this.target,
      mode: this.mode,
      verify: this.verify,
      allowEmpty: this.allowEmpty,
      keep: this.keep,
      threads: this.threads,
      sync: this.sync,
      signal: this.interrupt.signal,
      onProgress: (p) =>
        progress.update({
          label: p.phase,
          filesDone: p.filesDone,
          bytesDone: p.bytesDone,
          filesTotal: p.filesTotal,
          bytesTotal: p.bytesTotal,
          totalKnown: p.totalKnown,
        }),
      onWarning: this.reportWarning(progress),
    });
    progress.clear();
    this.printResult(result, () => describeRestore(result));
    return result.exitCode;
  }
}
