// The value schemas (zod) the manifest and the index share: permission bits, timestamps, owners, inode numbers,
// each bounded to what a filesystem can hold and a restore can apply, so an absurd value in a hostile backup is
// refused while the backup is read, never found half-way through a restore.

import { TIMESTAMP_LIMIT_NS } from '../core/protocol.js';
import { z } from '../core/zod.js';

/** Permission bits: `st_mode & 0o7777`. */
export const mode = z.number().int().min(0).max(0o7777);

// The limit is 20 digits long: anything shorter is within it, and only a 20-digit value needs a BigInt.
const LIMIT_DIGITS = TIMESTAMP_LIMIT_NS.toString().length;

/**
 * Nanoseconds since 1970 as a signed decimal string (a double cannot hold them): negative before 1970, and
 * within the range a backup records (`TIMESTAMP_LIMIT_NS`: 2^34 s either side, the years 1425 to 2514).
 */
export const timestampNs = z
  .string()
  .regex(/^-?\d{1,20}$/, 'must be a decimal count of nanoseconds')
  .refine(
    (value) => digitsOf(value) < LIMIT_DIGITS || abs(BigInt(value)) < TIMESTAMP_LIMIT_NS,
    'must lie within 2^34 s of 1970 (the years 1425 to 2514)',
  );

function digitsOf(value: string): number {
  return value.charCodeAt(0) === 0x2d ? value.length - 1 : value.length;
}

function abs(value: bigint): bigint {
  return value < 0n ? -value : value;
}

const MAX_INODE = 2n ** 64n - 1n;

/** An inode number as a decimal string: XFS and btrfs inode numbers exceed 2^53. */
export const inode = z
  .string()
  .regex(/^\d{1,20}$/, 'must be a decimal inode number')
  .refine((value) => value.length < 20 || BigInt(value) <= MAX_INODE, 'must fit in 64 bits');

/** A numeric user or group id; 2^32 - 1 is "no change" to chown, never an owner. */
export const ownerId = z.number().int().min(0).max(0xffff_fffe);
