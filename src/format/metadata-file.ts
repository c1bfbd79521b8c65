// Opens a backup's own files (manifest.json, the index) as what they must be: regular files, never reached
// through a symlink, opened without blocking (a FIFO would hang the reader forever) and read only up to a
// bound, so a hostile backup can neither hang nor exhaust whoever reads it.

import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { describeCause, outOfResourcesAt, type StatesnapError, systemErrorCode } from '../core/errors.js';

const OPEN_METADATA = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** How a caller words the two ways a metadata file fails, each as its own error code. */
export interface MetadataErrors {
  /** It is not there, or cannot be opened at all: `cannot read …: ENOENT …`. */
  unreadable: (message: string, cause: unknown) => StatesnapError;
  /** It is there but is not what it must be (a symlink, a FIFO, too large): `… is not a regular file`. */
  refused: (message: string, cause?: unknown) => StatesnapError;
}

function kindOf(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isSocket()) return 'a socket';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  return 'not a file';
}

/** Opens `path` for reading; it must be a regular file, and its last component is never followed. */
export function openMetadataFile(path: string, errors: MetadataErrors): number {
  let fd: number;
  try {
    fd = openSync(path, OPEN_METADATA);
  } catch (error) {
    const code = systemErrorCode(error);
    if (code === 'ELOOP') throw errors.refused('is a symlink, which is never followed', error);
    // A socket, or a device without a driver: there is nothing a backup could have put there.
    if (code === 'ENXIO') throw errors.refused('is not a regular file', error);
    throw outOfResourcesAt(path, error) ?? errors.unreadable(describeCause(error), error);
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw errors.refused(`is not a regular file (${kindOf(stats)})`);
    return fd;
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

export function formatLimit(bytes: number): string {
  return bytes >= 1 << 20 ? `${bytes / (1 << 20)} MiB` : `${bytes} bytes`;
}

const CHUNK = 64 * 1024;

/** The whole content of a metadata file of at most `limit` bytes (it may grow while it is read: still bounded). */
export function readMetadataFile(path: string, limit: number, errors: MetadataErrors): Buffer {
  const fd = openMetadataFile(path, errors);
  const tooLarge = () => errors.refused(`is larger than ${formatLimit(limit)}`);
  try {
    if (fstatSync(fd).size > limit) throw tooLarge();
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(CHUNK);
      let n: number;
      try {
        n = readSync(fd, chunk, 0, CHUNK, null);
      } catch (error) {
        throw errors.unreadable(describeCause(error), error);
      }
      if (n === 0) break;
      total += n;
      if (total > limit) throw tooLarge();
      chunks.push(chunk.subarray(0, n));
    }
    return Buffer.concat(chunks, total);
  } finally {
    closeSync(fd);
  }
}
