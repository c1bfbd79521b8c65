// Reading a backup's per-file index (`.statesnap/index.jsonl`) back: the single definition (zod) of its lines in
// each format (docs/format.md), read as a stream (every format up to the current one), so a 1M-file store never
// needs one giant string or array in memory. The manifest records the index's format, line count and sha256, so
// a truncated or edited index is refused.

import { isUtf8 } from 'node:buffer';
import { createHash, type Hash } from 'node:crypto';
import { closeSync, constants, createReadStream, openSync } from 'node:fs';
import { join } from 'node:path';
import { describeCause, outOfResourcesAt, StatesnapError } from '../core/errors.js';
import { compareEntryPaths, orderedPath, type RelativePath } from '../core/index-order.js';
import { CAN_LOCATE_FDS } from '../core/paths.js';
import { nameFromBytes } from '../core/protocol.js';
import { z } from '../core/zod.js';
import { inode, isInode, isMode, isOwnerId, isTimestampNs, mode, ownerId, timestampNs } from './fields.js';
import {
  INDEX_FILE,
  type IndexFormat,
  META_DIR,
  RESERVED_ROOT_NAMES,
  unsafeRelativePathReason,
} from './layout.js';
import { formatZodIssues, relativePath, sha256 } from './manifest-schema.js';
import { formatLimit, type MetadataErrors, openMetadataFile } from './metadata-file.js';

const size = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const skippedType = z.enum(['symlink', 'fifo', 'socket', 'char-device', 'block-device']);

/** Format 1: the path, type, size, mode, mtime and hash. */
const IndexLineSchemaV1 = z.discriminatedUnion('type', [
  z.strictObject({ path: relativePath, type: z.literal('file'), size, mode, mtime_ns: timestampNs, sha256 }),
  z.strictObject({ path: relativePath, type: z.literal('dir'), mode, mtime_ns: timestampNs }),
  z.strictObject({ path: relativePath, type: skippedType, skipped: z.literal(true) }),
]);

// Exactly one of the two is present: `path` when the path's bytes are UTF-8, `path_b64` (its bytes) otherwise.
const location = { path: relativePath.optional(), path_b64: z.string().optional() };

/**
 * Format 2 adds the owner of files and directories, the source file's inode and ctime (what a later snapshot
 * compares to tell an unchanged file), `linked` (the file is a hard link into the previous snapshot), and
 * paths that are not UTF-8.
 */
/** The fields of a format 2 file line, less how its content got there (`linked` here, `object` in S3). */
export const FILE_LINE_V2 = {
  ...location,
  type: z.literal('file'),
  size,
  mode,
  mtime_ns: timestampNs,
  ctime_ns: timestampNs,
  ino: inode,
  uid: ownerId,
  gid: ownerId,
  sha256,
};

/** Format 2's directory and skipped lines, which every index carrying format 2 shares. */
export const DIR_LINE_V2 = z.strictObject({
  ...location,
  type: z.literal('dir'),
  mode,
  mtime_ns: timestampNs,
  uid: ownerId,
  gid: ownerId,
});
export const SKIPPED_LINE_V2 = z.strictObject({ ...location, type: skippedType, skipped: z.literal(true) });

const IndexLineSchemaV2 = z.discriminatedUnion('type', [
  z.strictObject({ ...FILE_LINE_V2, linked: z.literal(true).optional() }),
  DIR_LINE_V2,
  SKIPPED_LINE_V2,
]);

const LINE_SCHEMAS = { 1: IndexLineSchemaV1, 2: IndexLineSchemaV2 } as const;

type IndexLineV2 = z.infer<typeof IndexLineSchemaV2>;
/** A line with its one spelling of the path. */
export type Located<Line> = Line extends unknown ? Omit<Line, 'path' | 'path_b64'> & { path: string } : never;

/** An entry as the writer records it: complete, in the current format. */
export type RecordedEntry = Located<IndexLineV2>;

type FormatTwoOnly = 'ctime_ns' | 'ino' | 'uid' | 'gid';
type Loosened<Entry> = Entry extends unknown
  ? Omit<Entry, FormatTwoOnly> & Partial<Pick<Entry, Extract<keyof Entry, FormatTwoOnly>>>
  : never;

