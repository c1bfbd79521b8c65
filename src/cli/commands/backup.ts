// `statesnap backup <source> <dest>`: argument parsing and output only; the work is the library's backup().

import { Command } from 'clipanion';
import { type BackupResult, backup, DEFAULT_EXCLUDES } from '../../index.js';
import { BaseCommand } from '../base-command.js';
import {
  choiceOption,
  flag,
  listOption,
  negatableFlag,
  pathArgument,
  textOption,
  threadsOption,
} from '../options.js';
import { formatBytes } from '../progress-line.js';
import { countOf, describeWarnings, formatCounts, formatNumber } from '../text.js';

/** `seeds 63, memory/facts 1,802` */
export function describeSections(sections: ReadonlyArray<{ name: string; entry_count: number }>): string {
  return sections.map((s) => `${s.name} ${formatNumber(s.entry_count)}`).join(', ') || 'none';
}

export function describeBackup(result: BackupResult): string {
  const lines = [
    `backup ${result.dest}: ${countOf(result.files, 'file')}, ${countOf(result.dirs, 'dir')}, ` +
      `${formatBytes(result.bytes)} in ${(result.durationMs / 1000).toFixed(1)} s ` +
      `(${countOf(result.threads, 'thread')}, ${result.hashAlgorithm}, ${result.synced ? 'flushed to disk' : 'not flushed'})`,
  ];
  if (result.replacedExisting) lines.push(`replaced the previous backup at ${result.dest}`);
  lines.push(`sections: ${describeSections(result.sections)}`);
  const skipped = formatCounts(result.skipped);
  if (skipped) lines.push(`skipped: ${skipped}`);
  const warnings = describeWarnings(result.warnings);
  if (warnings) lines.push(warnings);
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
      vanished, changed while read or could not be read), 130 interrupted (SIGINT),
      143 terminated (SIGTERM).
    `,
    examples: [
      ['Back up the demo store into a new backup', '$0 backup ./demo/store ./demo/backup-2'],
      [
        'Leave out a folder, replacing the backup just made',
        '$0 backup --exclude "memory/episodes/**" --force ./demo/store ./demo/backup-2',
      ],
      [
        'Throwaway copy without flushing, machine-readable result',
        '$0 backup --no-sync --json ./demo/store ./demo/copy',
      ],
    ],
  });

  source = pathArgument('source');
  dest = pathArgument('dest');
  exclude = listOption('--exclude', 'glob', 'Leave out paths matching this glob (repeatable)');
  defaultExcludes = negatableFlag(
    '--default-excludes',
    `Also copy the in-flight temp files (${DEFAULT_EXCLUDES.join(', ')}) excluded by default`,
  );
  categories = listOption(
    '--category',
    'path',
    'A folder counted into the manifest sections (repeatable; default: the Oxios categories)',
  );
  appVersion = textOption('--app-version', 'version', "The manifest's oxios_version (default: statesnap's)");
  threads = threadsOption();
  force = flag('--force', 'Replace an existing dest, once the new backup is complete');
  sync = negatableFlag('--sync', 'Do not flush to disk before publishing (for throwaway copies)');
  onFileError = choiceOption(
    '--on-file-error',
    ['warn', 'abort'],
    'warn',
    'An unreadable source file: warn (skip it, exit 3) or abort the backup',
  );

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
    return this.printResult(result, () => describeBackup(result), describeWarnings(result.warnings));
  }
}
