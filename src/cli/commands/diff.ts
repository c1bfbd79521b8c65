// `statesnap diff <a> <b>`: argument parsing and output only; the work is the library's diff().

import { Command } from 'clipanion';
import { type DiffCounts, type DiffResult, diff } from '../../index.js';
import { BaseCommand } from '../base-command.js';
import { listOption, pathArgument } from '../options.js';
import { escapeControls, formatNumber } from '../text.js';

function describeCounts(counts: DiffCounts): string {
  return (
    `${formatNumber(counts.added)} added, ${formatNumber(counts.removed)} removed, ` +
    `${formatNumber(counts.changed)} changed, ${formatNumber(counts.modeChanged)} mode-changed`
  );
}

const MARKS = { added: '+', removed: '-', changed: 'M', 'mode-changed': 'm' } as const;

export function describeDiff(result: DiffResult): string {
  const against = result.bKind === 'live' ? 'the live store' : 'backup';
  const lines = [
    `${escapeControls(result.a)} -> ${against} ${escapeControls(result.b)}: ${describeCounts(result.counts)}`,
  ];
  if (!result.streamed) {
    lines.push(
      `note: an index is not in canonical order (written before index format 2): ${result.a}'s was held in memory`,
    );
  }
  for (const group of result.byCategory) {
    lines.push(`${escapeControls(group.category)}: ${describeCounts(group)}`);
    for (const entry of result.entries) {
      if (entry.category === group.category)
        lines.push(`  ${MARKS[entry.change]} ${escapeControls(entry.path)}`);
    }
  }
  return lines.join('\n');
}

export class DiffCommand extends BaseCommand {
  static override paths = [['diff']];
  static override usage = Command.Usage({
    description: 'Show what changed between two backups, or between a backup and the live store',
    details: `
      Compares \`a\` (a statesnap backup: a snapshot, \`<repo>/latest\`) with \`b\` (another backup, or a live
      store: a directory without a \`manifest.json\`) and lists the entries added (\`+\`), removed (\`-\`), changed
      in content or type (\`M\`) and changed in permission bits only (\`m\`), grouped by category (the categories
      \`a\` recorded; anything else is \`(other)\`). A timestamp alone is not a change. Two backups are compared
      from their indexes, reading no file; against a live store a file whose recorded identity (size, mode,
      mtime, ctime, inode) still matches is not read either, and only files whose identity moved while size and
      mode did not are hashed (\`filesHashed\`). A rename shows as removed + added. The live store is walked as
      \`backup\` walks it, with the default excludes. Indexes in canonical order (every backup since index
      format 2 marks it) are merge-joined as they stream, so memory does not grow with the store; an older
      index is held in memory, and the output says so (\`streamed: false\`).

      Exit codes: 0 ok (differences or not), 1 failed (unreadable backup or store), 2 usage error (\`a\` made by
      Oxios, without an index).
    `,
    examples: [
      ['What changed in the store since the demo backup', '$0 diff ./demo/backup ./demo/store'],
      [
        'Between two snapshots, as JSON',
        '$0 snapshot --quiet ./demo/store ./demo/snapshots && $0 diff --json ./demo/backup ./demo/snapshots/latest',
      ],
    ],
  });

  a = pathArgument('a');
  b = pathArgument('b');
  categories = listOption(
    '--category',
    'path',
    'A folder the changes are grouped by (repeatable; default: those a recorded)',
  );

  protected async run(): Promise<number> {
    const result = await diff({
      a: this.a,
      b: this.b,
      categories: this.categories,
      signal: this.interrupt.signal,
    });
    return this.printResult(result, () => describeDiff(result));
  }
}