/**
 * One entry of an index as the code sees it, whatever its format: `path` is a string in which the bytes of a
 * name that is not UTF-8 are escaped (see core/protocol.ts); the fields format 1 lacks are absent there.
 */
export type IndexEntry = Loosened<RecordedEntry>;

const SHA256_TEXT = /^[0-9a-f]{64}$/;
const FILE_LINE_KEYS = 10;

/**
 * Whether `data` is a format-2 file line with a UTF-8 `path`, valid by every rule of its schema: the line
 * nearly every index is made of, checked without the schema's parse (which copies it). Anything else goes
 * through the schema.
 */
function isPlainFileLine(data: unknown): data is RecordedEntry {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return false;
  const line = data as Record<string, unknown>;
  let keys = 0;
  for (const key in line) {
    if (!Object.hasOwn(line, key)) return false;
    keys++;
  }
  const { linked } = line;
  return (
    keys === (linked === undefined ? FILE_LINE_KEYS : FILE_LINE_KEYS + 1) &&
    (linked === undefined || linked === true) &&
    line.type === 'file' &&
    typeof line.path === 'string' &&
    line.path.isWellFormed() &&
    unsafeRelativePathReason(line.path) === null &&
    Number.isSafeInteger(line.size) &&
    (line.size as number) >= 0 &&
    isMode(line.mode) &&
    isTimestampNs(line.mtime_ns) &&
    isTimestampNs(line.ctime_ns) &&
    isInode(line.ino) &&
    isOwnerId(line.uid) &&
    isOwnerId(line.gid) &&
    typeof line.sha256 === 'string' &&
    SHA256_TEXT.test(line.sha256)
  );
}

// Read in slices of the size the writer writes in.
const READ_CHUNK_BYTES = 256 * 1024;

export interface IndexExpectation {
  format: IndexFormat;
  entries: number;
  sha256: string;
  /** The manifest says the entries are in canonical order (`index_order`): checked, in O(1) memory per line. */
  order?: 'canonical' | undefined;
}

/**
 * Checks that paths arrive as an index lists them: every parent directory listed before its contents, no
 * path twice. In canonical order, that is strictly increasing paths whose block's directory was listed and
 * not yet opened: memory bounded by the directories waiting for their block, not by the entries.
 */
class PathChecker {
  readonly #canonical: boolean;
  readonly #seen = new Set<string>();
  readonly #dirs = new Set<string>();
  #last: RelativePath | undefined;
  #block: string | undefined;

  constructor(canonical: boolean) {
    this.#canonical = canonical;
  }

