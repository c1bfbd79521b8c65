// Writing a backup's per-file index (`.statesnap/index.jsonl`) as a stream while the copy runs, always in the
// current format (docs/format.md), so a 1M-file store never needs one giant string in memory. The schema its
// lines follow is index-reader.ts's, loaded only by what reads an index back.

import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pathBytes } from '../core/protocol.js';
import type { RecordedEntry } from './index-reader.js';
import { INDEX_FILE } from './layout.js';

// Lines are gathered and written in slices of this size: one write per ~1,000 entries.
const FLUSH_THRESHOLD = 256 * 1024;

/** An entry as one JSON line: a path that is not UTF-8 goes as its bytes, since JSON text is UTF-8. */
function serializeEntry(entry: RecordedEntry): string {
  if (entry.path.isWellFormed()) return JSON.stringify(entry);
  const { path, ...rest } = entry;
  return JSON.stringify({ path_b64: pathBytes(path).toString('base64'), ...rest });
}

export class IndexWriter {
  readonly #fd: number;
  readonly #hash: Hash = createHash('sha256');
  #pending = '';
  #entries = 0;
  #closed = false;

  constructor(backupDir: string) {
    this.#fd = openSync(join(backupDir, INDEX_FILE), 'wx', 0o644);
  }

  add(entry: RecordedEntry): void {
    this.#pending += `${serializeEntry(entry)}\n`;
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
