// `statesnap backup <source> <dest>`: argument parsing and output only; the work is the library's backup().

import { Command } from 'clipanion';
import { DEFAULT_EXCLUDES } from '../../core/excludes.js';
import type { BackupPlan, BackupResult } from '../../index.js';
import { flag, pathArgument, pathOption } from '../options.js';
import { formatBytes } from '../progress-line.js';
import { SourceCommand } from '../source-options.js';
import { countOf, describeWarnings, formatCounts, formatNumber, oneLine } from '../text.js';

/** `seeds 63, memory/facts 1,802` */
export function describeSections(sections: ReadonlyArray<{ name: string; entry_count: number }>): string {
  return sections.map((s) => `${oneLine(s.name)} ${formatNumber(s.entry_count)}`).join(', ') || 'none';
}

function describePlan(plan: BackupPlan): string {
  const lines = [
    `dry run: would back up ${plan.source} into ${plan.dest}: ${countOf(plan.files, 'file')}, ` +
      `${countOf(plan.dirs, 'dir')}, ${formatBytes(plan.bytes)} (nothing was written)`,
  ];
  if (plan.createdParents.length > 0) lines.push(`would create ${plan.createdParents.join(', ')}`);
  if (plan.replacesExisting) lines.push(`would replace the existing backup at ${plan.dest}`);
  lines.push(`sections: ${describeSections(plan.sections)}`);
  const skipped = formatCounts(plan.skipped);
  if (skipped) lines.push(`would skip: ${skipped}`);
  const warnings = describeWarnings(plan.warnings);
  if (warnings) lines.push(warnings.replace(/^completed/, 'planned'));
  return lines.join('\n');
}

export function describeBackup(result: BackupResult | BackupPlan): string {
  if (result.dryRun) return describePlan(result);
  const lines = [
    `backup ${result.dest}: ${countOf(result.files, 'file')}, ${countOf(result.dirs, 'dir')}, ` +
      `${formatBytes(result.bytes)} in ${(result.durationMs / 1000).toFixed(1)} s ` +
      `(${countOf(result.threads, 'thread')}, ${result.hashAlgorithm}, ${result.synced ? 'flushed to disk' : 'not flushed'})`,
  ];
  if (result.createdParents.length > 0) lines.push(`created ${result.createdParents.join(', ')}`);
  if (result.replacedExisting) lines.push(`replaced the previous backup at ${result.dest}`);
  return [...lines, ...describeMade(result)].join('\n');
}

/** The closing lines of a finished backup or snapshot: how files got there, sections, skipped, warnings. */
export function describeMade(
  result: Omit<BackupResult, 'command' | 'linkSource' | 'index'> & { linkSource: { path: string } | null },
): string[] {
  const lines = result.linkSource ? [describeLinking(result)] : [];
  lines.push(`sections: ${describeSections(result.sections)}`);
  const skipped = formatCounts(result.skipped);
  if (skipped) lines.push(`skipped: ${skipped}`);
  const warnings = describeWarnings(result.warnings);
  if (warnings) lines.push(warnings);
  return lines;
}

/** `9,900 linked, 100 copied (12 hashed, 2 link fallbacks: EMLINK 2), 1.2 MB new, from <previous>` */
function describeLinking(result: Parameters<typeof describeMade>[0]): string {
  const { counts } = result;
  const details = [];
  if (counts.hashed > 0) details.push(`${formatNumber(counts.hashed)} hashed`);
  const fallbacks = Object.values(counts.linkFallbacks).reduce((sum, n) => sum + n, 0);
  if (fallbacks > 0) {
    details.push(`${countOf(fallbacks, 'link fallback')}: ${formatCounts(counts.linkFallbacks)}`);
  }
  if (counts.checkMismatches > 0)
    details.push(`${formatNumber(counts.checkMismatches)} link source mismatches`);
  return (
    `${formatNumber(counts.linked)} linked, ${formatNumber(counts.copied)} copied` +
    (details.length > 0 ? ` (${details.join(', ')})` : '') +
    `, ${formatBytes(result.bytesNew)} new, from ${result.linkSource?.path}`
  );
}

