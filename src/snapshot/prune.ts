// `prune()`: removes the complete snapshots a retention policy does not keep, under the repository's lock.
// Crash-safe: every doomed snapshot is first renamed to `.deleting-<id>` (out of the listing), then removed;
// a killed prune leaves only `.deleting-*` trees, which the next lock holder removes.

import { renameSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { assert, describeCause, StatesnapError, throwIfAborted } from '../core/errors.js';
import { syncDirectory } from '../core/flush.js';
import { removeTree } from '../core/fs-tree.js';
import {
  booleanOption,
  clockOption,
  integerOption,
  invalidOption,
  requirePath,
  signalOption,
} from '../core/options.js';
import { pauseAt } from '../core/test-hooks.js';
import { deletingName } from '../format/snapshot-id.js';
import { type RepositoryListing, readRepository } from '../read/repository-listing.js';
import { isS3Location } from '../s3/location.js';
import { withRepositoryLock } from './lock.js';
import type { PruneOptions, PruneResult } from './prune-options.js';
import { openRepository, updateLatestLink } from './repository.js';
import { decideRetention, type PruneDecision, policyProblem } from './retention.js';

export type { PruneDecision, PruneOptions, PruneResult } from './prune-options.js';

function freeBytes(repo: string): number {
  const stats = statfsSync(repo);
  return stats.bavail * stats.bsize;
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

/**
 * Removes the snapshots of `options.repository` that `options.policy` does not keep; in object storage, also
 * every object no remaining snapshot references (an `S3PruneResult`).
 */
export async function prune(options: PruneOptions): Promise<PruneResult> {
  if (typeof options.repository === 'string' && isS3Location(options.repository)) {
    return (await import('./s3-gc.js')).pruneS3(options);
  }
  const started = performance.now();
  const given = requirePath('repository', options.repository);
  for (const name of ['s3', 'maxUnused'] as const) {
    if (options[name] !== undefined) {
      throw invalidOption(name, 'only with an s3:// repository', JSON.stringify(options[name]));
    }
  }
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
