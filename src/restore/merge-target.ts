// Merge mode, Oxios' behaviour made safe: the backup's files are written over the live target through temp
// files renamed into place; files only in the target stay. Before the first write, every path of the backup is
// checked against the target (types, name lengths, permissions, room), since a merge cannot be undone; nothing
// is written or created through a symlink found in the target, nor outside it.

import { accessSync, constants, lstatSync, type Stats } from 'node:fs';
import { basename, join } from 'node:path';
import { assert, describeCause, type StatesnapError, systemErrorCode } from '../core/errors.js';
import { Flusher } from '../core/flush.js';
import { applyDirectoryAttributes, makeDirectoryWithin } from '../core/fs-tree.js';
import { CAN_LOCATE_FDS } from '../core/paths.js';
import type { FileFailed } from '../core/pipeline.js';
import { type FileOp, fsPath, type ReadSpec, type TaskResult, type WorkerTask } from '../core/protocol.js';
import { RoomNeeded } from '../core/room.js';
import type { PlannedDir } from '../core/walk.js';
import { TargetLock } from './journal.js';
import {
  type AttributeRules,
  explainTargetError,
  fileWriteFailed,
  type RestoreTarget,
  targetInvalid,
  targetWriteError,
} from './restore-target.js';

// Linux's PATH_MAX: a longer path cannot be opened, so a merge that would need one is refused up front.
const PATH_MAX = 4096;

/** A directory of the backup, as the target has it. */
type TargetDir =
  | { exists: true; stats: Stats; receivesWrites: boolean }
  /** Created by the merge, on the filesystem of `anchor`: its nearest existing ancestor (a relative path). */
  | { exists: false; anchor: string };

function parentOf(rel: string): string {
  return rel.slice(0, Math.max(0, rel.lastIndexOf('/')));
}

export class MergeTarget implements RestoreTarget {
  readonly checkFirst = true;
  // A live target's directories cannot be probed for case behaviour without writing into them.
  readonly refuseCaseCollisions = true;
  readonly #target: string;
  // `target` is already real (its parent resolved, itself not a symlink): every write must stay under it.
  readonly #confineTo: string | null;
  readonly #threads: number;
  readonly #flusher: Flusher;
  readonly #room: RoomNeeded;
  /** Every directory of the backup by relative path, as checked in the target. */
  readonly #planned = new Map<string, TargetDir>();
  /** The directories to create, parents first. */
  readonly #toCreate: string[] = [];
  readonly #dirs: PlannedDir[] = [];
  #largestFile = 0;
  readonly #rules: AttributeRules;
  readonly #lock: TargetLock | null;

  /**
   * Takes the target's lock, unless `checkOnly`: a dry run makes every check (planDir, planFile, checkPlan)
   * and writes nothing, the lock included.
   */
  constructor(
    target: string,
    options: { sync: boolean; threads: number; checkOnly?: boolean } & AttributeRules,
  ) {
    this.#target = target;
    this.#rules = { owners: options.owners, modeMask: options.modeMask };
    this.#confineTo = CAN_LOCATE_FDS ? target : null;
    this.#threads = options.threads;
    this.#flusher = new Flusher(target, options.sync);
    this.#room = new RoomNeeded(target);
    this.#lock = options.checkOnly ? null : new TargetLock(target, 'merge', options.sync);
  }

  #checkPathLength(path: string): void {
    if (Buffer.byteLength(path) >= PATH_MAX) {
      throw targetInvalid(this.#target, `${path} would be longer than the system allows (${PATH_MAX} bytes)`);
    }
  }

  /** lstat of a backup path inside the target, without changing anything; undefined when nothing is there. */
  #inspect(rel: string): Stats | undefined {
    const path = join(this.#target, rel);
    this.#checkPathLength(path);
    try {
      return lstatSync(fsPath(path), { throwIfNoEntry: false });
    } catch (error) {
      throw (
        this.#nameRefused(path, error) ??
        targetInvalid(this.#target, `cannot inspect ${path}: ${describeCause(error)}`)
      );
    }
  }

  #nameRefused(path: string, error: unknown): StatesnapError | null {
    if (systemErrorCode(error) !== 'ENAMETOOLONG') return null;
    return targetInvalid(
      this.#target,
      `the name of ${path} is longer than the target's filesystem allows (ENAMETOOLONG)`,
    );
  }