export class BackupCommand extends SourceCommand {
  static override paths = [['backup']];
  static override usage = Command.Usage({
    description: 'Make a new backup of a state store',
    details: `
      Copies every regular file and directory of \`source\` into a new backup at \`dest\`, in parallel, with
      content hashes in a per-file index and an Oxios-compatible \`manifest.json\`. Symlinks, sockets, FIFOs and
      devices are never followed or copied: they are counted and listed in the index. In-flight temp files
      (\`${DEFAULT_EXCLUDES.join(', ')}\`) are excluded unless \`--no-default-excludes\`.

      Patterns (\`--exclude\`, \`--include\`, \`--exclude-from\`) follow .gitignore and rsync: a pattern without a
      slash matches a name at any depth (\`*.md\` leaves out \`a/b/c.md\`); a leading slash or one inside anchors it
      at \`source\` (\`/cache\`, \`memory/episodes\`); a trailing slash matches directories only (\`tmp/\`); \`*\`
      stays within one name, \`**\` crosses folders (fast-glob syntax). A directory left out is left out whole.
      A path matching an \`--include\` pattern (or an exclude pattern written \`!pattern\`) is copied even when an
      exclude pattern matches it, whatever the order, unless a directory above it is left out. A pattern that
      matched nothing is reported on stderr and in \`unmatchedPatterns\`.

      The backup is built beside \`dest\` under a temporary name and renamed into place only once every file
      and the manifest are written and flushed: an interrupted run never leaves a \`dest\` that looks complete.
      \`--force\` replaces only a backup statesnap published at \`dest\` itself (not a copy, not a backup moved
      there, not a store or a file), and only once the new one is complete.

      With \`--link-dest <previous-backup>\` (rsync's name), a file unchanged since that backup is hard-linked
      from it instead of copied: unchanged means the same type, size, permission bits, mtime, inode and ctime
      as the previous backup's index recorded for it. A file written just before the previous backup started
      (within 2 s), or compared with a backup whose index records no inode and ctime (an older statesnap's or
      Oxios'), is read and hashed, and linked only if its hash is the same. A mode change is always a copy, so
      no older backup ever changes. The previous backup must be complete and on the same filesystem as
      \`dest\`; each backup stays complete on its own, whichever other one is deleted.
      \`--ignore-inode\`/\`--ignore-ctime\` leave those out (after the store was restored or moved);
      \`--checksum\` hashes every file that could be linked.

      \`--dry-run\` walks the source and checks \`dest\` the same way and reports what would be copied, skipped
      and replaced, writing nothing.

      Exit codes: 0 ok, 1 failed (no backup made), 2 usage error, 3 completed with warnings (files that
      vanished, changed while read or could not be read, or leftovers of other runs kept), 130 interrupted
      (SIGINT), 143 terminated (SIGTERM).
    `,
    examples: [
      ['Back up the demo store into a new backup', '$0 backup ./demo/store ./demo/backup-2'],
      [
        'Leave out a folder, replacing the backup just made',
        '$0 backup --exclude memory/episodes --force ./demo/store ./demo/backup-2',
      ],
      [
        'See what leaving out every Markdown file but the seeds would copy, without writing anything',
        "$0 backup --dry-run --exclude '*.md' --include 'seeds/*.md' ./demo/store ./demo/backup-3",
      ],
      [
        'Back up again, hard-linking every file unchanged since the demo backup instead of copying it',
        '$0 backup --link-dest ./demo/backup ./demo/store ./demo/backup-4',
      ],
      [
        'Throwaway copy without flushing, into a folder that does not exist yet, machine-readable result',
        '$0 backup --no-sync --mkpath --json ./demo/store ./demo/copies/today',
      ],
    ],
  });

  source = pathArgument('source');
  dest = pathArgument('dest');
  force = flag('--force', 'Replace the backup statesnap made at dest, once the new one is complete');
  dryRun = flag('--dry-run,-n', 'Report what would be copied, skipped and replaced; write nothing');
  mkpath = flag('--mkpath', 'Create the missing parent directories of dest');
  linkDest = pathOption(
    '--link-dest',
    'previous-backup',
    'Hard-link files unchanged since this backup instead of copying them',
  );
  ignoreInode = flag('--ignore-inode', 'With --link-dest: leave inode numbers out of the change rule');
  ignoreCtime = flag('--ignore-ctime', 'With --link-dest: leave ctimes out of the change rule');
  checksum = flag(
    '--checksum',
    'With --link-dest: hash every file that could be linked; link on equal hashes',
  );

  protected async run(): Promise<number> {
    const progress = this.progressLine(this.progress);
    const { backup } = await import('../../backup/backup.js');
    const result = await backup({
      ...this.sourceOptions(progress),
      dest: this.dest,
      force: this.force,
      dryRun: this.dryRun,
      mkpath: this.mkpath,
      linkDest: this.linkDest,
      ignoreInode: this.ignoreInode,
      ignoreCtime: this.ignoreCtime,
      checksum: this.checksum,
    });
    this.noteUnmatched(result);
    return this.printResult(result, () => describeBackup(result), describeWarnings(result.warnings));
  }
}
