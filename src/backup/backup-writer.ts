// Where a backup is written. `BackupWriter` is the seam the pipeline writes a backup through; `LocalTreeWriter`
// builds a plain directory tree under a temporary sibling name and publishes it with one rename once every
// file, the index and the manifest (last) are written and flushed; the index lists the entries in canonical
// order whatever order the workers finish in. Object storage will be a second writer.

import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  assert,
  describeCause,
  isStatesnapError,
  isSystemErrorUnder,
  outOfResourcesAt,
  StatesnapError,
} from '../core/errors.js';
import { Flusher } from '../core/flush.js';
import { applyDirectoryAttributes, entryExists, removeTree } from '../core/fs-tree.js';
import { ReorderBuffer } from '../core/index-order.js';
import { CAN_LOCATE_FDS, shellQuote } from '../core/paths.js';
import type { Destination, FileFailed, FileWritten } from '../core/pipeline.js';
import {
  type ChangeRuleOptions,
  type FileOp,
  fsPath,
  type ReadSpec,
  type TaskResult,
  type WorkerTask,
} from '../core/protocol.js';
import { findSiblings, siblingPath } from '../core/siblings.js';
import { pauseAt } from '../core/test-hooks.js';
import type { PlannedDir, SkipKind } from '../core/walk.js';
import type { WarningLog } from '../core/warnings.js';
import { IndexWriter } from '../format/index-file.js';
import type { RecordedEntry } from '../format/index-reader.js';
import {
  INDEX_FILE,
  type IndexRecord,
  MANIFEST_FILE,
  type Manifest,
  META_DIR,
  type RootRecord,
  serializeManifest,
} from '../format/manifest.js';
import { whyNotReplaceable, writePublishedRecord } from './published-record.js';

export interface BackupWriter extends Destination {
  /** Where the backup appears once committed. */
  readonly location: string;
  /** Ends the index (no entry comes after this) and says what the manifest records about it. */
  sealIndex(): IndexRecord;
  /** The source root directory's attributes, which the manifest records (no index line describes the root). */
  rootRecord(): RootRecord;
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
  /** Where leftovers of other runs that are kept (or cannot be removed) are reported. */
  warnings: WarningLog;
  /**
   * Where the tree is built: a name the caller reserved (a snapshot repository's `.partial-<id>`, under its
   * lock). @default a new sibling of the location, owned by this process
   */
  partial?: string;
  /**
   * The previous backup (its real path) that files are hard-linked from, and the change rule the workers apply
   * to files that carry their previous entry; null: none.
   */
  linkFrom: { root: string; rule: ChangeRuleOptions } | null;
}

