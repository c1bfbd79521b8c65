// Gets written data onto stable storage while the copy is still running, so the flush before the final
// rename is short. Node has no syncfs(2); `sync -f <dir>` (coreutils) is that call, run as a child process
// so the writeback of finished files overlaps the copying of the rest (a flush of 1.5 GB after the copy took
// 1.9-2.8 s; 100k per-file fsync calls would each force a journal commit: docs/performance.md).

import { spawn } from 'node:child_process';
import { closeSync, fsyncSync, openSync } from 'node:fs';
import { describeCause, StatesnapError } from './errors.js';

// Start a background flush each time this much new data has been written (and none is running). At 256 MiB a
// 220 MB store was flushed only at the end (0.35-0.4 s of a 1.3 s backup); at 64 MiB the end has ~70 ms left,
// and a 1.6 GB store is as fast as at 256 MiB.
const FLUSH_EVERY_BYTES = 64 * 1024 * 1024;

function syncFilesystem(dir: string): Promise<void> {
  // `-f` (syncfs) flushes only the filesystem holding `dir`; other platforms' sync has no -f.
  const args = process.platform === 'linux' ? ['-f', dir] : [];
  return new Promise((resolveSync, rejectSync) => {
    const child = spawn('sync', args, { stdio: 'ignore' });
    child.on('error', rejectSync);
    child.on('exit', (code) =>
      code === 0 ? resolveSync() : rejectSync(new Error(`sync ${args.join(' ')} exited with code ${code}`)),
    );
  });
}

export class Flusher {
  readonly #dir: string;
  readonly #enabled: boolean;
  #unflushedBytes = 0;
  #running: Promise<void> | null = null;
  #failure: unknown = null;

  constructor(dir: string, enabled: boolean) {
    this.#dir = dir;
    this.#enabled = enabled;
  }

  noteWritten(bytes: number): void {
    if (!this.#enabled) return;
    this.#unflushedBytes += bytes;
    if (this.#unflushedBytes >= FLUSH_EVERY_BYTES) this.start();
  }

  /**
   * Starts flushing what is written so far, unless a flush is running: the bulk of the data then reaches the
   * disk while the caller writes what comes last (an index, a manifest), and `finish` has little left to do.
   */
  start(): void {
    if (!this.#enabled || this.#running) return;
    this.#unflushedBytes = 0;
    this.#running = syncFilesystem(this.#dir)
      .catch((error: unknown) => {
        this.#failure ??= error;
      })
      .finally(() => {
        this.#running = null;
      });
  }

  /** Flushes everything written so far; after it resolves the data is on stable storage. */
  async finish(): Promise<void> {
    if (!this.#enabled) return;
    if (this.#running) await this.#running;
    try {
      if (this.#failure) throw this.#failure;
      await syncFilesystem(this.#dir);
    } catch (error) {
      throw new StatesnapError(
        'ERR_DEST_WRITE',
        `cannot flush ${this.#dir} to disk: ${describeCause(error)}`,
        {
          path: this.#dir,
          cause: error,
        },
      );
    }
  }

  /** Makes a rename inside `dir` durable (the directory entry itself must reach the disk). */
  syncDirectory(dir: string): void {
    if (this.#enabled) syncDirectory(dir);
  }

  /** Waits for a background flush still running (on the failure path, before the tree is removed). */
  async settle(): Promise<void> {
    if (this.#running) await this.#running;
  }
}

/** Makes a rename or link inside `dir` durable: the directory entry itself must reach the disk. */
export function syncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
