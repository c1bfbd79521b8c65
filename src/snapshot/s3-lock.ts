// The writer lock of a repository in object storage (docs/s3-design.md, "Locks"): restic's protocol on
// objects. Each contender puts its own `locks/<token>.json`, then lists `locks/`; a live other lock makes it
// withdraw. Staleness is judged on the server's clock (LastModified) or, for a lock of this host, by its owner's
// pid and start time; a holder refreshes its object and refuses to commit once its last refresh is too old.

import { setTimeout as sleep } from 'node:timers/promises';
import { abortError, StatesnapError, throwIfAborted } from '../core/errors.js';
import { TOOL_VERSION } from '../core/options.js';
import { describeOwner, type Owner, ownerState, thisProcess } from '../core/owner.js';
import { LOCKS_PREFIX, randomToken } from '../format/s3-index.js';
import type { ObjectInfo, S3Storage } from '../s3/client.js';
import type { LockedOperation } from './lock.js';

/** A lock not refreshed for this long (by the server's clock) is stale: its holder is gone or frozen. */
export const LOCK_STALE_MS = 30 * 60_000;
/** A holder refreshes its lock this often. */
export const LOCK_REFRESH_MS = 5 * 60_000;
/** A holder whose last refresh is this old (by its monotonic clock) no longer trusts its lock: it fails. */
export const LOCK_TRUST_MS = 15 * 60_000;
const LOCK_SIZE_LIMIT = 64 * 1024;
const RETRY_MIN_MS = 50;
const RETRY_SPREAD_MS = 200;

interface S3LockRecord {
  statesnap_lock: 1;
  operation: LockedOperation;
  owner: Owner;
  created_at: string;
  tool_version: string;
}

/** Another lock object found in the repository. */
export interface S3LockHolder {
  key: string;
  lastModified: Date;
  /** Null when the object cannot be read as a lock: live until stale by time. */
  record: S3LockRecord | null;
}

function parseRecord(bytes: Buffer): S3LockRecord | null {
  try {
    const record = JSON.parse(bytes.toString('utf8')) as Partial<S3LockRecord>;
    if (record.statesnap_lock !== 1 || typeof record.owner?.pid !== 'number') return null;
    return record as S3LockRecord;
  } catch {
    return null;
  }
}

/**
 * Whether `other` is stale: its LastModified more than LOCK_STALE_MS before `ours` (both the server's clock),
 * or it belongs to a process of this host that is gone.
 */
export function isStaleLock(other: S3LockHolder, ours: Date): boolean {
  if (ours.getTime() - other.lastModified.getTime() > LOCK_STALE_MS) return true;
  return other.record !== null && ownerState(other.record.owner) === 'gone';
}

export function describeS3Holder(holder: S3LockHolder): string {
  if (holder.record === null) return `an unreadable lock object ${holder.key}`;
  const { operation, owner, created_at: createdAt } = holder.record;
  return `${operation} by ${describeOwner(owner)} since ${createdAt}`;
}

/** Every lock object of the repository, each with its record. */
export async function readS3LockHolders(storage: S3Storage): Promise<S3LockHolder[]> {
  const objects: ObjectInfo[] = [];
  for await (const object of storage.listObjects(LOCKS_PREFIX)) objects.push(object);
  const holders: S3LockHolder[] = [];
  for (const object of objects) {
    let record: S3LockRecord | null = null;
    if (object.size <= LOCK_SIZE_LIMIT) {
      try {
        record = parseRecord(await storage.getObject(object.key));
      } catch (error) {
        // Released between the listing and the read: it is no one's lock any more.
        if ((error as { code?: string }).code === 'ERR_S3_NOT_FOUND') continue;
        throw error;
      }
    }
    holders.push({ key: object.key, lastModified: object.lastModified, record });
  }
  return holders;
}

/** The writer lock of one repository, held by this process. */
export class S3RepositoryLock {
  readonly #storage: S3Storage;
  readonly key: string;
  readonly #body: Buffer;
  /** performance.now() when the last successful refresh started: it keeps counting while the process is stopped. */
  #trustedSince: number;
  #timer: NodeJS.Timeout | null = null;
  #refreshing: Promise<void> | null = null;

  private constructor(storage: S3Storage, key: string, body: Buffer, trustedSince: number) {
    this.#storage = storage;
    this.key = key;
    this.#body = body;
    this.#trustedSince = trustedSince;
  }

