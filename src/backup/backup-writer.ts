// Where a backup is written. `BackupWriter` is the seam the pipeline writes a backup through; `LocalTreeWriter`
// builds a plain directory tree under a temporary sibling name and publishes it with one rename once every
// file, the index and the manifest (last) are written and flushed. Object storage will be a second writer.

import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  describeCause,
  isStatesnapError,
  isSystemErrorUnder,
  outOfResourcesAt,
  StatesnapError,
} from '../core/errors.js';
import { Flusher } from '../core/flush.js';
import { applyDirectoryAttributes, entryExists, removeTree } from '../core/fs-tree.js';
import type { Destination, FileFailed, FileWritten } from '../core/pipeline.js';
import type { FileOp, ReadSpec, TaskResult, WorkerTask } from '../core/protocol.js';
import { findStaleSiblings, siblingPath } from '../core/siblings.js';
import { pauseAt } from '../core/test-hooks.js';
import type { PlannedDir, SkipKind } from '../core/walk.js';
import { IndexWriter } from '../format/index-file.js';
import {
  INDEX_FILE,
  type IndexRecord,
  MANIFEST_FILE,
  type Manifest,
  META_DIR,
  serializeManifest,
} from '../format/manifest.js';

export interface BackupWriter extends Destination {
  /** Where the backup appears once committed. */
  readonly location: string;
  /** Ends the index (no entry comes after this) and says what the manifest records about it. */
  sealIndex(): IndexRecord;
  /** Writes the manifest, the commit marker, and makes the backup visible; after this it is complete. */
  commit(manifest: Manifest): Promise<{ replacedExisting: boolean }>;
}

export interface LocalTreeOptions {
  /** Replace an existing backup at the location, once the new one is complete. */
  force: boolean;
  /** Flush to stable storage before publishing. */
  sync: boolean;
  /** The location as the user gave it, for messages. */
  given: string;
}

function destWriteError(path: string, error: unknown): StatesnapError {
  if (isStatesnapError(error)) return error;
  return (
    outOfResourcesAt(path, error) ??
    new StatesnapError('ERR_DEST_WRITE', `cannot write backup ${path}: ${describeCause(error)}`, {
      path,
      cause: error,
    })
  );
}

/**
 * Cleans what a killed backup left beside `dest`: an unfinished tree is removed; a previous backup that was
 * renamed aside for `--force` is put back if the new one never arrived, removed otherwise.
 */
function cleanStaleBackupSiblings(dest: string): void {
  for (const sibling of findStaleSiblings(dest, ['partial', 'replaced'])) {
    if (sibling.purpose === 'replaced' && !entryExists(dest)) renameSync(sibling.path, dest);
    else removeTree(sibling.path);
  }
}

/** A backup as a directory tree, built at `<dest>.partial-<pid>-<random>` and renamed to `dest` when complete. */
export class LocalTreeWriter implements BackupWriter {
  readonly location: string;
  readonly #partial: string;
  readonly #force: boolean;
  readonly #index: IndexWriter;
  readonly #flusher: Flusher;
  // Directory modes and mtimes are applied after their contents, at commit.
  readonly #dirs: PlannedDir[] = [];

  /**
   * Cleans what killed runs left beside `dest`, refuses an existing `dest` unless `force`, and starts the
   * partial tree with its index. A failure here leaves nothing behind.
   */
  static open(dest: string, options: LocalTreeOptions): LocalTreeWriter {
    let exists: boolean;
    try {
      cleanStaleBackupSiblings(dest);
      exists = entryExists(dest);
    } catch (error) {
      throw destWriteError(dest, error);
    }
    if (exists && !options.force) {
      throw new StatesnapError(
        'ERR_DEST_EXISTS',
        `destination ${options.given} already exists (use --force to replace it)`,
        { path: options.given },
      );
    }
    const partial = siblingPath(dest, 'partial');
    try {
      mkdirSync(partial, { mode: 0o700 });
      mkdirSync(join(partial, META_DIR));
      const writer = new LocalTreeWriter(dest, partial, options, new IndexWriter(partial));
      pauseAt?.('partial-created');
      return writer;
    } catch (error) {
      removeTree(partial);
      throw destWriteError(options.given, error); // the cause names the partial tree
    }
  }

