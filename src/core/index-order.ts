// The canonical order of a backup's entries (directory blocks in preorder, names by their raw bytes) and what
// that order makes cheap: joining a walk with the previous index, or two indexes, with memory bounded by one
// directory, and writing an index in that order while files finish out of order.

import { pathBytes } from './protocol.js';

/**
 * A path relative to a backup's root, '/'-separated: a string when its bytes are valid UTF-8 (a well-formed
 * string: no lone surrogates), otherwise its raw bytes.
 */
export type RelativePath = string | Uint8Array;

/** A path (or name) as the canonical order compares it: its text, or its raw bytes where a name is not UTF-8. */
export function orderedPath(path: string): RelativePath {
  return path.isWellFormed() ? path : pathBytes(path);
}

const SLASH = 0x2f;
const encoder = new TextEncoder();

/**
 * The rank of a UTF-16 code unit in UTF-8 byte order: code points above U+FFFF are stored as surrogates
 * (0xD800–0xDFFF) but their UTF-8 bytes sort after every BMP character, including 0xE000–0xFFFF.
 */
function utf8Rank(unit: number): number {
  if (unit < 0xd800) return unit;
  return unit >= 0xe000 ? unit - 0x800 : unit + 0x2000;
}

/**
 * Compares a[aStart, aEnd) with b[bStart, bEnd) by UTF-8 bytes; with `bySegment`, '/' sorts before every
 * other unit, which turns a comparison of whole paths into a comparison of their segments one by one.
 */
function compareStrings(
  a: string,
  aStart: number,
  aEnd: number,
  b: string,
  bStart: number,
  bEnd: number,
  bySegment: boolean,
): number {
  const length = Math.min(aEnd - aStart, bEnd - bStart);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(aStart + i);
    const y = b.charCodeAt(bStart + i);
    if (x === y) continue;
    if (bySegment) {
      if (x === SLASH) return -1;
      if (y === SLASH) return 1;
    }
    return utf8Rank(x) - utf8Rank(y);
  }
  return aEnd - aStart - (bEnd - bStart);
}

/**
 * Compares raw-byte paths (names that are not valid UTF-8 are rare, so clarity beats speed here): byte by
 * byte, or with `bySegment` one '/'-separated segment at a time, a path that runs out of segments first.
 */
function compareBytes(a: Uint8Array, b: Uint8Array, bySegment: boolean): number {
  if (!bySegment) return Buffer.compare(a, b);
  const aSegments = splitSegments(a);
  const bSegments = splitSegments(b);
  for (let i = 0; i < Math.min(aSegments.length, bSegments.length); i++) {
    const order = Buffer.compare(aSegments[i]!, bSegments[i]!);
    if (order !== 0) return order;
  }
  return aSegments.length - bSegments.length;
}

function splitSegments(path: Uint8Array): Uint8Array[] {
  if (path.length === 0) return [];
  const segments: Uint8Array[] = [];
  let start = 0;
  for (let slash = path.indexOf(SLASH); slash !== -1; slash = path.indexOf(SLASH, start)) {
    segments.push(path.subarray(start, slash));
    start = slash + 1;
  }
  segments.push(path.subarray(start));
  return segments;
}

function lastSlash(path: RelativePath): number {
  return typeof path === 'string' ? path.lastIndexOf('/') : path.lastIndexOf(SLASH);
}

/** Compares [aStart, aEnd) of a with [bStart, bEnd) of b, encoding a string only when the other side is bytes. */
function compareRanges(
  a: RelativePath,
  aStart: number,
  aEnd: number,
  b: RelativePath,
  bStart: number,
  bEnd: number,
  bySegment: boolean,
): number {
  if (typeof a === 'string' && typeof b === 'string') {
    return compareStrings(a, aStart, aEnd, b, bStart, bEnd, bySegment);
  }
  const aBytes = typeof a === 'string' ? encoder.encode(a.slice(aStart, aEnd)) : a.subarray(aStart, aEnd);
  const bBytes = typeof b === 'string' ? encoder.encode(b.slice(bStart, bEnd)) : b.subarray(bStart, bEnd);
  return compareBytes(aBytes, bBytes, bySegment);
}

/** Orders two names of one directory by their bytes (UTF-8 for strings), as `LC_ALL=C ls` does. */
export function compareNames(a: RelativePath, b: RelativePath): number {
  return compareRanges(a, 0, a.length, b, 0, b.length, false);
}

/**
 * Orders two directories as a preorder walk visits them when it takes each directory's subdirectories in
 * name order: segment by segment, a directory before everything below it ('' is the root).
 */
export function compareDirectories(a: RelativePath, b: RelativePath): number {
  return compareRanges(a, 0, a.length, b, 0, b.length, true);
}