/** How the files of a backup got there, as the manifest's `counts` records them. */
export interface WriteCounts {
  linked: number;
  copied: number;
  /** Files read and hashed to decide whether to link (racy, no identity recorded, `checksum`). */
  hashed: number;
  /** Of those, the ones linked because their hash matched. */
  hashMatched: number;
  /** Links that failed in an expected way (by errno) and became copies. */
  linkFallbacks: Record<string, number>;
  /** Links undone because the previous backup's file was not the one its index describes. */
  checkMismatches: number;
  /** Bytes of the copied files: what this backup added to the disk besides directories and the index. */
  bytesNew: number;
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

function notReplaceable(dest: string, reason: string): StatesnapError {
  return new StatesnapError(
    'ERR_DEST_NOT_REPLACEABLE',
    `--force replaces only a backup statesnap made at ${dest}, and ${reason}; if you no longer need it, ` +
      `remove it by hand (rm -rf -- ${shellQuote(dest)}) and run again`,
    { path: dest },
  );
}

/**
 * Cleans what killed backups left beside `dest`: an unfinished tree is removed; a previous backup that was
 * renamed aside for `--force` is put back if the new one never arrived, removed otherwise. What may belong to
 * a run elsewhere (another container or machine), or cannot be removed, is kept and reported: it never stops
 * this backup, whose own names are new.
 */
function cleanBackupSiblings(dest: string, warnings: WarningLog): void {
  for (const sibling of findSiblings(dest, ['partial', 'replaced'])) {
    if (sibling.owner === 'running') continue;
    if (sibling.owner === 'unknown') {
      warnings.add(
        sibling.path,
        'leftover-kept',
        `kept: left by ${sibling.ownerText}, which cannot be checked from here; remove it by hand if no statesnap backup to ${dest} runs there`,
      );
      continue;
    }
    try {
      if (sibling.purpose === 'replaced' && !entryExists(dest)) renameSync(sibling.path, dest);
      else removeTree(sibling.path);
    } catch (error) {
      warnings.add(
        sibling.path,
        'leftover-kept',
        `cannot remove what a killed backup left: ${describeCause(error)}`,
      );
    }
  }
}

/**
 * Refuses an existing `dest` unless `force` and it is a backup statesnap published there; returns whether one
 * exists (and would be replaced).
 */
export function checkDestination(dest: string, options: Pick<LocalTreeOptions, 'force' | 'given'>): boolean {
  if (!entryExists(dest)) return false;
  if (!options.force) {
    throw new StatesnapError(
      'ERR_DEST_EXISTS',
      `destination ${options.given} already exists (use --force to replace it)`,
      { path: options.given },
    );
  }
  const reason = whyNotReplaceable(dest);
  if (reason !== null) throw notReplaceable(dest, reason);
  return true;
}

export function noneWritten(): WriteCounts {
  return {
    linked: 0,
    copied: 0,
    hashed: 0,
    hashMatched: 0,
    linkFallbacks: {},
    checkMismatches: 0,
    bytesNew: 0,
  };
}

/**
 * Counts how one file got into a backup: linked from the previous one (or, in object storage, pointing into
 * its objects), after a hash or not, or copied. Returns whether it was copied.
 */
export function countWritten(counts: WriteCounts, file: FileWritten): boolean {
  const { link } = file;
  if (link?.hashed) counts.hashed++;
  if (link?.linked) {
    counts.linked++;
    if (link.hashed) counts.hashMatched++;
    return false;
  }
  counts.copied++;
  counts.bytesNew += file.size;
  return true;
}

/** What the index (or, for the root, the manifest) records about a directory of the source. */
function attributesOf(dir: PlannedDir): RootRecord {
  assert(dir.uid !== undefined && dir.gid !== undefined, `the walk gave ${dir.rel} no owner`);
  return { mode: dir.mode, mtime_ns: dir.mtimeNs.toString(), uid: dir.uid, gid: dir.gid };
}

/** A backup as a directory tree, built at `<dest>.partial-<pid>-<random>` and renamed to `dest` when complete. */
export class LocalTreeWriter implements BackupWriter {
  readonly location: string;
  readonly #partial: string;
  readonly #force: boolean;
  readonly #warnings: WarningLog;
  readonly #index: IndexWriter;
  readonly #flusher: Flusher;
  readonly #linkFrom: { root: string; rule: ChangeRuleOptions } | null;
  // Directory modes and mtimes are applied after their contents, at commit.
  readonly #dirs: PlannedDir[] = [];
  // Index lines in the source's (canonical) order: a file's place is reserved when it is planned and filled
  // when its worker is done (or emptied when it could not be read).
  readonly #order: ReorderBuffer<RecordedEntry | null>;
  readonly #tickets = new Map<string, number>();
  readonly counts: WriteCounts = noneWritten();