  private constructor(dest: string, partial: string, options: LocalTreeOptions, index: IndexWriter) {
    this.location = dest;
    this.#partial = partial;
    this.#force = options.force;
    this.#index = index;
    this.#flusher = new Flusher(partial, options.sync);
  }

  dir(dir: PlannedDir): void {
    if (dir.rel !== '') {
      try {
        mkdirSync(join(this.#partial, dir.rel), { mode: 0o700 });
      } catch (error) {
        throw destWriteError(join(this.location, dir.rel), error);
      }
      this.#index.add({ path: dir.rel, type: 'dir', mode: dir.mode, mtime_ns: dir.mtimeNs.toString() });
    }
    this.#dirs.push(dir);
  }

  task(files: FileOp[], from: ReadSpec): WorkerTask {
    return { kind: 'copy', files, from, to: { root: this.#partial, confineTo: null, writeMode: 'create' } };
  }

  fileDone(file: FileWritten): void {
    this.#index.add({
      path: file.rel,
      type: 'file',
      size: file.size,
      mode: file.mode,
      mtime_ns: file.mtimeNs,
      sha256: file.hash,
    });
  }

  skipped(rel: string, kind: SkipKind): void {
    // Excluded and reserved paths are not part of the store's backup; links and special files are listed.
    if (kind !== 'excluded' && kind !== 'reserved') this.#index.add({ path: rel, type: kind, skipped: true });
  }

  written(result: TaskResult): void {
    this.#flusher.noteWritten(result.bytes);
  }

  writeFailed(file: FileFailed): Error {
    const path = join(this.location, file.rel);
    return new StatesnapError('ERR_DEST_WRITE', `cannot write ${path}: ${file.message}`, {
      path,
      cause: file.cause,
    });
  }

  sealIndex(): IndexRecord {
    return { path: INDEX_FILE, ...this.#index.close() };
  }

  async commit(manifest: Manifest): Promise<{ replacedExisting: boolean }> {
    try {
      writeFileSync(join(this.#partial, MANIFEST_FILE), serializeManifest(manifest), {
        flag: 'wx',
        mode: 0o644,
      });
      applyDirectoryAttributes(this.#partial, this.#dirs);
    } catch (error) {
      throw destWriteError(this.#partial, error);
    }
    pauseAt?.('manifest-written');
    return { replacedExisting: await this.#publish() };
  }

  /**
   * Flushes the finished tree and renames it to its location. With `force`, an existing backup there is first
   * renamed aside and removed only after the new one is in place. Without it, one that appeared since `open`
   * (another run finished first) is refused, never replaced. Returns whether a backup was replaced.
   */
  async #publish(): Promise<boolean> {
    const dest = this.location;
    await this.#flusher.finish();
    pauseAt?.('before-publish');
    if (!this.#force && entryExists(dest)) {
      throw new StatesnapError(
        'ERR_DEST_EXISTS',
        `destination ${dest} appeared while the backup ran (use --force to replace it)`,
        { path: dest },
      );
    }
    let replaced: string | null = null;
    try {
      if (this.#force && entryExists(dest)) {
        replaced = siblingPath(dest, 'replaced');
        renameSync(dest, replaced);
        pauseAt?.('after-rename-aside');
      }
      renameSync(this.#partial, dest);
      this.#flusher.syncDirectory(dirname(dest));
      pauseAt?.('published');
    } catch (error) {
      if (replaced !== null && !entryExists(dest)) renameSync(replaced, dest);
      throw new StatesnapError(
        'ERR_DEST_WRITE',
        `cannot move the finished backup to ${dest}: ${describeCause(error)}`,
        { path: dest, cause: error },
      );
    }
    if (replaced !== null) removeTree(replaced);
    return replaced !== null;
  }

  // An I/O failure on our side of the copy (the partial tree, its index and manifest, the rename) is a write
  // failure of the backup; anything else was explained where it happened.
  explain(error: unknown): unknown {
    const ours = isSystemErrorUnder(error, [this.#partial, this.location]);
    return ours ? destWriteError(this.location, error) : error;
  }

  async abandon(): Promise<void> {
    await this.#flusher.settle();
    this.#index.abandon();
    removeTree(this.#partial);
  }
}