/**
 * The canonical order of a backup's entries: each directory's entries form one block, sorted by name; blocks
 * follow the preorder of their directories (`compareDirectories`). It is the order of a walk that lists a
 * directory, emits its entries in name order, then descends into its subdirectories in name order; a
 * directory's own entry (in its parent's block) always precedes its block.
 */
export function compareEntryPaths(a: RelativePath, b: RelativePath): number {
  const aSlash = lastSlash(a);
  const bSlash = lastSlash(b);
  const byParent = compareRanges(a, 0, Math.max(aSlash, 0), b, 0, Math.max(bSlash, 0), true);
  if (byParent !== 0) return byParent;
  return compareRanges(a, aSlash + 1, a.length, b, bSlash + 1, b.length, false);
}

const SURROGATE = /[\ud800-\udfff]/;

/**
 * Sorts the names of one directory in place by `compareNames`. Without surrogates and raw-byte names,
 * JavaScript's default sort (UTF-16 code units) gives the same order, several times faster.
 */
export function sortNames<T extends RelativePath>(names: T[]): T[] {
  const plain = names.every((name) => typeof name === 'string' && !SURROGATE.test(name));
  return plain ? names.sort() : names.sort(compareNames);
}

function describe(path: RelativePath): string {
  return typeof path === 'string' ? JSON.stringify(path) : `<bytes ${Buffer.from(path).toString('hex')}>`;
}

/** An input that is not in canonical order (a corrupt or foreign index), or seeks that go backwards. */
export class OrderViolation extends Error {
  override readonly name = 'OrderViolation';
  /** `source`: the entries an iterable produced; `seek`: the paths a caller asked for. */
  readonly where: 'source' | 'seek';
  readonly previous: RelativePath;
  readonly path: RelativePath;

  constructor(where: 'source' | 'seek', previous: RelativePath, path: RelativePath) {
    super(`${where === 'source' ? 'entry' : 'seek'} ${describe(path)} does not follow ${describe(previous)}`);
    this.where = where;
    this.previous = previous;
    this.path = path;
  }
}

export interface HasPath {
  readonly path: RelativePath;
}

/** Reads entries one at a time from batches, checking that each follows the one before. */
class OrderedReader<T extends HasPath> {
  readonly #batches: AsyncIterator<readonly T[]>;
  #batch: readonly T[] = [];
  #position = 0;
  #last: RelativePath | undefined;
  done = false;

  constructor(source: AsyncIterable<readonly T[]>) {
    this.#batches = source[Symbol.asyncIterator]();
  }

  /** The next entry without consuming it, or undefined if it needs `fill()` first (or the input ended). */
  peek(): T | undefined {
    return this.#batch[this.#position];
  }

  take(): void {
    this.#position++;
  }

  /** Loads the next non-empty batch; false when the input has ended. */
  async fill(): Promise<boolean> {
    if (this.done) return false;
    while (this.#position >= this.#batch.length) {
      const next = await this.#batches.next();
      if (next.done) {
        this.done = true;
        return false;
      }
      this.#batch = next.value;
      this.#position = 0;
      this.#checkOrder();
    }
    return true;
  }

  #checkOrder(): void {
    for (const entry of this.#batch) {
      if (this.#last !== undefined && compareEntryPaths(this.#last, entry.path) >= 0) {
        throw new OrderViolation('source', this.#last, entry.path);
      }
      this.#last = entry.path;
    }
  }

  async close(): Promise<void> {
    await this.#batches.return?.();
  }
}

/**
 * Looks up entries of a canonically ordered input (the previous index) for paths asked in canonical order
 * (the new walk), holding one batch at a time. Every input entry that no `seek` asked for (deleted since,
 * excluded now, or below a directory that became a file) goes to `onUnmatched`, in order.
 */
export class SortedCursor<T extends HasPath> {
  readonly #reader: OrderedReader<T>;
  readonly #onUnmatched: (entry: T) => void;
  #lastSought: RelativePath | undefined;
  #busy = false;

  constructor(source: AsyncIterable<readonly T[]>, onUnmatched: (entry: T) => void) {
    this.#reader = new OrderedReader(source);
    this.#onUnmatched = onUnmatched;
  }