  /**
   * Cleans what killed runs left beside `dest`, refuses an existing `dest` unless `force` and it is a backup
   * statesnap published there, and starts the partial tree with its index. A failure here leaves nothing behind.
   */
  static open(dest: string, options: LocalTreeOptions): LocalTreeWriter {
    try {
      cleanBackupSiblings(dest, options.warnings);
      checkDestination(dest, options);
    } catch (error) {
      throw destWriteError(dest, error);
    }
    const partial = options.partial ?? siblingPath(dest, 'partial');
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
    this.#warnings = options.warnings;
    this.#index = index;
    this.#flusher = new Flusher(partial, options.sync);
    this.#linkFrom = options.linkFrom;
    this.#order = new ReorderBuffer((entry) => {
      if (entry !== null) index.add(entry);
    });
  }

  dir(dir: PlannedDir): void {
    if (dir.rel !== '') {
      try {
        mkdirSync(fsPath(join(this.#partial, dir.rel)), { mode: 0o700 });
      } catch (error) {
        throw destWriteError(join(this.location, dir.rel), error);
      }
      this.#order.push({ path: dir.rel, type: 'dir', ...attributesOf(dir) });
    }
    this.#dirs.push(dir);
  }

  rootRecord(): RootRecord {
    const root = this.#dirs[0];
    assert(root?.rel === '', 'the source root was not the first directory');
    return attributesOf(root);
  }

  task(files: FileOp[], from: ReadSpec): WorkerTask {
    // A backup keeps every mode bit (a restore decides what to give back) and leaves owners to its index.
    const to = {
      root: this.#partial,
      confineTo: null,
      writeMode: 'create',
      owners: false,
      modeMask: 0o7777,
    } as const;
    if (this.#linkFrom === null) return { kind: 'copy', files, from, to };
    const { root, rule } = this.#linkFrom;
    return { kind: 'link', files, from, to, rule, linkFrom: { root, confined: CAN_LOCATE_FDS } };
  }

  file(op: FileOp): void {
    this.#tickets.set(op.rel, this.#order.reserve());
  }

  #fill(rel: string, entry: RecordedEntry | null): void {
    const ticket = this.#tickets.get(rel);
    assert(ticket !== undefined, `a worker reported ${rel}, which was not planned`);
    this.#tickets.delete(rel);
    this.#order.fill(ticket, entry);
  }

  fileLost(file: FileFailed): void {
    this.#fill(file.rel, null);
  }

  fileDone(file: FileWritten): void {
    this.#count(file);
    this.#fill(file.rel, {
      path: file.rel,
      type: 'file',
      size: file.size,
      mode: file.mode,
      mtime_ns: file.mtimeNs,
      ctime_ns: file.ctimeNs,
      ino: file.ino,
      uid: file.uid,
      gid: file.gid,
      sha256: file.hash,
      ...(file.link?.linked ? { linked: true as const } : {}),
    });
  }

  #count(file: FileWritten): void {
    const { counts } = this;
    const { link } = file;
    if (!countWritten(counts, file)) return;
    if (link?.fallback !== undefined) {
      counts.linkFallbacks[link.fallback] = (counts.linkFallbacks[link.fallback] ?? 0) + 1;
    }
    if (link?.mismatch !== undefined) {
      counts.checkMismatches++;
      this.#warnings.add(
        join(this.#linkFrom?.root ?? '', file.rel),
        'link-source-mismatch',
        `the link source's file is not the one its index describes (${link.mismatch}); copied instead`,
      );
    }
  }

  skipped(rel: string, kind: SkipKind): void {
    // Excluded and reserved paths are not part of the store's backup; links and special files are listed.
    if (kind !== 'excluded' && kind !== 'reserved')
      this.#order.push({ path: rel, type: kind, skipped: true });
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
    // Every file is written: their writeback runs while the index, the manifest and the directories are done.
    this.#flusher.start();
    this.#order.close();
    return { path: INDEX_FILE, ...this.#index.close() };
  }

  async commit(manifest: Manifest): Promise<{ replacedExisting: boolean }> {
    try {
      writePublishedRecord(this.#partial, this.location);
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
   * renamed aside (and checked there: what was checked is what is replaced) and removed only after the new one
   * is in place. Without it, one that appeared since `open` (another run finished first) is refused, never
   * replaced. Returns whether a backup was replaced.
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
        const reason = whyNotReplaceable(replaced, dest);
        if (reason !== null) throw notReplaceable(dest, reason);
        pauseAt?.('after-rename-aside');
      }
      renameSync(this.#partial, dest);
      this.#flusher.syncDirectory(dirname(dest));
      pauseAt?.('published');
    } catch (error) {
      if (replaced !== null) this.#putBack(replaced);
      if (isStatesnapError(error)) throw error;
      throw new StatesnapError(
        'ERR_DEST_WRITE',
        `cannot move the finished backup to ${dest}: ${describeCause(error)}`,
        { path: dest, cause: error },
      );
    }
    if (replaced !== null) {
      try {
        removeTree(replaced);
      } catch (error) {
        this.#warnings.add(
          replaced,
          'leftover-kept',
          `cannot remove the previous backup, moved aside: ${describeCause(error)}; the next backup to ${dest} tries again`,
        );
      }
    }
    return replaced !== null;
  }

  /** Puts a backup renamed aside back at the location; if that fails, the next run does it (it is a stale sibling). */
  #putBack(replaced: string): void {
    try {
      if (!entryExists(this.location)) renameSync(replaced, this.location);
    } catch {}
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
    try {
      removeTree(this.#partial);
    } catch {
      // The error that failed the run is the one to report; a partial tree of a dead run is removed by the
      // next backup to this location.
    }
  }
}
