// The per-target lock every restore holds, and the last step of a replace restore and its recovery. The lock is
// the journal beside the target, created with link() (which fails if one exists); for the swap it is rewritten
// to name the staging tree and the rollback copy, then two renames swap them in (target → rollback, staging →
// target). A run killed anywhere in between is finished from the journal by the next restore or `recover`.

import {
  closeSync,
  fsyncSync,
  linkSync,
  lstatSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { describeCause, outOfResourcesAt, StatesnapError, systemErrorCode } from '../core/errors.js';
import { Flusher } from '../core/flush.js';
import { entryExists, removeTree } from '../core/fs-tree.js';
import {
  describeOwner,
  formatOwner,
  legacyOwnerState,
  type OwnerState,
  ownerState,
  parseOwner,
  thisProcess,
} from '../core/owner.js';
import { findSiblings, fixedSiblingPath, isSiblingName, siblingPath } from '../core/siblings.js';
import { pauseAt } from '../core/test-hooks.js';
import type { WarningLog } from '../core/warnings.js';
import { z } from '../core/zod.js';
import { formatZodIssues } from '../format/manifest-schema.js';

interface SwapPlan {
  target: string;
  /** The finished, flushed tree that becomes `target`. */
  staging: string;
  /** Where the previous `target` is moved: `<target>.pre-restore-<timestamp>`. */
  rollback: string;
  /** Keep the rollback copy after the swap (otherwise it is removed). */
  keep: boolean;
}

export interface RecoveryAction {
  /**
   * `swapped-in`: a staging tree became the target; `put-back-rollback`: the rollback copy became the target
   * again; `removed-rollback`: a rollback copy was removed (`keep: false`); `removed-stale`: a staging tree or
   * journal left by a killed run was removed.
   */
  action: 'swapped-in' | 'put-back-rollback' | 'removed-rollback' | 'removed-stale';
  path: string;
}

// Who holds the target, as owner.ts writes it: a pid is reused after a reboot or in a new container.
const owned = { tool: z.literal('statesnap'), version: z.literal(2), owner: z.string() };
/** Names, not paths: a journal can only ever point at siblings of its target. */
const swapFields = { staging: z.string(), rollback: z.string(), keep: z.boolean() };

const JournalSchema = z.union([
  z.strictObject({ ...owned, ...swapFields }),
  // A restore that holds the target with no swap to finish if it dies: a merge (each file is old or new), or
  // a replace still building its staging tree (debris, removed with the other stale siblings).
  z.strictObject({ ...owned, holds: z.enum(['merge', 'replace']) }),
  // statesnap 0.1 named the owner of a swap by its pid alone.
  z.strictObject({
    tool: z.literal('statesnap'),
    version: z.literal(1),
    pid: z.number().int().positive(),
    ...swapFields,
  }),
]);

type Journal = z.infer<typeof JournalSchema>;

function journalPath(target: string): string {
  return fixedSiblingPath(target, '.restore-journal');
}

/** `<target>.pre-restore-<UTC timestamp>`, unique beside the target. */
export function rollbackPathFor(target: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[:]/g, '-');
  const path = fixedSiblingPath(target, `.pre-restore-${stamp}`);
  return entryExists(path) ? fixedSiblingPath(target, `.pre-restore-${stamp}-${process.pid}`) : path;
}

/** Whether the restore that wrote a journal may still run, and who it is, for messages. */
export interface JournalOwner {
  state: OwnerState;
  text: string;
}

function recoveryNeeded(target: string, message: string, cause?: unknown): StatesnapError {
  return new StatesnapError('ERR_RECOVERY_NEEDED', `${message}; then run \`statesnap recover ${target}\``, {
    path: target,
    cause,
  });
}

// `recover` reads the same journal: where the journal itself is the trouble, the message says what to do about
// it first, or `recover` would only say the same again.
const NOT_A_JOURNAL = 'move it away if it is not a statesnap journal';

