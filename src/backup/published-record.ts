// The proof `--force` asks for before it replaces a destination: a backup records, in its own metadata folder,
// where statesnap published it and which directory that was (inode and birth time; rename(2) keeps both). Only
// the directory statesnap published at that very path matches: a copy, a backup moved there, and a store
// that Oxios restored from a backup (its restore copies `.statesnap/` into the store) do not.
// The device number is left out on purpose: NFS, btrfs and overlayfs number devices at mount time, so it
// changes across reboots, and the path already names the filesystem.

import {
  type BigIntStats,
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  readSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describeCause, systemErrorCode } from '../core/errors.js';
import { META_DIR } from '../format/manifest.js';

export const PUBLISHED_FILE = `${META_DIR}/published.json`;

interface PublishedRecord {
  path: string;
  /** Decimal digits. */
  ino: string;
  birthtime_ns: string;
}

const DIGITS = /^\d+$/;

/**
 * `data` if it is exactly a record (these three strings, no other key), else null. Checked by hand: every
 * backup loads this module, and the schema library would add a sixth to a small backup's start-up.
 */
function asRecord(data: unknown): PublishedRecord | null {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return null;
  const { path, ino, birthtime_ns: birthtime, ...others } = data as Record<string, unknown>;
  if (Object.keys(others).length > 0 || typeof path !== 'string') return null;
  if (typeof ino !== 'string' || !DIGITS.test(ino)) return null;
  if (typeof birthtime !== 'string' || !DIGITS.test(birthtime)) return null;
  return { path, ino, birthtime_ns: birthtime };
}

// Far more than a record takes; a bigger file is not one.
const RECORD_MAX_BYTES = 4096;

function recordOf(path: string, stats: BigIntStats): PublishedRecord {
  return { path, ino: stats.ino.toString(), birthtime_ns: stats.birthtimeNs.toString() };
}

/** Writes the record into the finished tree `tree`, which is about to be renamed to `dest`. */
export function writePublishedRecord(tree: string, dest: string): void {
  const record = recordOf(dest, lstatSync(tree, { bigint: true }));
  writeFileSync(join(tree, PUBLISHED_FILE), `${JSON.stringify(record)}\n`, { flag: 'wx', mode: 0o644 });
}

/** The record in the directory `dir`, or why there is none that can be read. */
function readPublishedRecord(dir: string): PublishedRecord | string {
  const path = join(dir, PUBLISHED_FILE);
  let fd: number;
  try {
    // Without following a link and without blocking: a FIFO planted there must not hang the run.
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = systemErrorCode(error);
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') {
      return 'it has no record of being published there (it is a store, or a backup made by Oxios or by an older statesnap)';
    }
    return `its record ${path} cannot be read (${describeCause(error)})`;
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile() || stats.size > RECORD_MAX_BYTES) return `its record ${path} is not a record`;
    const buffer = Buffer.alloc(stats.size);
    const length = readSync(fd, buffer, 0, stats.size, 0);
    const record = asRecord(JSON.parse(buffer.toString('utf8', 0, length)));
    return record ?? `its record ${path} is not a record`;
  } catch (error) {
    return `its record ${path} cannot be read (${describeCause(error)})`;
  } finally {
    closeSync(fd);
  }
}

function kindOf(stats: BigIntStats): string {
  if (stats.isSymbolicLink()) return 'a symlink';
  if (stats.isFile()) return 'a file';
  return 'not a directory';
}

/**
 * Why the entry at `path` is not the backup statesnap published at `publishedAs` (by default `path` itself;
 * a backup renamed aside is checked against where it was), or null when it is, or when nothing is there.
 */
export function whyNotReplaceable(path: string, publishedAs = path): string | null {
  const stats = lstatSync(path, { bigint: true, throwIfNoEntry: false });
  if (stats === undefined) return null;
  if (!stats.isDirectory()) return `it is ${kindOf(stats)}, not a backup`;
  const record = readPublishedRecord(path);
  if (typeof record === 'string') return record;
  if (record.path !== publishedAs) {
    return `its record says statesnap published it at ${record.path} (it was moved or copied here, or is a store restored from that backup)`;
  }
  const actual = recordOf(publishedAs, stats);
  if (record.ino !== actual.ino || record.birthtime_ns !== actual.birthtime_ns) {
    return 'it is not the directory statesnap published there (it is a copy of that backup, or a store restored from it)';
  }
  return null;
}
