// The repository lock: one exclusive lock that `snapshot` and `prune` take, so two never work on one repository
// at once. restic's create-then-check protocol: each contender writes its own uniquely named lock file, then
// looks for others; stale ones (their owner is gone) are removed by their own names, so a live lock is never
// replaced or removed by someone breaking a stale one.

import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  abortError,
  describeCause,
  StatesnapError,
  systemErrorCode,
  throwIfAborted,
} from '../core/errors.js';
import { TOOL_VERSION } from '../core/options.js';
import { describeOwner, type Owner, type OwnerState, ownerState, thisProcess } from '../core/owner.js';
import { pauseAt } from '../core/test-hooks.js';
import { LOCKS_DIR } from '../format/snapshot-id.js';
import { removeLeftovers } from './repository.js';

export type LockedOperation = 'snapshot' | 'prune';

const LOCK_SUFFIX = '.lock';
// Two contenders that start together may both back off; random delays make one of them win the next round.
const RETRY_MIN_MS = 50;
const RETRY_SPREAD_MS = 200;

interface LockRecord {
  statesnap_lock: 1;
  operation: LockedOperation;
  owner: Owner;
  created_at: string;
  tool_version: string;
}

/** Another lock found in the repository, and whether its owner may still run. */
export interface LockHolder {
  file: string;
  /** Null when the file cannot be read as a lock: treated as live, a person decides. */
  operation: LockedOperation | null;
  owner: Owner | null;
  createdAt: string | null;
  state: OwnerState;
}

function readHolder(file: string): LockHolder {
  try {
    const record = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockRecord>;
    const owner = record.owner;
    if (record.statesnap_lock !== 1 || typeof owner?.pid !== 'number')
      throw new Error('not a statesnap lock');
    return {
      file,
      operation: record.operation ?? null,
      owner,
      createdAt: record.created_at ?? null,
      state: ownerState(owner),
    };
  } catch {
    return { file, operation: null, owner: null, createdAt: null, state: 'unknown' };
  }
}

/** Every lock file of the repository but `except`, each with its owner's state. */
export function readLockHolders(repo: string, except?: string): LockHolder[] {
  let names: string[];
  try {
    names = readdirSync(join(repo, LOCKS_DIR));
  } catch {
    return [];
  }
  return names
    .filter((name) => name.endsWith(LOCK_SUFFIX) && !name.startsWith('.'))
    .map((name) => join(repo, LOCKS_DIR, name))
    .filter((file) => file !== except)
    .map(readHolder);
}

/** `prune by pid 123 (started …) since 2026-11-30T02:00:00Z`, or what is known of an unreadable lock. */
export function describeHolder(holder: LockHolder): string {
  if (holder.owner === null) return `an unreadable lock file ${holder.file}`;
  const since = holder.createdAt === null ? '' : ` since ${holder.createdAt}`;
  return `${holder.operation ?? 'a run'} by ${describeOwner(holder.owner)}${since}`;
}

function removeIfPresent(file: string): void {
  try {
    unlinkSync(file);
  } catch (error) {
    if (systemErrorCode(error) !== 'ENOENT') throw error;
  }
}

/** Writes this process's lock file under a temporary name and renames it: no one ever reads half of one. */
function writeLockFile(repo: string, operation: LockedOperation): string {
  const dir = join(repo, LOCKS_DIR);
  mkdirSync(dir, { recursive: true });
  const owner = thisProcess();
  const name = `${owner.host}-${owner.pid}-${randomBytes(4).toString('hex')}${LOCK_SUFFIX}`;
  const record: LockRecord = {
    statesnap_lock: 1,
    operation,
    owner,
    created_at: new Date().toISOString(),
    tool_version: TOOL_VERSION,
  };
  const temp = join(dir, `.${name}.tmp`);
  const fd = openSync(temp, 'wx', 0o644);
  try {
    writeSync(fd, `${JSON.stringify(record)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, join(dir, name));
  return join(dir, name);
}

function busy(repo: string, holder: LockHolder, waited: boolean): StatesnapError {
  const judged =
    holder.state === 'unknown'
      ? `; it cannot be checked from here: if you know no statesnap runs on this repository, remove ${holder.file}`
      : '';
  const advice = waited
    ? 'it did not finish in the --wait time'
    : 'try again later, or pass --wait <duration>';
  return new StatesnapError(
    'ERR_REPO_BUSY',
    `repository ${repo} is busy: ${describeHolder(holder)} holds its lock (${advice})${judged}`,
    { path: repo },
  );
}

export class RepositoryLock {
  readonly #file: string;
  #released = false;

  private constructor(file: string) {
    this.#file = file;
  }

  /**
   * Takes the repository's lock for `operation`, removing stale locks on the way. Another live lock fails
   * with ERR_REPO_BUSY, or, with `waitMs`, is waited for until that time has passed.
   */
  static async acquire(
    repo: string,
    operation: LockedOperation,
    options: { waitMs: number; signal: AbortSignal },
  ): Promise<RepositoryLock> {
    const deadline = Date.now() + options.waitMs;
    for (;;) {
      throwIfAborted(options.signal, repo);
      let file: string;
      try {
        file = writeLockFile(repo, operation);
      } catch (error) {
        throw new StatesnapError(
          'ERR_REPO_INVALID',
          `cannot lock repository ${repo}: ${describeCause(error)}`,
          {
            path: repo,
            cause: error,
          },
        );
      }
      const live = readLockHolders(repo, file).filter((holder) => {
        if (holder.state !== 'gone') return true;
        removeIfPresent(holder.file);
        return false;
      });
      if (live.length === 0) return new RepositoryLock(file);
      removeIfPresent(file);
      if (Date.now() >= deadline) throw busy(repo, live[0]!, options.waitMs > 0);
      try {
        await sleep(RETRY_MIN_MS + Math.random() * RETRY_SPREAD_MS, undefined, { signal: options.signal });
      } catch {
        throw abortError(options.signal, repo);
      }
    }
  }

  /** Gives the lock up; the last thing a run does, on success and on failure alike. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    removeIfPresent(this.#file);
  }
}

/** The options every locked repository operation takes. */
export interface LockWaitOptions {
  /** How long to wait for another snapshot or prune to release the lock, in ms. @default 0 (fail at once) */
  waitForLockMs?: number;
  signal?: AbortSignal;
}

/**
 * Runs `work` holding the repository's lock, after removing what killed runs left; the lock is released
 * however `work` ends. Returns what `work` returns, with the names of the leftovers removed.
 */
export async function withRepositoryLock<T>(
  repo: string,
  operation: LockedOperation,
  options: { waitMs: number; signal: AbortSignal },
  work: (removedLeftovers: string[]) => Promise<T>,
): Promise<T> {
  const lock = await RepositoryLock.acquire(repo, operation, options);
  try {
    const removed = removeLeftovers(repo);
    pauseAt?.('lock-acquired');
    return await work(removed);
  } finally {
    lock.release();
  }
}
