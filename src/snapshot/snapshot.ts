// `snapshot()`: a backup of a store into a snapshot repository, under the repository's lock: built as
// `.partial-<id>` by the backup pipeline, published by one rename to `<id>`, then `latest` follows it.

import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { type BackupOptions, type BackupResult, backupSnapshot } from '../backup/backup.js';
import { StatesnapError } from '../core/errors.js';
import {
  booleanOption,
  clockOption,
  integerOption,
  invalidOption,
  requirePath,
  signalOption,
} from '../core/options.js';
import { type PathRoles, resolvePaths } from '../core/paths.js';
import { idsInUse, inProgressName, newSnapshotId } from '../format/snapshot-id.js';
import { type CompleteSnapshot, readRepository } from '../read/repository-listing.js';
import { type HookOutcome, runHook } from './hooks.js';
import { withRepositoryLock } from './lock.js';
import { openRepository, updateLatestLink } from './repository.js';

export interface SnapshotOptions
  extends Omit<BackupOptions, 'dest' | 'force' | 'dryRun' | 'mkpath' | 'estimate' | 'linkDest'> {
  /** The repository: made one if it is missing or an empty directory; any other directory is refused. */
  repository: string;
  /**
   * Copy every file, instead of hard-linking the ones unchanged since the newest complete snapshot (what
   * `backup --link-dest` does). @default false
   */
  full?: boolean;
  /** How long to wait for another snapshot or prune of the repository to finish, in ms. @default 0 */
  waitForLockMs?: number;
  /** The clock the snapshot's id is taken from. @default the system clock */
  now?: Date;
  /**
   * A shell command run once the lock is taken and the id chosen, before the store is read (to pause the
   * application). Failing (non-zero exit, timeout) fails the snapshot with ERR_HOOK_FAILED before anything
   * is written. @default none
   */
  execBefore?: string;
  /**
   * A shell command run after the snapshot, whether it succeeded, failed or was interrupted
   * (`STATESNAP_STATUS` says which). Its failure is a warning (exit 3) after a success, and is added to the
   * error after a failure. @default none
   */
  execAfter?: string;
  /** The longest each hook may run before its process group gets SIGTERM, in ms. @default 300000 */
  execTimeoutMs?: number;
}

/** A snapshot as a backup reports it, plus where it is in its repository. */
export interface SnapshotResult extends Omit<BackupResult, 'command' | 'linkSource'> {
  command: 'snapshot';
  repository: string;
  id: string;
  /** The snapshot unchanged files were linked from (the newest complete one); null for a full copy. */
  linkSource: { id: string; path: string; createdAt: string } | null;
  /** What killed snapshots and prunes had left in the repository, removed before this one started. */
  removedLeftovers: string[];
  /** The hooks that ran, in order, with how they ended. */
  hooks: HookOutcome[];
}

const REPOSITORY_ROLES: PathRoles = {
  read: 'source',
  write: 'repository',
  unusable: 'ERR_REPO_INVALID',
  overlap: 'ERR_DEST_OVERLAPS_SOURCE',
};
// At most 100 snapshots fit in one second of ids; more wait for the next second.
const SECOND_MS = 1000;

/** A free id for a snapshot starting now; when the current second is full, the next one's. */
async function chooseId(repo: string, clock: () => number, injected: boolean): Promise<string> {
  for (;;) {
    const taken = idsInUse(readdirSync(repo));
    const id = newSnapshotId(clock(), (candidate) => taken.has(candidate));
    if (id !== null) return id;
    if (injected) {
      throw new StatesnapError(
        'ERR_REPO_BUSY',
        `repository ${repo} already has 100 snapshots in that second`,
        {
          path: repo,
        },
      );
    }
    await new Promise((wake) => setTimeout(wake, SECOND_MS - (Date.now() % SECOND_MS)));
  }
}

const DEFAULT_HOOK_TIMEOUT_MS = 5 * 60_000;

function commandOption(name: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.trim() === '')
    throw invalidOption(name, 'a non-empty command', value);
  return value;
}

