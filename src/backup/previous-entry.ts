// An index line of the previous backup in the terms the change rule (core/change-rule.ts) compares.

import type { PreviousEntry } from '../core/change-rule.js';
import type { IndexEntry } from '../format/index-reader.js';

/** An index line of the previous backup as the change rule compares it. */
export function previousEntryOf(line: IndexEntry): PreviousEntry {
  if (line.type !== 'file') return { type: line.type };
  return {
    type: 'file',
    size: line.size,
    mode: line.mode,
    mtimeNs: BigInt(line.mtime_ns),
    ctimeNs: line.ctime_ns === undefined ? undefined : BigInt(line.ctime_ns),
    ino: line.ino === undefined ? undefined : BigInt(line.ino),
    sha256: line.sha256,
  };
}