  /** Why `path` cannot come next, or null. */
  problem(path: string, type: IndexEntry['type']): string | null {
    const parent = path.slice(0, Math.max(0, path.lastIndexOf('/')));
    // Quoted only for a message: nearly every line has none, and quoting each one cost as much as the check.
    const quoted = () => JSON.stringify(path);
    if (this.#canonical) {
      const ordered = orderedPath(path);
      if (this.#last !== undefined && compareEntryPaths(this.#last, ordered) >= 0) {
        return `${quoted()} does not follow ${describePath(this.#last)} in canonical order`;
      }
      this.#last = ordered;
      if (parent !== this.#block) {
        if (parent !== '' && !this.#dirs.delete(parent)) {
          return `the parent of ${quoted()} is not a directory listed before it`;
        }
        this.#block = parent;
      }
    } else {
      if (this.#seen.has(path)) return `duplicate path ${quoted()}`;
      this.#seen.add(path);
      if (parent !== '' && !this.#dirs.has(parent)) {
        return `the parent of ${quoted()} is not a directory listed before it`;
      }
    }
    if (type === 'dir') this.#dirs.add(path);
    return null;
  }
}

function describePath(path: RelativePath): string {
  return JSON.stringify(typeof path === 'string' ? path : Buffer.from(path).toString('latin1'));
}

/**
 * The longest line an index may hold. The longest real one is a file whose path is as long as the system
 * allows (4,096 bytes on Linux), every byte a control character JSON escapes as six: ~25 KiB. Without a bound,
 * one hostile line would be gathered whole in memory before it could be refused.
 */
export const INDEX_LINE_LIMIT = 1 << 20;

const OPEN_DIR = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/**
 * Opens the index without following a link at `.statesnap` or at the file itself (the directory is opened
 * first, and the file in it through the kernel's name of the open directory, where the OS has one).
 */
function openIndex(backupDir: string, errors: MetadataErrors): number {
  if (!CAN_LOCATE_FDS) return openMetadataFile(join(backupDir, INDEX_FILE), errors);
  let dirFd: number;
  try {
    dirFd = openSync(join(backupDir, META_DIR), OPEN_DIR);
  } catch (error) {
    throw errors.unreadable(`${META_DIR} is not a directory: ${describeCause(error)}`, error);
  }
  try {
    return openMetadataFile(`/proc/self/fd/${dirFd}/${INDEX_FILE.slice(META_DIR.length + 1)}`, errors);
  } finally {
    closeSync(dirFd);
  }
}

// Canonical base64 only: one path has one spelling, so the duplicate check sees every duplicate.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** A path from its raw bytes: each segment as UTF-8 text, or escaped when it is not UTF-8 (as the walk names it). */
function pathFromBytes(bytes: Buffer): string {
  const segments: string[] = [];
  let start = 0;
  for (let slash = bytes.indexOf(0x2f); slash !== -1; slash = bytes.indexOf(0x2f, start)) {
    segments.push(nameFromBytes(bytes.subarray(start, slash)));
    start = slash + 1;
  }
  segments.push(nameFromBytes(bytes.subarray(start)));
  return segments.join('/');
}

/** The path a line names, or why it names none: exactly one spelling, `path` only for UTF-8 paths. */
function locate(line: { path?: string; path_b64?: string }): string | { problem: string } {
  if ((line.path === undefined) === (line.path_b64 === undefined)) {
    return { problem: 'must have exactly one of path and path_b64' };
  }
  if (line.path !== undefined) {
    // A lone surrogate (a "\udce9" escape) would stand for a raw byte: that spelling is path_b64's alone.
    return line.path.isWellFormed() ? line.path : { problem: 'path is not valid Unicode (use path_b64)' };
  }
  const encoded = line.path_b64!;
  if (!BASE64.test(encoded)) return { problem: 'path_b64 is not canonical base64' };
  const bytes = Buffer.from(encoded, 'base64');
  if (isUtf8(bytes)) return { problem: 'path_b64 holds a UTF-8 path, which must be written as path' };
  const path = pathFromBytes(bytes);
  const reason = unsafeRelativePathReason(path);
  return reason === null ? path : { problem: `path_b64 ${JSON.stringify(path)} ${reason}` };
}

/**
 * The lines of `stream`, as byte buffers without their '\n', every byte read also fed to `hash` (if any); a line longer
 * than `limit` is refused as soon as that many bytes of it are read.
 */
export async function* splitLines(
  stream: AsyncIterable<Buffer>,
  hash: Hash | null,
  limit: number,
  tooLong: (lineNumber: number) => Error,
): AsyncGenerator<Buffer> {
  for await (const lines of splitLineBatches(stream, hash, limit, tooLong)) yield* lines;
}

/**
 * `splitLines`, the lines of each chunk read handed over together: one step of an async iteration per line
 * cost more than checking the line. The lines before a line that is too long arrive before its refusal.
 */
async function* splitLineBatches(
  stream: AsyncIterable<Buffer>,
  hash: Hash | null,
  limit: number,
  tooLong: (lineNumber: number) => Error,
): AsyncGenerator<Buffer[]> {
  let pending: Buffer[] = [];
  let pendingLength = 0;
  let lineNumber = 0;
  for await (const chunk of stream) {
    hash?.update(chunk);
    const lines: Buffer[] = [];
    let start = 0;
    for (let newline = chunk.indexOf(10); newline !== -1; newline = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, newline);
      lineNumber++;
      if (pendingLength + piece.length > limit) {
        if (lines.length > 0) yield lines;
        throw tooLong(lineNumber);
      }
      lines.push(pendingLength === 0 ? piece : Buffer.concat([...pending, piece]));
      pending = [];
      pendingLength = 0;
      start = newline + 1;
    }
    if (start < chunk.length) {
      pendingLength += chunk.length - start;
      if (pendingLength > limit) {
        if (lines.length > 0) yield lines;
        throw tooLong(lineNumber + 1);
      }
      pending.push(chunk.subarray(start));
    }
    if (lines.length > 0) yield lines;
  }
  if (pendingLength > 0) yield [Buffer.concat(pending)];
}

