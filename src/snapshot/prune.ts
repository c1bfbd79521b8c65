// `prune()`: removes the complete snapshots a retention policy does not keep, under the repository's lock.
// Crash-safe: every doomed snapshot is first renamed to `.deleting-<id>` (out of the listing), then removed;
// a killed prune leaves only `.deleting-*` trees, which the next lock holder removes.

import { renameSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { assert, describeCause, StatesnapError, throwIfAborted } from '../core/errors.js';
import { syncDirectory } from '../core/flush.js';
import { removeTree } from '../core/fs-tree.js';
import { booleanOption, clockOption, integerOption, requirePath, signalOption } from '../core/options.js';
import { pauseAt } from '../core/test-hooks.js';
import type { LockWaitOptions } from './lock.js';
import { withRepositoryLock } from './lock.js';
import {
  type ForeignEntry,
  openRepository,
  type RepositoryListing,
  readRepository,
  updateLatestLink,
} from './repository.js';
import {
  applyRetention,
  type DatedSnapshot,
  type KeepReason,
  policyProblem,
  type RetentionPolicy,
} from './retention.js';
import { deletingName } from './snapshot-id.js';

export interface PruneOptions extends LockWaitOptions {
  repository: string;
  /** Which snapshots to keep (restic's `forget` rules); a policy without any active rule is refused. */
  policy: RetentionPolicy;
  /** Only decide: report what would be kept (and by which rule) and removed; change nothing. @default false */
  dryRun?: boolean;
  /** The clock keep-within judges "in the future" by. @default the system clock */
  now?: Date;
  /** Flush the renames to disk before removing anything. @default true */
  sync?: boolean;
}

export interface PruneDecision {
  id: string;
  /** When the snapshot started (its id's second), UTC. */
  time: string;
  keep: boolean;
  /** Every rule that kept it, with its bucket; empty when it goes. */
  reasons: KeepReason[];
}

export interface PruneResult {
  command: 'prune';
  repository: string;
  dryRun: boolean;
  /** Every complete snapshot, newest first, with the decision. */
  snapshots: PruneDecision[];
  kept: string[];
  /** Removed (in a dry run: would be removed). */
  removed: string[];
  /** Free space gained on the repository's filesystem (after minus before); null in a dry run. */
  bytesFreed: number | null;
  /** What killed snapshots and prunes had left, removed first; empty in a dry run. */
  removedLeftovers: string[];
  /** Entries that are not snapshots: never removed. */
  foreign: ForeignEntry[];
  durationMs: number;
  exitCode: 0;
}

function freeBytes(repo: string): number {
  const stats = statfsSync(repo);
  return stats.bavail * stats.bsize;
}

/** The policy's decision for each snapshot, newest first: shared by the local and the S3 prune. */
export function decideRetention(
  snapshots: readonly DatedSnapshot[],
  policy: RetentionPolicy,
  nowMs: number,
): PruneDecision[] {
  const dated = snapshots.map(({ id, timeMs }) => ({ id, timeMs }));
  return applyRetention(dated, policy, { nowMs }).map(({ id, timeMs, keep, reasons }) => ({
    id,
    time: new Date(timeMs).toISOString().replace('.000Z', 'Z'),
    keep,
    reasons,
  }));
}

/** Renames each doomed snapshot out of the listing, makes that durable, then removes the trees. */
function removeSnapshots(repo: string, ids: readonly string[], sync: boolean): void {
  for (const id of ids) {
    try {
      renameSync(join(repo, id), join(repo, deletingName(id)));
    } catch (error) {
      throw new StatesnapError(
        'ERR_DEST_WRITE',
        `cannot remove snapshot ${join(repo, id)}: ${describeCause(error)}`,
        { path: join(repo, id), cause: error },
      );
    }
  }
  if (sync) syncDirectory(repo);
  updateLatestLink(readRepository(repo));
  pauseAt?.('prune-renamed');
  for (const id of ids) removeTree(join(repo, deletingName(id)));
}

/** Removes the snapshots of `options.repository` that `options.policy` does not keep. */
export async function prune(options: PruneOptions): Promise<PruneResult> {
  const started = performance.now();
  const given = requirePath('repository', options.repository);
  const policy = options.policy;
  const problem = policyProblem(policy ?? {});
  if (problem !== null) throw new StatesnapError('ERR_INVALID_OPTION', problem.message);
  const dryRun = booleanOption('dryRun', options.dryRun, false);
  const sync = booleanOption('sync', options.sync, true);
  const waitMs = integerOption('waitForLockMs', options.waitForLockMs, 0, 0, 2 ** 31 - 1);
  const clock = clockOption('now', options.now);
  const signal = signalOption(options.signal);
  const repo = openRepository(given, { create: false });
  throwIfAborted(signal, repo);
  const result = (
    listing: RepositoryListing,
    decisions: PruneDecision[],
    made: Pick<PruneResult, 'bytesFreed' | 'removedLeftovers'> = { bytesFreed: null, removedLeftovers: [] },
  ): PruneResult => ({
    command: 'prune',
    repository: repo,
    dryRun,
    snapshots: decisions,
    kept: decisions.filter((decision) => decision.keep).map((decision) => decision.id),
    removed: decisions.filter((decision) => !decision.keep).map((decision) => decision.id),
    ...made,
    foreign: listing.foreign,
    exitCode: 0,
    durationMs: Math.round(performance.now() - started),
  });
  if (dryRun) {
    const listing = readRepository(repo);
    return result(listing, decideRetention(listing.snapshots, policy, clock()));
  }
  return withRepositoryLock(repo, 'prune', { waitMs, signal }, async (removedLeftovers) => {
    const listing = readRepository(repo);
    const decisions = decideRetention(listing.snapshots, policy, clock());
    const newest = listing.snapshots.at(-1);
    assert(
      newest === undefined || decisions.some((decision) => decision.id === newest.id && decision.keep),
      'a retention policy would remove the newest snapshot',
    );
    throwIfAborted(signal, repo);
    const before = freeBytes(repo);
    const doomed = decisions.filter((decision) => !decision.keep).map((decision) => decision.id);
    removeSnapshots(repo, doomed, sync);
    const bytesFreed = Math.max(0, freeBytes(repo) - before);
    return result(listing, decisions, { bytesFreed, removedLeftovers });
  });
}
