// `recover()`: finishes or undoes what a killed restore left beside its target, the same recovery every
// restore runs first (journal.ts holds how).

import { throwIfAborted } from '../core/errors.js';
import { booleanOption, requirePath, resolveRunOptions } from '../core/options.js';
import { BACKUP_AND_TARGET, resolveWritePath } from '../core/paths.js';
import { type Warning, WarningLog, type WarningSummary } from '../core/warnings.js';
import { type RecoveryAction, recoverTarget } from './journal.js';

export interface RecoverOptions {
  /** The restore target to recover (the path given to `restore`). */
  target: string;
  /** Flush the directory after each rename. @default true */
  sync?: boolean;
  /**
   * Go ahead although the restore that was interrupted cannot be proven gone: it ran in another container
   * or on another machine (its pid means nothing here). Only when no statesnap process is restoring the
   * target; a restore shown to be running is still refused. @default false
   */
  breakLock?: boolean;
  signal?: AbortSignal;
  /** Called for each problem that did not stop the recovery (a rollback copy that could not be removed). @default no-op */
  onWarning?: (warning: Warning) => void;
}

export interface RecoverResult {
  command: 'recover';
  target: string;
  /** What was done, in order; empty when there was nothing to recover. */
  actions: RecoveryAction[];
  warnings: WarningSummary;
  /** 0, or 3 when it completed with warnings. */
  exitCode: 0 | 3;
}

/**
 * Finishes or undoes what a killed `restore` left at `target` (the same recovery every restore runs first):
 * `statesnap recover <target>`.
 */
export async function recover(options: RecoverOptions): Promise<RecoverResult> {
  const given = requirePath('target', options.target);
  const { sync, signal, onWarning } = resolveRunOptions(options);
  const breakLock = booleanOption('breakLock', options.breakLock, false);
  throwIfAborted(signal, given);
  const target = resolveWritePath(given, BACKUP_AND_TARGET);
  const warnings = new WarningLog(onWarning);
  const actions = recoverTarget(target, { sync, warnings, breakLock });
  return {
    command: 'recover',
    target,
    actions,
    warnings: warnings.summary(),
    exitCode: warnings.count > 0 ? 3 : 0,
  };
}
