// `statesnap backup <source> <dest>`: argument parsing and output only; the work is the library's backup().

import { Command, Option } from 'clipanion';
import * as t from 'typanion';
import { type BackupResult, backup, DEFAULT_EXCLUDES } from '../../index.js';
import { BaseCommand } from '../base-command.js';
import { formatBytes, formatCounts } from '../progress-line.js';

export function describeBackup(result: BackupResult): string {
  const skipped = formatCounts(result.skipped);
  const lines = [
    `backup ${result.dest}: ${result.files.toLocaleString('en-US')} files, ${result.dirs.toLocaleString('en-US')} dirs, ` +
      `${formatBytes(result.bytes)} in ${(result.durationMs / 1000).toFixed(1)} s ` +
      `(${result.threads} threads, ${result.hashAlgorithm}, ${result.synced ? 'flushed to disk' : 'not flushed'})`,
    `sections: ${result.sections.map((s) => `${s.name} ${s.entry_count}`).join(', ') || 'none'}`,
  ];
  if (skipped) lines.push(`skipped: ${skipped}`);
  if (result.warnings.count > 0) {
    lines.push(
      `completed with ${result.warnings.count} warnings: ${formatCounts(result.warnings.byProblem)}`,
    );
  }
  return lines.join('\n');
}

export class BackupCommand extends BaseCommand {
  static override paths = [['backup']];
  static override usage = Command.Usage({
    description: 'Make a new backup of a state store',
    details: `
      Copies every regular file and directory of \`source\` into a new backup at \`dest\`, in parallel, with
      content hashes in a per-file index and an Oxios-compatible \`manifest.json\`. Symlinks, sockets, FIFOs and
      devices are never followed or copied: they are counted and listed in the index. In-flight temp files
      (\`${DEFAULT_EXCLUDES.join(', ')}\`) are excluded unless \`--no-default-excludes\`.

      The backup is built beside \`dest\` under a temporary name and renamed into place only once every file
      and the manifest are written and flushed: an interrupted run never leaves a \`dest\` that looks complete.

      Exit codes: 0 ok, 1 failed (no backup made), 2 usage error, 3 completed with warnings (files that
      vanished, changed while read or could not be read), 130 interrupted.
    `,
    examples: [
      ['Back up a store', '$0 backup ~/.oxios/state /backups/oxios-2026-11-23'],
      [
        'Leave out a folder, replace an older backup',
        '$0 backup --exclude "memory/episodes/**" --force state backup',
      ],
      [
        'Throwaway copy without flushing, machine-readable result',
        '$0 backup --no-sync --json state /tmp/copy',
      ],
    ],
  });

  source = Option.String({ name: 'source' });
  dest = Option.String({ name: 'dest' });
  exclude = Option.Array('--exclude', [], { description: 'Leave out paths matching this glob (repeatable)' });
  defaultExcludes = Option.Boolean('--default-excludes', true, {
    description: `Apply the default excludes (${DEFAULT_EXCLUDES.join(', ')}); --no-default-excludes turns them off`,
  });
  categories = Option.Array('--category', {
    description: 'A category counted into the manifest sections (repeatable; default: the Oxios categories)',
  });
  appVersion = Option.String('--app-version', { description: "Value of the manifest's oxios_version" });
  threads = Option.String('--threads', {
    validator: t.isNumber(),
    description: 'Worker threads (default: cores)',
  });
  force = Option.Boolean('--force', false, {
    description: 'Replace an existing dest once the new backup is complete',
  });
  sync = Option.Boolean('--sync', true, {
    description: 'Flush to disk before publishing (--no-sync for throwaway copies)',
  });
  onFileError = Option.String('--on-file-error', 'warn', {
    validator: t.isEnum(['warn', 'abort'] as const),
    description: 'An unreadable source file: warn (skip it, exit 3) or abort the backup',
  });

  protected async run(): Promise<number> {
    const progress = this.progressLine();
    const result = await backup({
      source: this.source,
      dest: this.dest,
      exclude: this.exclude,
      defaultExcludes: this.defaultExcludes,
      categories: this.categories,
      appVersion: this.appVersion,
      threads: this.threads,
      force: this.force,
      sync: this.sync,
      onFileError: this.onFileError,
      signal: this.interrupt.signal,
      onProgress: (p) =>
        progress.update({
          label: p.phase === 'copying' ? 'copying' : 'finishing',
          filesDone: p.filesDone,
          bytesDone: p.bytesDone,
          filesTotal: p.filesPlanned,
          bytesTotal: p.bytesPlanned,
          totalKnown: p.planningDone,
        }),
      onWarning: this.reportWarning(progress),
    });
    progress.clear();
    this.printResult(result, () => describeBackup(result));
    return result.exitCode;
  }
}
