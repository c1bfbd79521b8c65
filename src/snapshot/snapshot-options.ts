// What `snapshot()` takes and returns, for a repository directory and for one in object storage alike.

import type { BackupOptions, BackupResult } from '../backup/backup.js';
import type { S3Options } from '../s3/settings.js';
import type { HookOutcome } from './hooks.js';

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
  /** With an `s3://bucket/prefix` repository: endpoint, region, profile and concurrency. @default the AWS environment */
  s3?: S3Options;
}

/** A snapshot as a backup reports it, plus where it is in its repository. */
export interface SnapshotResult extends Omit<BackupResult, 'command' | 'linkSource' | 'index'> {
  command: 'snapshot';
  repository: string;
  id: string;
  /** What the manifest records about the index; in object storage, `path` is the index object's location. */
  index: { path: string; entries: number; sha256: string };
  /** In object storage: what this snapshot uploaded (data objects, and the index's stored bytes). */
  uploaded?: { bytes: number; objects: number; indexBytes: number };
  /** The snapshot unchanged files were linked from (the newest complete one); null for a full copy. */
  linkSource: { id: string; path: string; createdAt: string } | null;
  /** What killed snapshots and prunes had left in the repository, removed before this one started. */
  removedLeftovers: string[];
  /** The hooks that ran, in order, with how they ended. */
  hooks: HookOutcome[];
}
