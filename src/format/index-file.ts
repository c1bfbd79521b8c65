// The per-file index of a backup (`.statesnap/index.jsonl`): the single definition (zod) of its lines, written
// as a stream while the copy runs and read back as a stream, so a 1M-file store never needs one giant string or
// array in memory. The manifest records the index's line count and sha256, so a truncated or edited index is refused.

import { createHash, type Hash } from 'node:crypto';
import { closeSync, createReadStream, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describeCause, outOfResourcesAt, StatesnapError } from '../core/errors.js';
import { z } from '../core/zod.js';
import { formatZodIssues, INDEX_FILE, RESERVED_ROOT_NAMES, relativePath, sha256 } from './manifest.js';

const mode = z.number().int().min(0).max(0o7777);
const nanoseconds = z.string().regex(/^\d{1,30}$/, 'must be a decimal count of nanoseconds');

const IndexFileSchema = z.strictObject({
  path: relativePath,
  type: z.literal('file'),
  size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  mode,
  mtime_ns: nanoseconds,
  sha256,
});
const IndexDirSchema = z.strictObject({
  path: relativePath,
  type: z.literal('dir'),
  mode,
  mtime_ns: nanoseconds,
});
const IndexSkippedSchema = z.strictObject({
  path: relativePath,
  type: z.enum(['symlink', 'fifo', 'socket', 'char-device', 'block-device']),
  skipped: z.literal(true),
});

/** One line of `.statesnap/index.jsonl`. */
const IndexEntrySchema = z.discriminatedUnion('type', [IndexFileSchema, IndexDirSchema, IndexSkippedSchema]);
export type IndexEntry = z.infer<typeof IndexEntrySchema>;

// Lines are gathered and written in slices of this size: one write per ~1,500 entries.
const FLUSH_THRESHOLD = 256 * 1024;

export class IndexWriter {
  readonly #fd: number;
  readonly #hash: Hash = createHash('sha256');
  #pending = '';
  #entries = 0;
  #closed = false;

  constructor(backupDir: string) {
    this.#fd = openSync(join(backupDir, INDEX_FILE), 'wx', 0o644);
  }

  add(entry: IndexEntry): void {
    this.#pending += `${JSON.stringify(entry)}\n`;
    this.#entries++;
    if (this.#pending.length >= FLUSH_THRESHOLD) this.#flush();
  }

  #flush(): void {
    if (this.#pending.length === 0) return;
    const bytes = Buffer.from(this.#pending, 'utf8');
    this.#hash.update(bytes);
    let written = 0;
    while (written < bytes.length) written += writeSync(this.#fd, bytes, written);
    this.#pending = '';
  }

  /** Writes what is left and closes the file; returns what the manifest records about the index. */
  close(): { entries: number; sha256: string } {
    this.#flush();
    this.#closed = true;
    closeSync(this.#fd);
    return { entries: this.#entries, sha256: this.#hash.digest('hex') };
  }

  /**
   * Closes without finishing (the run failed); the directory holding the file is discarded by the caller.
   * A no-op after `close()`: the descriptor's number may already belong to another open file of the process.
   */
  abandon(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      closeSync(this.#fd);
    } catch {}
  }
}

export interface IndexExpectation {
  entries: number;
  sha256: string;
}

/**
 * Streams the validated entries of a backup's index. Refuses (ERR_INDEX_INVALID) a malformed line, an unsafe
 * path, a path naming the backup's own files (manifest.json, .statesnap/), an entry whose parent directory
 * was not listed before it (a backup lists every directory before its contents), a duplicate path, and an
 * index whose line count or sha256 differ from what the manifest recorded.
 * With `refuseCaseCollisions`, two paths that differ only by letter case are refused too (they would
 * overwrite each other on a case-insensitive filesystem).
 */
export async function* readIndex(
  backupDir: string,
  expected: IndexExpectation,
  options: { refuseCaseCollisions: boolean },
): AsyncGenerator<IndexEntry> {
  const path = join(backupDir, INDEX_FILE);
  const invalid = (message: string, cause?: unknown) =>
    new StatesnapError('ERR_INDEX_INVALID', `index ${path} ${message}`, { path, cause });
  const hash = createHash('sha256');
  const seen = new Set<string>();
  const dirs = new Set<string>();
  const seenFolded = options.refuseCaseCollisions ? new Map<string, string>() : null;
  const stream = createReadStream(path);
  stream.on('data', (chunk) => hash.update(chunk));
  const lines = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
  let lineNumber = 0;
  try {
    for await (const line of lines) {
      lineNumber++;
      let data: unknown;
      try {
        data = JSON.parse(line);
      } catch (error) {
        throw invalid(`line ${lineNumber} is not valid JSON: ${describeCause(error)}`, error);
      }
      const parsed = IndexEntrySchema.safeParse(data);
      if (!parsed.success) throw invalid(`line ${lineNumber} is invalid: ${formatZodIssues(parsed.error)}`);
      const entry = parsed.data;
      if (seen.has(entry.path))
        throw invalid(`line ${lineNumber}: duplicate path ${JSON.stringify(entry.path)}`);
      seen.add(entry.path);
      const slash = entry.path.indexOf('/');
      if (RESERVED_ROOT_NAMES.has(slash === -1 ? entry.path : entry.path.slice(0, slash))) {
        throw invalid(`line ${lineNumber}: path ${JSON.stringify(entry.path)} names the backup's own files`);
      }
      const parent = entry.path.slice(0, Math.max(0, entry.path.lastIndexOf('/')));
      if (parent !== '' && !dirs.has(parent)) {
        throw invalid(
          `line ${lineNumber}: the parent of ${JSON.stringify(entry.path)} is not a directory listed before it`,
        );
      }
      if (entry.type === 'dir') dirs.add(entry.path);
      if (seenFolded) {
        const folded = entry.path.toLowerCase();
        const other = seenFolded.get(folded);
        if (other !== undefined) {
          throw invalid(
            `line ${lineNumber}: path ${JSON.stringify(entry.path)} differs from ${JSON.stringify(other)} only by case`,
          );
        }
        seenFolded.set(folded, entry.path);
      }
      yield entry;
    }
  } catch (error) {
    if (error instanceof StatesnapError) throw error;
    throw outOfResourcesAt(path, error) ?? invalid(`cannot be read: ${describeCause(error)}`, error);
  } finally {
    lines.close();
    stream.destroy();
  }
  if (lineNumber !== expected.entries) {
    throw invalid(`has ${lineNumber} entries; the manifest says ${expected.entries}`);
  }
  const digest = hash.digest('hex');
  if (digest !== expected.sha256) {
    throw invalid(`sha256 is ${digest}; the manifest says ${expected.sha256} (the index was modified)`);
  }
}