  /**
   * The input's entry at `path`, or undefined. Synchronous while the current batch answers; a promise when a
   * batch must be read first (await it before the next call). Paths must be asked in increasing order.
   */
  seek(path: RelativePath): T | undefined | Promise<T | undefined> {
    if (this.#busy)
      throw new Error('Assertion failed: SortedCursor.seek called before the previous one settled');
    if (this.#lastSought !== undefined && compareEntryPaths(this.#lastSought, path) >= 0) {
      throw new OrderViolation('seek', this.#lastSought, path);
    }
    this.#lastSought = path;
    const answer = this.#scan(path);
    return answer === NEEDS_INPUT ? this.#seekAfterFill(path) : answer;
  }

  #scan(path: RelativePath): T | undefined | typeof NEEDS_INPUT {
    for (;;) {
      const entry = this.#reader.peek();
      if (entry === undefined) return this.#reader.done ? undefined : NEEDS_INPUT;
      const order = compareEntryPaths(entry.path, path);
      if (order > 0) return undefined;
      this.#reader.take();
      if (order === 0) return entry;
      this.#onUnmatched(entry);
    }
  }

  async #seekAfterFill(path: RelativePath): Promise<T | undefined> {
    this.#busy = true;
    try {
      for (;;) {
        if (!(await this.#reader.fill())) return undefined;
        const answer = this.#scan(path);
        if (answer !== NEEDS_INPUT) return answer;
      }
    } finally {
      this.#busy = false;
    }
  }

  /** Passes every entry not yet sought to `onUnmatched` (the walk has ended). */
  async finish(): Promise<void> {
    for (;;) {
      const entry = this.#reader.peek();
      if (entry !== undefined) {
        this.#reader.take();
        this.#onUnmatched(entry);
      } else if (!(await this.#reader.fill())) {
        return;
      }
    }
  }

  /** Stops reading the input early (the run failed). */
  close(): Promise<void> {
    return this.#reader.close();
  }
}

const NEEDS_INPUT: unique symbol = Symbol('needs input');

export interface JoinedEntry<L, R> {
  path: RelativePath;
  /** The entry of the first input at `path`, if it has one. */
  left: L | undefined;
  /** The entry of the second input at `path`, if it has one. */
  right: R | undefined;
}

/**
 * Joins two canonically ordered inputs by path (two snapshots' indexes, for diff or a multi-snapshot
 * verify), yielding every path of either in canonical order with its entry from each side.
 */
export async function* mergeJoin<L extends HasPath, R extends HasPath>(
  left: AsyncIterable<readonly L[]>,
  right: AsyncIterable<readonly R[]>,
): AsyncGenerator<JoinedEntry<L, R>> {
  const a = new OrderedReader(left);
  const b = new OrderedReader(right);
  try {
    for (;;) {
      const x = a.peek() ?? ((await a.fill()) ? a.peek() : undefined);
      const y = b.peek() ?? ((await b.fill()) ? b.peek() : undefined);
      if (x === undefined && y === undefined) return;
      const order = x === undefined ? 1 : y === undefined ? -1 : compareEntryPaths(x.path, y.path);
      if (order <= 0) a.take();
      if (order >= 0) b.take();
      yield {
        path: order <= 0 ? x!.path : y!.path,
        left: order <= 0 ? x : undefined,
        right: order >= 0 ? y : undefined,
      };
    }
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
}

const EMPTY: unique symbol = Symbol('not yet filled');

/**
 * Writes values in the order they were announced although some become known later (a file's index line
 * exists only once a worker has copied or linked it): `push` what is known at once (directories, skipped
 * entries), `reserve` a place for what comes later and `fill` it then. `waiting` is how many values are
 * held back; the caller stops the walk while it is too high, so one slow file cannot make it grow without
 * bound.
 */
export class ReorderBuffer<T> {
  readonly #write: (value: T) => void;
  #slots: Array<T | typeof EMPTY> = [];
  /** Ticket of `#slots[#head]`. */
  #firstTicket = 0;
  #head = 0;

  constructor(write: (value: T) => void) {
    this.#write = write;
  }

  get waiting(): number {
    return this.#slots.length - this.#head;
  }

  push(value: T): void {
    this.#slots.push(value);
    this.#drain();
  }

  /** Returns the ticket that `fill` takes. */
  reserve(): number {
    this.#slots.push(EMPTY);
    return this.#firstTicket + this.#slots.length - 1;
  }

  fill(ticket: number, value: T): void {
    const index = ticket - this.#firstTicket;
    if (index < this.#head || index >= this.#slots.length || this.#slots[index] !== EMPTY) {
      throw new Error(`Assertion failed: ticket ${ticket} is not reserved and unfilled`);
    }
    this.#slots[index] = value;
    this.#drain();
  }

  /** Asserts that every reserved place was filled (and so written). */
  close(): void {
    if (this.waiting !== 0) throw new Error(`Assertion failed: ${this.waiting} reserved values never filled`);
  }

  #drain(): void {
    while (this.#head < this.#slots.length) {
      const value = this.#slots[this.#head];
      if (value === EMPTY) break;
      this.#write(value as T);
      this.#head++;
    }
    // Drop written slots now and then, not on every write: splice is linear in what remains.
    if (this.#head >= 4096 && this.#head * 2 >= this.#slots.length) {
      this.#slots = this.#slots.slice(this.#head);
      this.#firstTicket += this.#head;
      this.#head = 0;
    }
  }
}