function readJournal(target: string): { plan: SwapPlan | null; owner: JournalOwner } | null {
  const path = journalPath(target);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = systemErrorCode(error);
    if (code === 'ENOENT') return null;
    const outOfResources = outOfResourcesAt(path, error);
    if (outOfResources) throw outOfResources;
    const remedy =
      code === 'EACCES' || code === 'EPERM' ? 'switch to the user who ran that restore' : NOT_A_JOURNAL;
    throw recoveryNeeded(
      target,
      `cannot read restore journal ${path} (${describeCause(error)}): ${remedy}`,
      error,
    );
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw recoveryNeeded(
      target,
      `restore journal ${path} is not valid JSON (${describeCause(error)}): ${NOT_A_JOURNAL}`,
      error,
    );
  }
  const parsed = JournalSchema.safeParse(data);
  if (!parsed.success) {
    throw recoveryNeeded(
      target,
      `restore journal ${path} is invalid (${formatZodIssues(parsed.error)}): ${NOT_A_JOURNAL}`,
    );
  }
  const journal = parsed.data;
  let owner: JournalOwner;
  if (journal.version === 2) {
    const recorded = parseOwner(journal.owner);
    if (recorded === null) {
      throw recoveryNeeded(
        target,
        `restore journal ${path} is invalid (owner: not an owner record): ${NOT_A_JOURNAL}`,
      );
    }
    owner = { state: ownerState(recorded), text: describeOwner(recorded) };
  } else {
    owner = {
      state: legacyOwnerState(journal.pid, lstatSync(path).mtimeMs),
      text: `pid ${journal.pid} (recorded by an older statesnap)`,
    };
  }
  if ('holds' in journal) return { owner, plan: null };
  for (const [sibling, suffix] of [
    [journal.staging, '.staging-'],
    [journal.rollback, '.pre-restore-'],
  ] as const) {
    if (!isSiblingName(target, sibling, suffix)) {
      throw recoveryNeeded(
        target,
        `restore journal ${path} names ${JSON.stringify(sibling)}, not a sibling of the target`,
      );
    }
  }
  const dir = dirname(target);
  return {
    owner,
    plan: {
      target,
      staging: join(dir, journal.staging),
      rollback: join(dir, journal.rollback),
      keep: journal.keep,
    },
  };
}

function busy(target: string, owner: JournalOwner | null): StatesnapError {
  const recover = `statesnap recover ${target}`;
  const message =
    owner === null
      ? `target ${target} is being restored by another statesnap process; wait for it to finish`
      : owner.state === 'running'
        ? `target ${target} is being restored by another statesnap process, ${owner.text}; wait for it to ` +
          `finish, or stop it and run \`${recover}\``
        : `target ${target} may be being restored by statesnap ${owner.text}, which cannot be checked from ` +
          `here; if no statesnap process is restoring it, run \`statesnap recover --break-lock ${target}\``;
  return new StatesnapError('ERR_TARGET_BUSY', message, { path: target });
}

/**
 * Refuses (ERR_TARGET_BUSY) to touch `target` while the restore that owns its journal may still run: when it
 * runs, or when it cannot be judged from here (another container or machine) unless `breakLock` says a person
 * knows it does not. Returns when the owner is gone.
 */
export function refuseLiveOwner(target: string, owner: JournalOwner, breakLock: boolean): void {
  if (owner.state === 'running' || (owner.state === 'unknown' && !breakLock)) throw busy(target, owner);
}

/** The owner of the journal another run holds, or null if it cannot be read (it may have just finished). */
function journalOwnerIfReadable(target: string): JournalOwner | null {
  try {
    return readJournal(target)?.owner ?? null;
  } catch {
    return null;
  }
}

/**
 * Writes `journal` under a temporary name, flushes it and moves it into place with `place`: the journal is
 * either absent or complete. `link` fails if another restore of the same target holds one (ERR_TARGET_BUSY).
 */
