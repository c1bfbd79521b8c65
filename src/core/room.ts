// Whether a filesystem has room for what a run is about to write, asked (statfs) before the first write: a
// restore that cannot fit is refused up front instead of failing with ENOSPC at 90 % of its copy.

import { type StatsFs, statfsSync } from 'node:fs';
import { describeCause, StatesnapError } from './errors.js';

// The estimate counts data blocks, directory blocks and entries; it leaves out extent trees, directory index
// blocks and the filesystem's journal, and the live application keeps writing meanwhile. So a run is refused
// unless the estimate plus 1 %, plus 4 MiB (and plus 1 %, plus 64 inodes) would fit.
const MARGIN_FRACTION = 0.01;
const MARGIN_BYTES = 4 * 1024 * 1024;
const MARGIN_INODES = 64;

// An ext4 directory entry: 8 bytes of header, the name padded to 4 bytes; other filesystems are close.
const DIRENT_HEADER_BYTES = 8;

function direntBytes(name: string): number {
  return DIRENT_HEADER_BYTES + Math.ceil(Buffer.byteLength(name) / 4) * 4;
}

function mebibytes(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** What a tree about to be written will take on the filesystem holding `dir`, and whether it fits. */
export class RoomNeeded {
  readonly #dir: string;
  readonly #fs: StatsFs;
  #bytes = 0;
  #inodes = 0;

  /** Reads the filesystem's block size and free space (statfs of `dir`). */
  constructor(dir: string) {
    this.#dir = dir;
    try {
      this.#fs = statfsSync(dir);
    } catch (error) {
      throw new StatesnapError(
        'ERR_TARGET_WRITE',
        `cannot tell how much room the filesystem of ${dir} has: ${describeCause(error)}`,
        { path: dir, cause: error },
      );
    }
  }

  /** The bytes `size` bytes of data occupy: whole blocks. */
  allocated(size: number): number {
    const block = this.#fs.bsize;
    return Math.ceil(size / block) * block;
  }

  /** A new file of `size` bytes named `name`. */
  addFile(name: string, size: number): void {
    this.#bytes += this.allocated(size) + direntBytes(name);
    this.#inodes++;
  }

  /** A new directory named `name` (its first block). */
  addDirectory(name: string): void {
    this.#bytes += this.#fs.bsize + direntBytes(name);
    this.#inodes++;
  }

  /** Data written without a new entry (a file replaced by a bigger one), or a temp file's room while in flight. */
  addBytes(bytes: number): void {
    this.#bytes += bytes;
  }

  addInodes(count: number): void {
    this.#inodes += count;
  }

  /**
   * Refuses (ERR_TARGET_NO_SPACE) when what was counted, with a margin, does not fit in what the filesystem
   * has free for unprivileged users (the blocks it reserves for root are kept free). A filesystem that reports
   * no block or inode counts (some network and FUSE filesystems) is not checked on that count.
   */
  ensure(what: string): void {
    const { bsize, blocks, bavail, files, ffree } = this.#fs;
    const needBytes = Math.ceil(this.#bytes * (1 + MARGIN_FRACTION)) + MARGIN_BYTES;
    const needInodes = Math.ceil(this.#inodes * (1 + MARGIN_FRACTION)) + MARGIN_INODES;
    const freeBytes = bavail * bsize;
    const count = (n: number) => n.toLocaleString('en-US');
    const lacking = [
      blocks > 0 && needBytes > freeBytes
        ? `${mebibytes(needBytes)} needed (${mebibytes(this.#bytes)} + a margin of 1 % and ` +
          `${mebibytes(MARGIN_BYTES)}), ${mebibytes(freeBytes)} free`
        : null,
      files > 0 && needInodes > ffree
        ? `${count(needInodes)} inodes needed (${count(this.#inodes)} + a margin of 1 % and ` +
          `${MARGIN_INODES}), ${count(ffree)} free`
        : null,
    ].filter((part) => part !== null);
    if (lacking.length === 0) return;
    throw new StatesnapError(
      'ERR_TARGET_NO_SPACE',
      `cannot ${what}: not enough room on the filesystem of ${this.#dir}: ${lacking.join('; ')}`,
      { path: this.#dir },
    );
  }
}