  /**
   * Takes the lock or fails with ERR_REPO_BUSY naming the live holder; `waitMs` retries with small random
   * delays while another live lock exists. Stale locks of others are deleted by their own keys.
   */
  static async acquire(
    storage: S3Storage,
    operation: LockedOperation,
    options: { waitMs: number; signal: AbortSignal },
  ): Promise<S3RepositoryLock> {
    const record: S3LockRecord = {
      statesnap_lock: 1,
      operation,
      owner: thisProcess(),
      created_at: new Date().toISOString(),
      tool_version: TOOL_VERSION,
    };
    const body = Buffer.from(`${JSON.stringify(record)}\n`);
    const deadline = performance.now() + options.waitMs;
    const where = storage.describe();
    for (;;) {
      throwIfAborted(options.signal, where);
      const key = `${LOCKS_PREFIX}${randomToken()}.json`;
      const started = performance.now();
      await storage.putObject(key, body, { ifAbsent: true });
      const lock = new S3RepositoryLock(storage, key, body, started);
      let live: S3LockHolder | undefined;
      try {
        live = await lock.#liveOther();
      } catch (error) {
        await lock.release();
        throw error;
      }
      if (live === undefined) {
        lock.#schedule();
        return lock;
      }
      await lock.release();
      if (performance.now() >= deadline) {
        const advice =
          options.waitMs > 0
            ? 'it did not finish in the --wait time'
            : 'try again later, or pass --wait <duration>';
        throw new StatesnapError(
          'ERR_REPO_BUSY',
          `repository ${where} is busy: ${describeS3Holder(live)} holds its lock (${advice})`,
          { path: where },
        );
      }
      try {
        await sleep(RETRY_MIN_MS + Math.random() * RETRY_SPREAD_MS, undefined, { signal: options.signal });
      } catch {
        throw abortError(options.signal, where);
      }
    }
  }

  /** The first live lock besides ours, after deleting the stale ones. */
  async #liveOther(): Promise<S3LockHolder | undefined> {
    const holders = await readS3LockHolders(this.#storage);
    const ours = holders.find((holder) => holder.key === this.key);
    // Our own object's time is the reference; if the listing does not show it yet, no other can be judged stale.
    const reference = ours?.lastModified ?? new Date(0);
    const stale: string[] = [];
    let live: S3LockHolder | undefined;
    for (const holder of holders) {
      if (holder.key === this.key) continue;
      if (ours !== undefined && isStaleLock(holder, reference)) stale.push(holder.key);
      else live ??= holder;
    }
    if (stale.length > 0) await this.#storage.deleteObjects(stale);
    return live;
  }

  #schedule(): void {
    this.#timer = setInterval(() => {
      this.#refreshing ??= this.refresh()
        .catch(() => {
          // A failed refresh leaves the lock's age growing: the commit check refuses once it is too old.
        })
        .finally(() => {
          this.#refreshing = null;
        });
    }, LOCK_REFRESH_MS);
    this.#timer.unref();
  }

  /** Puts the lock object again (a new LastModified); trusted from when this started, once it succeeds. */
  async refresh(): Promise<void> {
    const started = performance.now();
    await this.#storage.putObject(this.key, this.#body);
    this.#trustedSince = Math.max(this.#trustedSince, started);
  }

  /** Throws when the last successful refresh started LOCK_TRUST_MS or more ago: a prune may have broken it. */
  checkTrusted(): void {
    const age = performance.now() - this.#trustedSince;
    if (age >= LOCK_TRUST_MS) {
      const where = this.#storage.describe();
      throw new StatesnapError(
        'ERR_REPO_BUSY',
        `lost the lock of repository ${where}: it was last refreshed ${Math.round(age / 60_000)} min ago (the process was stopped or the server unreachable)`,
        { path: where },
      );
    }
  }

  /** Deletes our lock object; a failure leaves it to go stale (or to be judged gone by this host's next run). */
  async release(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    await this.#refreshing;
    try {
      await this.#storage.deleteObjects([this.key]);
    } catch {}
  }
}

/** Runs `body` holding the repository's writer lock, released however it ends. */
export async function withS3Lock<T>(
  storage: S3Storage,
  operation: LockedOperation,
  options: { waitMs: number; signal: AbortSignal },
  body: (lock: S3RepositoryLock) => Promise<T>,
): Promise<T> {
  const lock = await S3RepositoryLock.acquire(storage, operation, options);
  try {
    return await body(lock);
  } finally {
    await lock.release();
  }
}
