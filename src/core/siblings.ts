// Names and finds the work entries statesnap keeps beside a final path (a backup being built, a replaced
// backup, a restore's staging tree, its journal and rollback copy), so a later run can tell which ones a
// killed run left. A name carries its owner (owner.ts) and always fits in NAME_MAX: beside a final name too
// long for that, the name's place is taken by a short stem (a prefix of it and a hash of all of it).

import { createHash, randomBytes } from 'node:crypto';
import { lstatSync, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import {
  describeOwner,
  formatOwner,
  legacyOwnerState,
  OWNER_PATTERN,
  type OwnerState,
  ownerState,
  parseOwner,
  thisProcess,
} from './owner.js';

export type SiblingPurpose = 'partial' | 'replaced' | 'staging' | 'journal';

/** The longest file name, in bytes, on Linux and macOS filesystems. */
const NAME_MAX = 255;
// Enough of the final name that a person can still tell which entry a shortened sibling belongs to.
const STEM_PREFIX_BYTES = 64;

/** `name` cut to at most `bytes` bytes of UTF-8, never inside a character. */
function utf8Prefix(name: string, bytes: number): string {
  let length = 0;
  let end = 0;
  for (const char of name) {
    length += Buffer.byteLength(char);
    if (length > bytes) break;
    end += char.length;
  }
  return name.slice(0, end);
}

/** The stem of the siblings of a final name too long to carry a suffix: `<prefix>~<hash>`. */
function shortStem(name: string): string {
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 16);
  return `${utf8Prefix(name, STEM_PREFIX_BYTES)}~${hash}`;
}

/** `name` + `suffix` when that fits in a file name, the short stem + `suffix` otherwise. */
function siblingName(name: string, suffix: string): string {
  const whole = `${name}${suffix}`;
  return Buffer.byteLength(whole) <= NAME_MAX ? whole : `${shortStem(name)}${suffix}`;
}

/**
 * A sibling with a fixed suffix: `<final>.restore-journal`, `<final>.pre-restore-<timestamp>`. The same final
 * path and suffix always give the same name.
 */
export function fixedSiblingPath(finalPath: string, suffix: string): string {
  return join(dirname(finalPath), siblingName(basename(finalPath), suffix));
}

/** Whether `name` is a sibling of `finalPath` whose suffix starts with `suffixStart`, as fixedSiblingPath names them. */
export function isSiblingName(finalPath: string, name: string, suffixStart: string): boolean {
  const final = basename(finalPath);
  if (name.includes('/') || name.includes('\0') || Buffer.byteLength(name) > NAME_MAX) return false;
  return name.startsWith(`${final}${suffixStart}`) || name.startsWith(`${shortStem(final)}${suffixStart}`);
}

/** A new sibling owned by this process: `<final>.<purpose>-<owner>-<random>`. */
export function siblingPath(finalPath: string, purpose: SiblingPurpose): string {
  const suffix = `.${purpose}-${formatOwner(thisProcess())}-${randomBytes(4).toString('hex')}`;
  return fixedSiblingPath(finalPath, suffix);
}

export interface Sibling {
  path: string;
  purpose: SiblingPurpose;
  /** Whether the run that made it may still be using it. */
  owner: OwnerState;
  /** The owner as a message names it (owner.ts: describeOwner), or `pid <n>` for an older statesnap's name. */
  ownerText: string;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Siblings of `finalPath` with one of `purposes`, each with the state of its owner. */
export function findSiblings(finalPath: string, purposes: readonly SiblingPurpose[]): Sibling[] {
  const final = basename(finalPath);
  const kinds = purposes.join('|');
  const stems = [final, shortStem(final)].map(escapeRegExp).join('|');
  const current = new RegExp(`^(?:${stems})\\.(${kinds})-(${OWNER_PATTERN})-[0-9a-f]{8}$`);
  // What statesnap 0.1 named them (the pid alone), found so an upgrade does not strand them.
  const older = new RegExp(`^${escapeRegExp(final)}\\.(${kinds})-(\\d+)-[0-9a-f]{8}$`);
  const dir = dirname(finalPath);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const found: Sibling[] = [];
  for (const name of names) {
    const path = join(dir, name);
    const match = current.exec(name);
    if (match) {
      const owner = parseOwner(match[2]!)!;
      found.push({
        path,
        purpose: match[1] as SiblingPurpose,
        owner: ownerState(owner),
        ownerText: describeOwner(owner),
      });
      continue;
    }
    const old = older.exec(name);
    const stats = old && lstatSync(path, { throwIfNoEntry: false });
    if (old && stats) {
      const pid = Number(old[2]);
      found.push({
        path,
        purpose: old[1] as SiblingPurpose,
        owner: legacyOwnerState(pid, stats.mtimeMs),
        ownerText: `pid ${pid}`,
      });
    }
  }
  return found;
}