  /**
   * Whether `rel`'s name fits on the filesystem it would be created on, below a directory the merge creates:
   * the same name is looked up (never created) in the nearest existing ancestor, where lookup says
   * ENAMETOOLONG for a name the filesystem cannot hold.
   */
  #checkNewName(anchor: string, rel: string): void {
    const path = join(this.#target, rel);
    this.#checkPathLength(path);
    try {
      lstatSync(fsPath(join(this.#target, anchor, basename(rel))), { throwIfNoEntry: false });
    } catch (error) {
      const refused = this.#nameRefused(path, error);
      if (refused) throw refused;
    }
  }

  #parent(rel: string): TargetDir {
    const parent = this.#planned.get(parentOf(rel));
    assert(parent !== undefined, `the backup lists ${rel} before its directory`);
    return parent;
  }

  /** What the target has at `rel` (in `parent`); nothing, below a directory the merge creates. */
  #lookUp(rel: string, parent: TargetDir): Stats | undefined {
    if (parent.exists) return this.#inspect(rel);
    this.#checkNewName(parent.anchor, rel);
    return undefined;
  }

  planDir(dir: PlannedDir): void {
    if (dir.rel === '') {
      this.#planned.set('', { exists: true, stats: lstatSync(this.#target), receivesWrites: false });
      return;
    }
    const parent = this.#parent(dir.rel);
    const stats = this.#lookUp(dir.rel, parent);
    const path = join(this.#target, dir.rel);
    if (stats === undefined) {
      if (parent.exists) parent.receivesWrites = true;
      const anchor = parent.exists ? parentOf(dir.rel) : parent.anchor;
      this.#planned.set(dir.rel, { exists: false, anchor });
      this.#toCreate.push(dir.rel);
      this.#room.addDirectory(basename(dir.rel));
    } else if (stats.isSymbolicLink()) {
      throw targetInvalid(
        this.#target,
        `${path} is a symlink where the backup has a directory; it is never written through`,
      );
    } else if (!stats.isDirectory()) {
      throw targetInvalid(this.#target, `${path} is not a directory, but the backup has a directory there`);
    } else {
      this.#planned.set(dir.rel, { exists: true, stats, receivesWrites: false });
    }
  }

  planFile(op: FileOp, dataBytes: number): void {
    this.#largestFile = Math.max(this.#largestFile, dataBytes);
    const parent = this.#parent(op.rel);
    const stats = this.#lookUp(op.rel, parent);
    if (parent.exists) parent.receivesWrites = true;
    if (stats === undefined) {
      this.#room.addFile(basename(op.rel), dataBytes);
    } else if (stats.isDirectory()) {
      throw targetInvalid(
        this.#target,
        `${join(this.#target, op.rel)} is a directory, but the backup has a file there`,
      );
    } else {
      // Anything else (a file, a symlink, a FIFO) is replaced by a rename, never written through; a sticky
      // directory needs no check of its own, since the directories written into must be the user's own.
      this.#room.addBytes(Math.max(0, this.#room.allocated(dataBytes) - stats.blocks * 512));
    }
  }

  checkPlan(): void {
    // Root (0), or a platform without uids (undefined), may set any directory's attributes.
    const uid = process.geteuid?.();
    for (const [rel, dir] of this.#planned) {
      if (!dir.exists) continue;
      const path = rel === '' ? this.#target : join(this.#target, rel);
      // Giving a directory its recorded mode and mtime needs its owner (or root), as the last step of the merge.
      if (uid !== undefined && uid !== 0 && dir.stats.uid !== uid) {
        throw targetWriteError(
          path,
          new Error(`it belongs to uid ${dir.stats.uid}, so its mode and mtime cannot be restored`),
        );
      }
      if (!dir.receivesWrites) continue;
      try {
        // Says EROFS for a read-only filesystem even to root.
        accessSync(fsPath(path), constants.W_OK | constants.X_OK);
      } catch (error) {
        throw targetWriteError(path, error);
      }
    }
    // Each thread holds one temp file beside the file it replaces until the rename frees the old one.
    this.#room.addBytes(this.#threads * this.#room.allocated(this.#largestFile));
    this.#room.addInodes(this.#threads);
    this.#room.ensure(`merge into ${this.#target}`);
  }

  prepare(): void {
    for (const rel of this.#toCreate) {
      const parent = parentOf(rel);
      try {
        makeDirectoryWithin(join(this.#target, parent), basename(rel), 0o700, this.#confineTo);
      } catch (error) {
        throw targetWriteError(join(this.#target, rel), error);
      }
    }
  }

  dir(dir: PlannedDir): void {
    this.#dirs.push(dir);
  }

  task(files: FileOp[], from: ReadSpec): WorkerTask {
    const to = {
      root: this.#target,
      confineTo: this.#confineTo,
      writeMode: 'replace',
      ...this.#rules,
    } as const;
    return { kind: 'copy', files, from, to };
  }

  written(result: TaskResult): void {
    this.#flusher.noteWritten(result.bytes);
  }

  writeFailed(file: FileFailed): Error {
    return fileWriteFailed(this.#target, file);
  }

  async finish(): Promise<void> {
    // Every file is written: their writeback runs while the directories get their attributes.
    this.#flusher.start();
    applyDirectoryAttributes(this.#target, this.#dirs, { confineTo: this.#confineTo, ...this.#rules });
    await this.#flusher.finish();
  }

  commit(): null {
    this.#lock?.release();
    return null;
  }

  explain(error: unknown): unknown {
    return explainTargetError(error, this.#target, [this.#target]);
  }

  async abandon(): Promise<void> {
    await this.#flusher.settle();
    this.#lock?.release();
  }
}
