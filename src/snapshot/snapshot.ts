// `snapshot()`: a backup of a store into a snapshot repository, under the repository's lock: built as
// `.partial-<id>` by the backup pipeline, published by one rename to `<id>`, then `latest` follows it.

import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { type BackupOptions, backupSnapshot } from '../backup/backup.js';
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
import { isS3Location } from '../s3/location.js';
import { hooksOption, withHooks } from './hooks.js';
import { withRepositoryLock } from './lock.js';
import { type CompleteSnapshot, openRepository, readRepository, updateLatestLink } from './repository.js';
import { idsInUse, inProgressName, newSnapshotId } from './snapshot-id.js';
import type { SnapshotOptions, SnapshotResult } from './snapshot-options.js';

export type { SnapshotOptions, SnapshotResult } from './snapshot-options.js';

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

/** The previous totals as the progress estimate, from the first second. */
function estimateFrom(previous: CompleteSnapshot | undefined): BackupOptions['estimate'] {
  const totals = previous?.manifest.statesnap?.totals;
  return totals && { files: totals.files, bytes: totals.bytes };
}

/** Makes a new snapshot of `options.source` in `options.repository` (a directory, or `s3://bucket/prefix`). */
export async function snapshot(options: SnapshotOptions): Promise<SnapshotResult> {
  if (typeof options.repository === 'string' && isS3Location(options.repository)) {
    return (await import('./s3-repository.js')).snapshotToS3(options);
  }
  const { repository, full, waitForLockMs, now, execBefore, execAfter, execTimeoutMs, s3, ...backupOptions } =
    options;
  if (s3 !== undefined) throw invalidOption('s3', 'only with an s3:// repository', JSON.stringify(s3));
  const fullCopy = booleanOption('full', full, false);
  const hooks = hooksOption(options);
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
    const { made, ran } = await withHooks(
      hooks,
      env,
      signal,
      () =>
        backupSnapshot(
          {
            ...backupOptions,
            dest: join(repo, id),
            dryRun: false,
            linkDest: fullCopy ? undefined : previous?.path,
            estimate: estimateFrom(previous),
          },
          { partial: join(repo, inProgressName(id)), id },
        ),
      () => updateLatestLink(readRepository(repo)),
    );
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
