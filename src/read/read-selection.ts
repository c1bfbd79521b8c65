// Which files a verify reads: every one, or, across the snapshots of a repository, each shared inode once (a
// file whose inode an earlier snapshot of the run already read is judged by that read), and, with `newOnly`,
// only the files a snapshot copied (its linked files are checked from an lstat, not read).

import { type BigIntStats, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { type HasPath, orderedPath, SortedCursor } from '../core/index-order.js';
import type { EntrySource } from '../core/pipeline.js';
import { type FileOp, formatMode, fsPath } from '../core/protocol.js';
import type { WarningLog } from '../core/warnings.js';
import { readIndex } from '../format/index-reader.js';
import type { BackupReader, LocalBackupReader } from './backup-reader.js';

/**
 * Which files of an index a verify reads. A file it does not send to be read it checks itself from an lstat
 * (type, size, mode), and calls `seen` for it as the pass would have.
 */
export interface ReadSelection {
  /** The files of `reader` (streamed by `inner`), with those not to be read checked here and held back. */
  source(
    reader: BackupReader,
    inner: EntrySource,
    problems: WarningLog,
    seen: (op: FileOp) => void,
  ): EntrySource;
  /** A file that was read turned out missing, corrupt or unreadable. */
  failed(reader: BackupReader, rel: string): void;
  /** Files of the current backup checked without being read, and their bytes. */
  readonly notRead: { files: number; bytes: number };
}

/** What the first read of an inode found, for every later snapshot that shares it. */
interface InodeVerdict {
  sha256: string;
  ok: boolean;
  /** The backup (by its place in the run) and path it was read at. */
  backup: number;
  path: string;
}

interface LinkedFlag extends HasPath {
  linked: boolean;
}

const BATCH = 512;

/** Whether each file of a canonically ordered index was linked from the previous backup, in index order. */
async function* linkedFlags(reader: LocalBackupReader): AsyncGenerator<LinkedFlag[]> {
  const extras = reader.extras!;
  let batch: LinkedFlag[] = [];
  for await (const entry of readIndex(
    reader.root,
    { format: 2, ...extras.index, order: 'canonical' },
    { refuseCaseCollisions: false },
  )) {
    if (entry.type !== 'file') continue;
    batch.push({ path: orderedPath(entry.path), linked: entry.linked === true });
    if (batch.length >= BATCH) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

/** A local backup whose canonical index says which files were linked (a snapshot in object storage has none). */
function canLinkFlags(reader: BackupReader): reader is LocalBackupReader {
  return (
    reader.local && reader.format === 2 && (reader as LocalBackupReader).extras?.index_order === 'canonical'
  );
}

export class SelectiveRead implements ReadSelection {
  readonly #shareInodes: boolean;
  readonly #newOnly: boolean;
  readonly #verdicts = new Map<string, InodeVerdict>();
  #backup = 0;
  notRead = { files: 0, bytes: 0 };
  /** Files not read because an earlier backup of the run read their inode. */
  shared = 0;
  /** Files not read because they were linked (`newOnly`). */
  linked = 0;
  /** Files sent to be read and hashed in the whole run, and their bytes. */
  readInAll = { files: 0, bytes: 0 };

  /**
   * `shareInodes`: remember what each inode's read found, for the backups verified after this one (memory:
   * one entry per distinct file read). `newOnly`: read only what each backup copied.
   */
  constructor(options: { shareInodes: boolean; newOnly: boolean }) {
    this.#shareInodes = options.shareInodes;
    this.#newOnly = options.newOnly;
  }

  /** Starts the next backup of the run. */
  next(): void {
    this.#backup++;
    this.notRead = { files: 0, bytes: 0 };
  }

  source(
    reader: BackupReader,
    inner: EntrySource,
    problems: WarningLog,
    seen: (op: FileOp) => void,
  ): EntrySource {
    return {
      read: inner.read,
      entries: async (sink, signal) => {
        const flags =
          this.#newOnly && canLinkFlags(reader)
            ? new SortedCursor(linkedFlags(reader), () => undefined)
            : null;
        try {
          await inner.entries(
            {
              ...sink,
              file: (op, stats) => {
                const found = flags?.seek(orderedPath(op.rel));
                const decide = (flag: LinkedFlag | undefined) => {
                  if (!this.#checkedHere(reader, op, flag?.linked === true, problems)) {
                    this.readInAll.files++;
                    this.readInAll.bytes += op.size;
                    return sink.file(op, stats);
                  }
                  seen(op);
                  return undefined;
                };
                return found instanceof Promise ? found.then(decide) : decide(found);
              },
            },
            signal,
          );
        } finally {
          await flags?.close();
        }
      },
    };
  }

  /** True when the file was checked here (not to be read); false sends it to be read. */
  #checkedHere(reader: BackupReader, op: FileOp, linked: boolean, problems: WarningLog): boolean {
    const path = join(reader.root, op.rel);
    let stats: BigIntStats | undefined;
    try {
      stats = lstatSync(fsPath(path), { bigint: true, throwIfNoEntry: false });
    } catch {
      return false; // The read reports why it cannot be reached.
    }
    if (stats === undefined || !stats.isFile() || op.hash === undefined) return false;
    const key = `${stats.dev}:${stats.ino}`;
    const known = this.#shareInodes ? this.#verdicts.get(key) : undefined;
    if (known !== undefined && known.backup !== this.#backup && known.sha256 === op.hash) {
      this.shared++;
      // One problem per name: a wrong size already says the content is not what the index records.
      if (this.#checkHere(op, stats, path, problems) && !known.ok) {
        problems.add(
          path,
          'corrupt',
          `is the same file as ${known.path}, whose content does not match the index`,
        );
      }
      return true;
    }
    // A linked file is taken on its lstat only while nothing says otherwise: an inode this run already read
    // under another recorded hash means one of the two indexes lies, and only a read tells which.
    if (linked && known === undefined) {
      this.linked++;
      this.#checkHere(op, stats, path, problems);
      return true;
    }
    if (this.#shareInodes && known === undefined) {
      this.#verdicts.set(key, { sha256: op.hash, ok: true, backup: this.#backup, path });
    }
    return false;
  }

  /**
   * What an lstat can tell of a file that is not read: its size and permission bits against the index. False
   * when the size is wrong.
   */
  #checkHere(op: FileOp, stats: BigIntStats, path: string, problems: WarningLog): boolean {
    this.notRead.files++;
    this.notRead.bytes += op.size;
    const sizeOk = stats.size === BigInt(op.size);
    if (!sizeOk) problems.add(path, 'corrupt', `size is ${stats.size}, the index says ${op.size}`);
    const mode = Number(stats.mode) & 0o7777;
    if (op.mode !== undefined && mode !== op.mode) {
      problems.add(path, 'mode', `mode is ${formatMode(mode)}, the index says ${formatMode(op.mode)}`);
    }
    return sizeOk;
  }

  failed(reader: BackupReader, rel: string): void {
    if (!this.#shareInodes) return;
    let stats: BigIntStats | undefined;
    try {
      stats = lstatSync(fsPath(join(reader.root, rel)), { bigint: true, throwIfNoEntry: false });
    } catch {
      return; // Unreachable now: no later backup can be judged by it either, and each reads its own.
    }
    const verdict = stats && this.#verdicts.get(`${stats.dev}:${stats.ino}`);
    if (verdict !== undefined && verdict.backup === this.#backup) verdict.ok = false;
  }
}
