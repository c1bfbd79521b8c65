// The value schemas (zod) the manifest and the index share: permission bits, timestamps, owners, inode numbers,
// each bounded to what a filesystem can hold and a restore can apply, so an absurd value in a hostile backup is
// refused while the backup is read, never found half-way through a restore.

import { TIMESTAMP_LIMIT_NS } from '../core/protocol.js';
import { z } from '../core/zod.js';

/** Permission bits: `st_mode & 0o7777`. */
export const mode = z.number().int().min(0).max(0o7777);

// The checks below are each field's schema as a plain predicate: what the index reader's fast path for the
// common line applies (a schema parse per line cost more than the rest of reading it); a line it does not
// accept goes through the schemas, which accept or explain.

export function isMode(value: unknown): boolean {
  return Number.isSafeInteger(value) && (value as number) >= 0 && (value as number) <= 0o7777;
}

export function isOwnerId(value: unknown): boolean {
  return Number.isSafeInteger(value) && (value as number) >= 0 && (value as number) <= 0xffff_fffe;
}

const TIMESTAMP_TEXT = /^-?\d{1,20}$/;
const INODE_TEXT = /^\d{1,20}$/;

export function isTimestampNs(value: unknown): boolean {
  return typeof value === 'string' && TIMESTAMP_TEXT.test(value) && withinTimestampLimit(value);
}

export function isInode(value: unknown): boolean {
  return typeof value === 'string' && INODE_TEXT.test(value) && fitsInode(value);
}

// The limit is 20 digits long: anything shorter is within it, and only a 20-digit value needs a BigInt.
const LIMIT_DIGITS = TIMESTAMP_LIMIT_NS.toString().length;

/**
 * Nanoseconds since 1970 as a signed decimal string (a double cannot hold them): negative before 1970, and
 * within the range a backup records (`TIMESTAMP_LIMIT_NS`: 2^34 s either side, the years 1425 to 2514).
 */
export const timestampNs = z
  .string()
  .regex(TIMESTAMP_TEXT, 'must be a decimal count of nanoseconds')
  .refine(withinTimestampLimit, 'must lie within 2^34 s of 1970 (the years 1425 to 2514)');

function withinTimestampLimit(value: string): boolean {
  return digitsOf(value) < LIMIT_DIGITS || abs(BigInt(value)) < TIMESTAMP_LIMIT_NS;
}

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
  .regex(INODE_TEXT, 'must be a decimal inode number')
  .refine(fitsInode, 'must fit in 64 bits');

function fitsInode(value: string): boolean {
  return value.length < 20 || BigInt(value) <= MAX_INODE;
}

/** A numeric user or group id; 2^32 - 1 is "no change" to chown, never an owner. */
export const ownerId = z.number().int().min(0).max(0xffff_fffe);
