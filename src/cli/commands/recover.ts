// `statesnap recover <target>`: finishes or undoes what a killed restore left beside a target.

import { Command } from 'clipanion';
import type { RecoverResult, RecoveryAction } from '../../index.js';
import { BaseCommand } from '../base-command.js';
import { flag, negatableFlag, pathArgument } from '../options.js';
import { describeWarnings } from '../text.js';

const ACTION_WORDS: Record<RecoveryAction['action'], string> = {
  'swapped-in': 'finished an interrupted restore into',
  'put-back-rollback': 'put the rollback copy back at',
  'removed-rollback': 'removed the rollback copy',
  'removed-stale': 'removed leftovers of a killed restore:',
};

export function describeRecoveryActions(actions: readonly RecoveryAction[]): string {
  return actions.map((action) => `recovered: ${ACTION_WORDS[action.action]} ${action.path}`).join('\n');
}

function describeRecover(result: RecoverResult): string {
  const lines = [
    result.actions.length === 0
      ? `nothing to recover at ${result.target}`
      : describeRecoveryActions(result.actions),
  ];
  const warnings = describeWarnings(result.warnings);
  if (warnings) lines.push(warnings);
  return lines.join('\n');
}

export class RecoverCommand extends BaseCommand {
  static override paths = [['recover']];
  static override usage = Command.Usage({
    description: 'Finish or undo a restore that was killed',
    details: `
      A replace restore swaps its staging directory in with two renames recorded in \`<target>.restore-journal\`.
      If it was killed, this command (which every restore also runs first) finishes the swap from the journal
      (the staging tree it names was complete and flushed before the journal was written) or, if that tree is
      gone, puts the rollback copy back; then it removes staging directories left by killed runs. Rollback copies
      (\`<target>.pre-restore-<timestamp>\`) are kept. It refuses while another restore of the target is running,
      and while the one that was interrupted cannot be proven gone because it ran in another container or on another
      machine: \`--break-lock\` goes ahead then, once you know no statesnap process is restoring the target.

      Exit codes: 0 ok (also when there was nothing to do), 1 failed, 2 usage error, 3 completed with warnings.
    `,
    examples: [
      ['Recover a target after a crash (here: nothing to do)', '$0 recover ./demo/store'],
      ['As JSON', '$0 recover --json ./demo/store'],
    ],
  });

  target = pathArgument('target');
  sync = negatableFlag('--sync', 'Do not flush the directory after each rename');
  breakLock = flag(
    '--break-lock',
    'Go ahead although the interrupted restore ran in another container or on another machine (only when none runs)',
  );

  protected async run(): Promise<number> {
    const { recover } = await import('../../restore/recover.js');
    const result = await recover({
      target: this.target,
      sync: this.sync,
      breakLock: this.breakLock,
      signal: this.interrupt.signal,
      onWarning: this.reportWarning(),
    });
    return this.printResult(result, () => describeRecover(result), describeWarnings(result.warnings));
  }
}
