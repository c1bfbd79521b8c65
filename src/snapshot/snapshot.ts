// `snapshot()`: a backup of a store into a snapshot repository, under the repository's lock: built as
// `.partial-<id>` by the backup pipeline, published by one rename to `<id>`, then `latest` follows it.

import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { type BackupOptions, type BackupResult, backupSnapshot } from '../backup/backup.js';
import { StatesnapError } from '../core/errors.js';
import { clockOption, integerOption, requirePath, signalOption } from '../core/options.js';
import { resolvePaths } from '../core/paths.js';
import { withRepositoryLock } from './lock.js';
import { type CompleteSnapshot, openRepository, readRepository, updateLatestLink } from './repository.js';
import { idsInUse, inProgressName, newSnapshotId } from './snapshot-id.js';

export interface SnapshotOptions
  extends Omit<BackupOptions, 'dest' | 'force' | 'dryRun' | 'mkpath' | 'estimate'> {
  /** The repository: made one if it is missing or an empty directory; any other directory is refused. */
  repository: string;
  /** How long to wait for another snapshot or prune of the repository to finish, in ms. @default 0 */
  waitForLockMs?: number;
  /** The clock the snapshot's id is taken from. @default the system clock */
  now?: Date;
}

/** A snapshot as a backup reports it, plus where it is in its repository. */
export interface SnapshotResult extends Omit<BackupResult, 'command'> {
  command: 'snapshot';
  repository: string;
  id: string;
  /** The snapshot's unchanged files were linked from this one; null for a full copy. */
  linkSource: { id: string; path: string } | null;
  /** What killed snapshots and prunes had left in the repository, removed before this one started. */
  removedLeftovers: string[];
}

const REPOSITORY_ROLES = { read: 'source', write: 'repository', unusableParent: 'ERR_REPO_INVALID' } as const;
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

/** The previous totals as the progress estimate, from the first second. */
function estimateFrom(previous: CompleteSnapshot | undefined): BackupOptions['estimate'] {
  const totals = previous?.manifest.statesnap?.totals;
  return totals && { files: totals.files, bytes: totals.bytes };
}

/** Makes a new snapshot of `options.source` in `options.repository`. */
export async function snapshot(options: SnapshotOptions): Promise<SnapshotResult> {
  const { repository, waitForLockMs, now, ...backupOptions } = options;
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
    const { command: _, ...made } = await backupSnapshot(
      { ...backupOptions, dest: join(repo, id), dryRun: false, estimate: estimateFrom(previous) },
      { partial: join(repo, inProgressName(id)), id },
    );
    updateLatestLink(readRepository(repo));
    return { command: 'snapshot', repository: repo, id, linkSource: null, removedLeftovers, ...made };
  });
}