/** How a validated line's problems become errors: the index's own one-line ERR_INDEX_INVALID. */
export type IndexRefusal = (message: string, cause?: unknown) => StatesnapError;

/** What `validateLines` needs besides the lines: how many there must be, their schema and order. */
export interface LineRules<Line> {
  /** Parses one JSON value into a line (zod's `safeParse` of a line schema). */
  schema: { safeParse(data: unknown): { success: true; data: Line } | { success: false; error: z.ZodError } };
  /** Accepts a value the schema would, with a UTF-8 `path`, without the schema's parse (the common line). */
  accepts?: (data: unknown) => data is Line & { path: string };
  entries: number;
  canonical: boolean;
  refuseCaseCollisions: boolean;
}

/**
 * The per-line checks every index gets, whatever carries it (a file, an object): valid UTF-8 JSON that the
 * schema accepts, one spelling of a safe path that names none of the backup's own files, each parent listed
 * before its contents, no duplicate (or, with `refuseCaseCollisions`, case-colliding) path, and no more lines
 * than the manifest says. The caller checks the total count and the digest after the last line.
 */
export async function* validateLines<
  Line extends { path?: string; path_b64?: string; type: IndexEntry['type'] },
>(
  lines: AsyncIterable<Buffer>,
  rules: LineRules<Line>,
  invalid: IndexRefusal,
): AsyncGenerator<Located<Line>> {
  const validator = new LineValidator(rules, invalid);
  for await (const bytes of lines) yield validator.accept(bytes);
  validator.finish();
}

/** `validateLines`' checks, one line at a time, for a reader that takes its lines in batches. */
class LineValidator<Line extends { path?: string; path_b64?: string; type: IndexEntry['type'] }> {
  readonly #rules: LineRules<Line>;
  readonly #invalid: IndexRefusal;
  readonly #paths: PathChecker;
  readonly #seenFolded: Map<string, string> | null;
  #lineNumber = 0;

  constructor(rules: LineRules<Line>, invalid: IndexRefusal) {
    this.#rules = rules;
    this.#invalid = invalid;
    this.#paths = new PathChecker(rules.canonical);
    this.#seenFolded = rules.refuseCaseCollisions ? new Map<string, string>() : null;
  }

  /** The next line as an entry, or the refusal of the index. */
  accept(bytes: Buffer): Located<Line> {
    const rules = this.#rules;
    const invalid = this.#invalid;
    const lineNumber = ++this.#lineNumber;
    // Stop at the first line too many: the manifest bounds how much of a hostile index is ever read.
    if (lineNumber > rules.entries) {
      throw invalid(`has more than the ${rules.entries} entries the manifest says`);
    }
    if (!isUtf8(bytes)) throw invalid(`line ${lineNumber} is not valid UTF-8`);
    let data: unknown;
    try {
      data = JSON.parse(bytes.toString('utf8'));
    } catch (error) {
      throw invalid(`line ${lineNumber} is not valid JSON: ${describeCause(error)}`, error);
    }
    let line: Line;
    let located: string;
    if (rules.accepts?.(data)) {
      line = data;
      located = data.path;
    } else {
      const parsed = rules.schema.safeParse(data);
      if (!parsed.success) throw invalid(`line ${lineNumber} is invalid: ${formatZodIssues(parsed.error)}`);
      const where = locate(parsed.data);
      if (typeof where !== 'string') throw invalid(`line ${lineNumber} is invalid: ${where.problem}`);
      // zod's output is a fresh object: it becomes the entry, with the one spelling of its path.
      line = parsed.data;
      delete line.path_b64;
      line.path = where;
      located = where;
    }
    const slash = located.indexOf('/');
    if (RESERVED_ROOT_NAMES.has(slash === -1 ? located : located.slice(0, slash))) {
      throw invalid(`line ${lineNumber}: path ${JSON.stringify(located)} names the backup's own files`);
    }
    const problem = this.#paths.problem(located, line.type);
    if (problem !== null) throw invalid(`line ${lineNumber}: ${problem}`);
    const seenFolded = this.#seenFolded;
    if (seenFolded) {
      const folded = located.toLowerCase();
      const other = seenFolded.get(folded);
      if (other !== undefined) {
        throw invalid(
          `line ${lineNumber}: path ${JSON.stringify(located)} differs from ${JSON.stringify(other)} only by case`,
        );
      }
      seenFolded.set(folded, located);
    }
    return line as unknown as Located<Line>;
  }

