// Names inside a snapshot repository: a snapshot's id (its UTC start time, sortable as text, no colons), the
// hidden names of a snapshot being built or being deleted, and which names a repository owns. Deciding what
// a name is never touches the disk; whether a snapshot is complete is its manifest's business.

/** `2026-11-30T02-47-11Z`, then `2026-11-30T02-47-11Z-01` … `-99` for more snapshots in the same second. */
const ID_PATTERN = /^(\d{4})-(\d{2})-(\d{2})T(\d{2})-(\d{2})-(\d{2})Z(?:-(\d{2}))?$/;

/** How many snapshots one second can hold: the unsuffixed id and 99 suffixed ones. */
export const MAX_SNAPSHOTS_PER_SECOND = 100;

/** Prefix of a snapshot that is being built: hidden from `ls`, never listed, pruned, or used as a link source. */
export const IN_PROGRESS_PREFIX = '.partial-';
/** Prefix of a snapshot that prune has taken out of the listing and is removing. */
export const DELETING_PREFIX = '.deleting-';
/** Names a repository keeps for itself beside its snapshots. */
export const REPOSITORY_MARKER = '.statesnap-repository';
export const LOCKS_DIR = '.locks';
/** A convenience symlink to the newest complete snapshot, for other tools; statesnap never reads it. */
export const LATEST_LINK = 'latest';
const LATEST_LINK_TEMP = '.latest.tmp';

export interface SnapshotId {
  id: string;
  /** The second the snapshot started, as milliseconds since the epoch (a whole second). */
  timeMs: number;
  /** 0 for the first snapshot of its second, 1–99 for the ones after it. */
  sequence: number;
}

function pad(value: number, width: number): string {
  return String(value).padStart(width, '0');
}

/** The unsuffixed id of the second that contains `timeMs`; years outside 0000–9999 have no id. */
function secondId(timeMs: number): string {
  const date = new Date(Math.floor(timeMs / 1000) * 1000);
  const year = date.getUTCFullYear();
  if (Number.isNaN(year) || year < 0 || year > 9999) {
    throw new RangeError(`no snapshot id for time ${timeMs}: years 0000–9999 only`);
  }
  return (
    `${pad(year, 4)}-${pad(date.getUTCMonth() + 1, 2)}-${pad(date.getUTCDate(), 2)}` +
    `T${pad(date.getUTCHours(), 2)}-${pad(date.getUTCMinutes(), 2)}-${pad(date.getUTCSeconds(), 2)}Z`
  );
}

/**
 * The id for a snapshot starting at `timeMs`: its second, with the first free suffix when that second
 * already has snapshots. `isTaken` must answer for every form of an id the repository holds (complete, in
 * progress, being deleted), which `idsInUse` collects. Null when the second is full: the caller waits for the
 * next one.
 */
export function newSnapshotId(timeMs: number, isTaken: (id: string) => boolean): string | null {
  const base = secondId(timeMs);
  for (let sequence = 0; sequence < MAX_SNAPSHOTS_PER_SECOND; sequence++) {
    const id = sequence === 0 ? base : `${base}-${pad(sequence, 2)}`;
    if (!isTaken(id)) return id;
  }
  return null;
}

/** Parses a complete snapshot's directory name; null for anything that is not exactly an id. */
export function parseSnapshotId(name: string): SnapshotId | null {
  const match = ID_PATTERN.exec(name);
  if (!match || match[7] === '00') return null;
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, 0);
  const timeMs = date.getTime();
  // A calendar-impossible name (02-30, 24-00-00) would normalise to another second: not an id.
  if (secondId(timeMs) !== name.slice(0, 20)) return null;
  return { id: name, timeMs, sequence: match[7] === undefined ? 0 : Number(match[7]) };
}

/**
 * Orders ids oldest first. Equal to comparing the names as text (a suffixed id extends its second's id, and
 * suffixes have two digits), which is why `ls` shows them in order too.
 */
export function compareSnapshotIds(a: SnapshotId, b: SnapshotId): number {
  return a.timeMs - b.timeMs || a.sequence - b.sequence;
}

export function inProgressName(id: string): string {
  return `${IN_PROGRESS_PREFIX}${id}`;
}

export function deletingName(id: string): string {
  return `${DELETING_PREFIX}${id}`;
}

export type RepositoryEntry =
  /** Named like a complete snapshot; whether it is one, its manifest decides. */
  | { kind: 'snapshot'; id: SnapshotId }
  /** Left by a run that did not finish building it; removed by the next lock holder. */
  | { kind: 'in-progress'; id: SnapshotId }
  /** Left by a prune that did not finish removing it; removed by the next lock holder. */
  | { kind: 'being-deleted'; id: SnapshotId }
  /** The repository's own files: marker, locks, the `latest` link and its temporary name. */
  | { kind: 'repository' }
  /** Anything else: never listed, never removed, never touched. */
  | { kind: 'foreign' };

const REPOSITORY_NAMES: ReadonlySet<string> = new Set([
  REPOSITORY_MARKER,
  LOCKS_DIR,
  LATEST_LINK,
  LATEST_LINK_TEMP,
]);

export function classifyRepositoryEntry(name: string): RepositoryEntry {
  if (REPOSITORY_NAMES.has(name)) return { kind: 'repository' };
  const forms = [
    ['snapshot', ''],
    ['in-progress', IN_PROGRESS_PREFIX],
    ['being-deleted', DELETING_PREFIX],
  ] as const;
  for (const [kind, prefix] of forms) {
    if (!name.startsWith(prefix)) continue;
    const id = parseSnapshotId(name.slice(prefix.length));
    if (id !== null) return { kind, id };
  }
  return { kind: 'foreign' };
}

/** Every id a repository's listing holds in any form: what `newSnapshotId` must not reuse. */
export function idsInUse(names: Iterable<string>): Set<string> {
  const ids = new Set<string>();
  for (const name of names) {
    const entry = classifyRepositoryEntry(name);
    if (entry.kind === 'snapshot' || entry.kind === 'in-progress' || entry.kind === 'being-deleted') {
      ids.add(entry.id.id);
    }
  }
  return ids;
}
