// Where the suite measures by default as root: a fresh journaled ext4 on a sparse image, loop-mounted for one
// run and removed after it, so copies are timed on the kind of filesystem users have, not on whatever holds
// the temporary directory (an ext4 without a journal scans its inode tables after big deletions).

import { execFileSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { StoreBounds } from '../src/demo/generator.js';
import { run, which } from './baselines.js';

export interface ScratchFilesystem {
  /** The mount point: the store and every destination go here. */
  dir: string;
  image: string;
  device: string;
  sizeBytes: number;
  inodes: number;
  /** The loop device reads and writes the image with O_DIRECT, so its blocks are not cached twice. */
  directIo: boolean;
  /** Unmounts, detaches and deletes the image; safe to call more than once. */
  release(): Promise<void>;
}

const GiB = 1024 ** 3;
const BLOCK = 4096;
/**
 * Copies of the store alive at once: the store, a backup kept for a restore case, the restore's target; one
 * more for slack. The image is sparse, so room that is never written costs nothing.
 */
const COPIES = 4;

/** Why a fresh filesystem cannot be made here, or null when it can. */
export function scratchUnavailableReason(): string | null {
  if (process.platform !== 'linux') return `not Linux (${process.platform})`;
  if (process.getuid?.() !== 0) return 'not running as root';
  const missing = ['mkfs.ext4', 'losetup', 'mount', 'umount'].filter((tool) => which(tool) === null);
  if (missing.length > 0) return `${missing.join(', ')} not found`;
  // A container may run as root without loop devices.
  return existsSync('/dev/loop-control') ? null : 'no loop devices (/dev/loop-control)';
}

/** The image's size and inode count for a store within `bounds`: every file rounded up to whole blocks. */
export function scratchSize(bounds: StoreBounds): { sizeBytes: number; inodes: number } {
  const perCopy = bounds.bytes + bounds.entries * BLOCK;
  const sizeBytes = Math.ceil((COPIES * perCopy + GiB) / GiB) * GiB;
  return { sizeBytes, inodes: COPIES * bounds.entries + 16_384 };
}

/**
 * Makes, mounts and returns a fresh ext4 sized for `bounds`. Inode tables and the journal are written by
 * mkfs, not lazily by the kernel in the background while cases are timed.
 */
export async function mountScratch(bounds: StoreBounds): Promise<ScratchFilesystem> {
  const { sizeBytes, inodes } = scratchSize(bounds);
  const base = mkdtempSync(join(tmpdir(), 'statesnap-bench-fs-'));
  const image = join(base, 'fs.img');
  const dir = join(base, 'mnt');
  let device: string | null = null;
  let mounted = false;
  let released = false;
  const release = async (): Promise<void> => {
    if (released) return;
    released = true;
    if (mounted) await unmount(dir);
    if (device !== null) await run('losetup', ['--detach', device]);
    rmSync(base, { recursive: true, force: true });
  };
  try {
    const fd = openSync(image, 'wx');
    try {
      ftruncateSync(fd, sizeBytes);
    } finally {
      closeSync(fd);
    }
    await run('mkfs.ext4', [
      '-q',
      '-F',
      '-N',
      String(inodes),
      '-E',
      'lazy_itable_init=0,lazy_journal_init=0',
      image,
    ]);
    // Without O_DIRECT support where the image lives (tmpfs), losetup warns and attaches a cached device.
    device = execFileSync('losetup', ['--find', '--show', '--direct-io=on', image], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    const directIo = readFileSync(`/sys/block/${basename(device)}/loop/dio`, 'utf8').trim() === '1';
    mkdirSync(dir);
    await run('mount', [device, dir]);
    mounted = true;
    return { dir, image, device, sizeBytes, inodes, directIo, release };
  } catch (error) {
    await release();
    throw error;
  }
}

/** A process that was killed mid-case may hold the mount for a moment after it died: retry, then detach lazily. */
async function unmount(dir: string): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      await run('umount', [dir]);
      return;
    } catch {
      await new Promise((resolveLater) => setTimeout(resolveLater, 200 * (attempt + 1)));
    }
  }
  await run('umount', ['--lazy', dir]);
}