  /** After the last line: refuses an index with fewer lines than the manifest says. */
  finish(): void {
    if (this.#lineNumber !== this.#rules.entries) {
      throw this.#invalid(`has ${this.#lineNumber} entries; the manifest says ${this.#rules.entries}`);
    }
  }
}

/**
 * Streams the validated entries of a backup's index. Refuses (ERR_INDEX_INVALID) an index that is not a
 * regular file or is reached through a symlink, a line longer than `INDEX_LINE_LIMIT`, a malformed line, an
 * unsafe path, a path naming the backup's own files (manifest.json, .statesnap/), an entry whose parent
 * directory was not listed before it (a backup lists every directory before its contents), a duplicate path,
 * and an index whose line count or sha256 differ from what the manifest recorded.
 * With `refuseCaseCollisions`, two paths that differ only by letter case are refused too (they would
 * overwrite each other on a case-insensitive filesystem).
 */
export async function* readIndex(
  backupDir: string,
  expected: IndexExpectation,
  options: { refuseCaseCollisions: boolean },
): AsyncGenerator<IndexEntry> {
  for await (const entries of readIndexBatches(backupDir, expected, options)) yield* entries;
}

/**
 * `readIndex`, the entries of each slice read handed over together (for a reader that takes every entry of a
 * large index, where one step of an async iteration per entry costs more than checking it).
 */
export async function* readIndexBatches(
  backupDir: string,
  expected: IndexExpectation,
  options: { refuseCaseCollisions: boolean },
): AsyncGenerator<IndexEntry[]> {
  const path = join(backupDir, INDEX_FILE);
  const invalid = (message: string, cause?: unknown) =>
    new StatesnapError('ERR_INDEX_INVALID', `index ${path} ${message}`, { path, cause });
  const fd = openIndex(backupDir, {
    unreadable: (m, cause) => invalid(`cannot be read: ${m}`, cause),
    refused: invalid,
  });
  const hash = createHash('sha256');
  const stream = createReadStream('', { fd, highWaterMark: READ_CHUNK_BYTES });
  const lineBatches = splitLineBatches(stream, hash, INDEX_LINE_LIMIT, (n) =>
    invalid(`line ${n} is longer than ${formatLimit(INDEX_LINE_LIMIT)}`),
  );
  const validator = new LineValidator(
    {
      schema: LINE_SCHEMAS[expected.format] as LineRules<IndexLineV2>['schema'],
      entries: expected.entries,
      canonical: expected.order === 'canonical',
      refuseCaseCollisions: options.refuseCaseCollisions,
      accepts: expected.format === 2 ? isPlainFileLine : undefined,
    },
    invalid,
  );
  try {
    for await (const lines of lineBatches) {
      const entries: IndexEntry[] = [];
      for (const bytes of lines) entries.push(validator.accept(bytes) as IndexEntry);
      yield entries;
    }
    validator.finish();
  } catch (error) {
    if (error instanceof StatesnapError) throw error;
    throw outOfResourcesAt(path, error) ?? invalid(`cannot be read: ${describeCause(error)}`, error);
  } finally {
    stream.destroy();
  }
  const digest = hash.digest('hex');
  if (digest !== expected.sha256) {
    throw invalid(`sha256 is ${digest}; the manifest says ${expected.sha256} (the index was modified)`);
  }
}
