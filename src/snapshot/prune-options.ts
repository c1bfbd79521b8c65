// What `prune` takes and returns, for a repository directory and for one in object storage alike; apart from
// prune.ts so the S3 prune, which prune.ts loads with import(), can name them without a cycle.

import type { ForeignEntry } from '../read/repository-listing.js';
import type { S3Options } from '../s3/settings.js';
import type { LockWaitOptions } from './lock.js';
import type { PruneDecision, RetentionPolicy } from './retention.js';

export type { PruneDecision } from './retention.js';

export interface PruneOptions extends LockWaitOptions {
  /** A repository directory, or `s3://bucket/prefix`. */
  repository: string;
  /** With an `s3://bucket/prefix` repository: endpoint, region, profile. @default the AWS environment */
  s3?: S3Options;
  /** Which snapshots to keep (restic's `forget` rules); a policy without any active rule is refused. */
  policy: RetentionPolicy;
  /** Only decide: report what would be kept (and by which rule) and removed; change nothing. @default false */
  dryRun?: boolean;
  /** The clock keep-within judges "in the future" by. @default the system clock */
  now?: Date;
  /**
   * With an `s3://bucket/prefix` repository: repack every data object more than this percentage of which no
   * remaining snapshot uses (restic's `--max-unused`), so its space comes back. @default no repack
   */
  maxUnused?: number;
  /** Flush the renames to disk before removing anything (a repository directory only). @default true */
  sync?: boolean;
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
