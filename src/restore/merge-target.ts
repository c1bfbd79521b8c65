// Merge mode, Oxios' behaviour made safe: the backup's files are written over the live target through temp
// files renamed into place; files only in the target stay. Nothing is written or created through a symlink
// found in the target, nor outside it, and nothing at all before every backup file has been checked.

import { lstatSync, type Stats } from 'node:fs';
import { basename, join } from 'node:path';
import { describeCause } from '../core/errors.js';
import { Flusher } from '../core/flush.js';
import { applyDirectoryAttributes, makeDirectoryWithin } from '../core/fs-tree.js';
import { CAN_LOCATE_FDS } from '../core/paths.js';
import type { FileFailed } from '../core/pipeline.js';
import type { FileOp, ReadSpec, TaskResult, WorkerTask } from '../core/protocol.js';
import type { PlannedDir } from '../core/walk.js';
import { TargetLock } from './journal.js';
import { fileWriteFailed, type RestoreTarget, targetInvalid, targetWriteError } from './restore-target.js';

/**
 * lstats every directory of the backup inside the target, parents first, without changing anything: a symlink
 * (or a file) where the backup has a directory is refused. Returns the directories to create.
 */
function checkSkeleton(target: string, dirs: readonly PlannedDir[]): string[] {
  const missing = new Set<string>();
  for (const dir of dirs) {
    if (dir.rel === '') continue;
    const parent = dir.rel.slice(0, Math.max(0, dir.rel.lastIndexOf('/')));
    if (missing.has(parent)) {
      missing.add(dir.rel);
      continue;
    }
    const path = join(target, dir.rel);
    let stats: Stats | undefined;
    try {
      stats = lstatSync(path, { throwIfNoEntry: false });
    } catch (error) {
      throw targetInvalid(target, `cannot inspect ${path}: ${describeCause(error)}`);
    }
    if (stats === undefined) missing.add(dir.rel);
    else if (stats.isSymbolicLink()) {
      throw targetInvalid(
        target,
        `${path} is a symlink where the backup has a directory; it is never written through`,
      );
    } else if (!stats.isDirectory()) {
      throw targetInvalid(target, `${path} is not a directory, but the backup has a directory there`);
    }
  }
  return [...missing];
}

export class MergeTarget implements RestoreTarget {
  readonly checkFirst = true;
  // A live target's directories cannot be probed for case behaviour without writing into them.
  readonly refuseCaseCollisions = true;
  readonly #target: string;
  // `target` is already real (its parent resolved, itself not a symlink): every write must stay under it.
  readonly #confineTo: string | null;
  readonly #toCreate: string[];
  readonly #flusher: Flusher;
  readonly #lock: TargetLock;
  readonly #dirs: PlannedDir[] = [];

  /** Checks, without writing, that the backup's directories (`dirs`, parents first) can be merged into `target`. */
  constructor(target: string, dirs: readonly PlannedDir[], options: { sync: boolean }) {
    this.#target = target;
    this.#confineTo = CAN_LOCATE_FDS ? target : null;
    this.#flusher = new Flusher(target, options.sync);
    // Held from before the checks to the end: no other restore checks or writes the target meanwhile.
    this.#lock = new TargetLock(target, 'merge', options.sync);
    try {
      this.#toCreate = checkSkeleton(target, dirs);
    } catch (error) {
      this.#lock.release();
      throw error;
    }
  }

  prepare(): void {
    for (const rel of this.#toCreate) {
      const parent = rel.slice(0, Math.max(0, rel.lastIndexOf('/')));
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
    const to = { root: this.#target, confineTo: this.#confineTo, writeMode: 'replace' } as const;
    return { kind: 'copy', files, from, to };
  }

  written(result: TaskResult): void {
    this.#flusher.noteWritten(result.bytes);
  }

  writeFailed(file: FileFailed): Error {
    return fileWriteFailed(this.#target, file);
  }

  async finish(): Promise<void> {
    applyDirectoryAttributes(this.#target, this.#dirs, this.#confineTo);
    await this.#flusher.finish();
  }

  commit(): null {
    this.#lock.release();
    return null;
  }

  explain(error: unknown): unknown {
    return targetWriteError(this.#target, error);
  }

  async abandon(): Promise<void> {
    await this.#flusher.settle();
    this.#lock.release();
  }
}