function writeJournal(
  target: string,
  journal: Journal,
  place: (temp: string, path: string) => void,
  sync: boolean,
): void {
  const path = journalPath(target);
  const temp = siblingPath(target, 'journal');
  try {
    const fd = openSync(temp, 'wx', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(journal)}\n`);
      if (sync) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    place(temp, path);
  } catch (error) {
    if (systemErrorCode(error) === 'EEXIST') throw busy(target, journalOwnerIfReadable(target));
    throw new StatesnapError(
      'ERR_TARGET_WRITE',
      `cannot write restore journal ${path}: ${describeCause(error)}`,
      {
        path,
        cause: error,
      },
    );
  } finally {
    try {
      unlinkSync(temp);
    } catch {
      // Gone already, or left for the next run, which removes a dead run's journal temp file.
    }
  }
}

/**
 * The lock a restore holds on its target from its first check to its end, so that no other restore checks or
 * writes the target meanwhile: a journal that says which mode holds it. A replace hands it to its swap.
 */
export class TargetLock {
  readonly #target: string;
  #held = true;

  constructor(target: string, mode: 'merge' | 'replace', sync: boolean) {
    this.#target = target;
    const journal: Journal = {
      tool: 'statesnap',
      version: 2,
      owner: formatOwner(thisProcess()),
      holds: mode,
    };
    writeJournal(target, journal, linkSync, sync);
  }

  /** Rewrites the held journal in place (an atomic rename over it): the lock is never free meanwhile. */
  handOver(journal: Journal, sync: boolean): void {
    writeJournal(this.#target, journal, renameSync, sync);
    this.#held = false;
  }

  /** Frees the target, unless the journal now belongs to a swap (which removes it when it is done). */
  release(): void {
    if (!this.#held) return;
    this.#held = false;
    rmSync(journalPath(this.#target), { force: true });
  }
}

/**
 * Moves a journalled swap forward from wherever a run stopped, and removes the journal: safe to run again
 * after a kill at any point. Returns the rollback copy that is left, if any.
 */
function advance(
  plan: SwapPlan,
  syncDirectory: (dir: string) => void,
  actions: RecoveryAction[],
  warnings: WarningLog,
): string | null {
  const dir = dirname(plan.target);
  if (entryExists(plan.staging)) {
    if (entryExists(plan.target)) {
      if (entryExists(plan.rollback)) {
        throw recoveryNeeded(
          plan.target,
          `cannot finish restoring ${plan.target}: it, the staging tree ${plan.staging} and the rollback copy ` +
            `${plan.rollback} all exist (was the target recreated meanwhile?); move one of them away`,
        );
      }
      renameSync(plan.target, plan.rollback);
      pauseAt?.('target-moved-aside');
    }
    renameSync(plan.staging, plan.target);
    syncDirectory(dir);
    pauseAt?.('staging-moved-in');
    actions.push({ action: 'swapped-in', path: plan.target });
  } else if (!entryExists(plan.target) && entryExists(plan.rollback)) {
    // The staging tree is gone (removed by hand) before it was swapped in: the old state is what is left.
    renameSync(plan.rollback, plan.target);
    syncDirectory(dir);
    actions.push({ action: 'put-back-rollback', path: plan.target });
  }
  let kept = entryExists(plan.rollback);
  if (kept && !plan.keep) {
    try {
      removeTree(plan.rollback);
      actions.push({ action: 'removed-rollback', path: plan.rollback });
      kept = false;
    } catch (error) {
      warnings.add(
        plan.rollback,
        'rollback-kept',
        `cannot remove the rollback copy: ${describeCause(error)}`,
      );
    }
  }
  unlinkSync(journalPath(plan.target));
  syncDirectory(dir);
  return kept ? plan.rollback : null;
}

/**
 * Swaps a finished, flushed staging tree into `plan.target` and owns the staging tree from then on. On failure
 * before the new tree is in place, the target is put back as it was, the staging tree is removed and
 * ERR_TARGET_WRITE (or ERR_TARGET_BUSY) is thrown; where that is impossible the journal stays and
 * ERR_RECOVERY_NEEDED says what to run.
 */
export function swapIn(
  plan: SwapPlan,
  lock: TargetLock,
  sync: boolean,
  syncDirectory: (dir: string) => void,
  warnings: WarningLog,
): string | null {
  try {
    lock.handOver(
      {
        tool: 'statesnap',
        version: 2,
        owner: formatOwner(thisProcess()),
        staging: basename(plan.staging),
        rollback: basename(plan.rollback),
        keep: plan.keep,
      },
      sync,
    );
    syncDirectory(dirname(plan.target));
  } catch (error) {
    removeOwnStaging(plan.staging);
    throw error;
  }
  pauseAt?.('journal-written');
  try {
    return advance(plan, syncDirectory, [], warnings);
  } catch (error) {
    if (!entryExists(plan.staging)) {
      throw recoveryNeeded(
        plan.target,
        `restored ${plan.target} but could not finish (${describeCause(error)})`,
        error,
      );
    }
    // Trees in a state this run did not make: leave everything, the journal included, for a person to look at.
    if (error instanceof StatesnapError) throw error;
    try {
      if (!entryExists(plan.target) && entryExists(plan.rollback)) renameSync(plan.rollback, plan.target);
      unlinkSync(journalPath(plan.target));
    } catch (undoError) {
      throw recoveryNeeded(
        plan.target,
        `cannot swap the restored tree into ${plan.target} (${describeCause(error)}) nor undo the swap (${describeCause(undoError)})`,
        error,
      );
    }
    removeOwnStaging(plan.staging);
    throw new StatesnapError(
      'ERR_TARGET_WRITE',
      `cannot swap the restored tree into ${plan.target}: ${describeCause(error)}`,
      { path: plan.target, cause: error },
    );
  }
}

/**
 * Whether a restore of `target` was killed after writing its journal (the next restore finishes it, or frees
 * its lock, first); ERR_TARGET_BUSY while another restore may hold the target, as the real run refuses.
 */
export function interruptedRestoreOf(target: string): boolean {
  const journal = readJournal(target);
  if (journal === null) return false;
  // What the real run would refuse (another restore may hold the target) is refused here too.
  refuseLiveOwner(target, journal.owner, false);
  return true;
}

/**
 * Removes this run's staging tree on its failure path. The error that failed the run is the one to report: a
 * tree that cannot be removed now is a dead run's staging tree to the next restore or recover, which removes it.
 */
export function removeOwnStaging(staging: string): void {
  try {
    removeTree(staging);
  } catch {}
}

export interface RecoverTargetOptions {
  sync: boolean;
  warnings: WarningLog;
  /** A person says the owner of the journal and of the staging trees, which cannot be judged from here, is gone. */
  breakLock: boolean;
}

/** Removes the staging trees and journal temp files of runs that are gone; reports the ones it must keep. */
function removeLeftovers(target: string, options: RecoverTargetOptions, actions: RecoveryAction[]): void {
  for (const sibling of findSiblings(target, ['staging', 'journal'])) {
    if (sibling.owner === 'running') continue;
    if (sibling.owner === 'unknown' && !options.breakLock) {
      options.warnings.add(
        sibling.path,
        'leftover-kept',
        `kept: left by statesnap ${sibling.ownerText}, which cannot be checked from here; if no statesnap ` +
          `process is restoring ${target}, run \`statesnap recover --break-lock ${target}\``,
      );
      continue;
    }
    try {
      removeTree(sibling.path);
      actions.push({ action: 'removed-stale', path: sibling.path });
    } catch (error) {
      options.warnings.add(
        sibling.path,
        'leftover-kept',
        `cannot remove what a killed restore left: ${describeCause(error)}`,
      );
    }
  }
}

/**
 * What a killed restore left beside `target`: a journalled swap is finished (the staging tree it names is
 * complete and flushed, so it is swapped in; without it the rollback copy is put back), and staging trees
 * and journal temp files whose owner is gone are removed. Rollback copies are kept: they are the user's.
 */
export function recoverTarget(target: string, options: RecoverTargetOptions): RecoveryAction[] {
  const actions: RecoveryAction[] = [];
  const journal = readJournal(target);
  if (journal) {
    refuseLiveOwner(target, journal.owner, options.breakLock);
    if (journal.plan === null) {
      // Its owner died holding the target, with nothing to finish: the lock is free again.
      rmSync(journalPath(target), { force: true });
      actions.push({ action: 'removed-stale', path: journalPath(target) });
    } else {
      const flusher = new Flusher(dirname(target), options.sync);
      try {
        advance(journal.plan, (dir) => flusher.syncDirectory(dir), actions, options.warnings);
      } catch (error) {
        if (error instanceof StatesnapError) throw error;
        throw recoveryNeeded(
          target,
          `cannot finish the interrupted restore of ${target}: ${describeCause(error)}`,
          error,
        );
      }
    }
  }
  removeLeftovers(target, options, actions);
  return actions;
}