function hookFailed(outcome: HookOutcome): StatesnapError {
  return new StatesnapError('ERR_HOOK_FAILED', `hook \`${outcome.command}\` failed: ${outcome.status}`);
}

/** The run's own error, with the after-hook's failure added to its message. */
function withAfterHookFailure(error: unknown, outcome: HookOutcome): unknown {
  if (!(error instanceof StatesnapError)) return error;
  const message = `${error.message}; the after-hook \`${outcome.command}\` failed too: ${outcome.status}`;
  return new StatesnapError(error.code, message, { path: error.path, cause: error.cause });
}

/** The previous totals as the progress estimate, from the first second. */
function estimateFrom(previous: CompleteSnapshot | undefined): BackupOptions['estimate'] {
  const totals = previous?.manifest.statesnap?.totals;
  return totals && { files: totals.files, bytes: totals.bytes };
}

/** Makes a new snapshot of `options.source` in `options.repository`. */
export async function snapshot(options: SnapshotOptions): Promise<SnapshotResult> {
  const { repository, full, waitForLockMs, now, execBefore, execAfter, execTimeoutMs, ...backupOptions } =
    options;
  const fullCopy = booleanOption('full', full, false);
  const hooks = {
    before: commandOption('execBefore', execBefore),
    after: commandOption('execAfter', execAfter),
    timeoutMs: integerOption('execTimeoutMs', execTimeoutMs, DEFAULT_HOOK_TIMEOUT_MS, 1, 2 ** 31 - 1),
  };
  const given = requirePath('repository', repository);
  requirePath('source', options.source);
  const waitMs = integerOption('waitForLockMs', waitForLockMs, 0, 0, 2 ** 31 - 1);
  const clock = clockOption('now', now);
  const signal = signalOption(options.signal);
  // The repository is neither inside the source nor around it, checked before it is made a repository.
  resolvePaths(options.source, given, REPOSITORY_ROLES, { mkpath: true });
  const repo = openRepository(given, { create: true });
  return withRepositoryLock(repo, 'snapshot', { waitMs, signal }, async (removedLeftovers) => {
    const listing = readRepository(repo);
    updateLatestLink(listing);
    const previous = listing.snapshots.at(-1);
    const id = await chooseId(repo, clock, now !== undefined);
    const env = { STATESNAP_SOURCE: options.source, STATESNAP_REPOSITORY: repo, STATESNAP_SNAPSHOT_ID: id };
    const ran: HookOutcome[] = [];
    let made: BackupResult;
    try {
      if (hooks.before !== undefined) {
        const outcome = await runHook(hooks.before, env, hooks.timeoutMs);
        ran.push(outcome);
        if (!outcome.ok) throw hookFailed(outcome);
      }
      made = await backupSnapshot(
        {
          ...backupOptions,
          dest: join(repo, id),
          dryRun: false,
          linkDest: fullCopy ? undefined : previous?.path,
          estimate: estimateFrom(previous),
        },
        { partial: join(repo, inProgressName(id)), id },
      );
    } catch (error) {
      if (hooks.after === undefined) throw error;
      const status = signal.aborted ? 'interrupted' : 'failure';
      const outcome = await runHook(hooks.after, { ...env, STATESNAP_STATUS: status }, hooks.timeoutMs);
      throw outcome.ok ? error : withAfterHookFailure(error, outcome);
    }
    updateLatestLink(readRepository(repo));
    if (hooks.after !== undefined) {
      ran.push(await runHook(hooks.after, { ...env, STATESNAP_STATUS: 'success' }, hooks.timeoutMs));
    }
    const { command: _, linkSource, ...result } = made;
    const hookFailures = ran.some((outcome) => !outcome.ok);
    return {
      command: 'snapshot',
      repository: repo,
      id,
      linkSource: linkSource && previous ? { id: previous.id, ...linkSource } : null,
      removedLeftovers,
      ...result,
      hooks: ran,
      exitCode: hookFailures ? 3 : result.exitCode,
    };
  });
}
