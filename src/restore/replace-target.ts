// Replace mode: the restored tree is built in a fresh staging directory beside the target (same filesystem),
// once the filesystem is known to have room for it, then flushed and swapped in by the journal (journal.ts);
// the previous target is kept as a rollback copy.

import { mkdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { assert, throwIfAborted } from '../core/errors.js';
import { Flusher } from '../core/flush.js';
import { applyDirectoryAttributes, entryExists } from '../core/fs-tree.js';
import type { FileFailed } from '../core/pipeline.js';
import { type FileOp, fsPath, type ReadSpec, type TaskResult, type WorkerTask } from '../core/protocol.js';
import { RoomNeeded } from '../core/room.js';
import { siblingPath } from '../core/siblings.js';
import { pauseAt } from '../core/test-hooks.js';
import type { PlannedDir } from '../core/walk.js';
import type { WarningLog } from '../core/warnings.js';
import { removeOwnStaging, rollbackPathFor, swapIn, TargetLock } from './journal.js';
import {
  type AttributeRules,
  explainTargetError,
  fileWriteFailed,
  type RestoreTarget,
  targetWriteError,
} from './restore-target.js';

/**
 * Whether names that differ only by case are the same file in `dir` (macOS, Windows shares, ext4 casefold).
 * Such a filesystem cannot hold `A.json` and `a.json` side by side, so a backup holding both is refused.
 */
function isCaseInsensitive(dir: string): boolean {
  const probe = join(dir, '.statesnap-case-probe');
  writeFileSync(probe, '', { flag: 'wx' });
  try {
    return entryExists(join(dir, '.STATESNAP-CASE-PROBE'));
  } finally {
    unlinkSync(probe);
  }
}

export interface ReplaceOptions extends AttributeRules {
  /** Keep the previous target as the rollback copy. */
  keep: boolean;
  sync: boolean;
  /** The caller's signal: the last chance to stop is before the swap. */
  signal: AbortSignal;
  /** Only plan and check (a dry run): the target's lock is not taken, nothing is written. */
  checkOnly?: boolean;
}

export class ReplaceTarget implements RestoreTarget {
  readonly checkFirst = false;
  readonly #target: string;
  readonly #staging: string;
  readonly #options: ReplaceOptions;
  readonly #warnings: WarningLog;
  readonly #flusher: Flusher;
  readonly #dirs: PlannedDir[] = [];
  // The staging tree is written while the old target stays: it needs room of its own, beside the target.
  readonly #room: RoomNeeded;
  readonly #lock: TargetLock | null;
  #caseInsensitive = true;
  // From the swap on, the journal owns the staging tree: a failure there leaves it for recovery.
  #swapping = false;

  constructor(target: string, options: ReplaceOptions, warnings: WarningLog) {
    this.#target = target;
    this.#staging = siblingPath(target, 'staging');
    this.#options = options;
    this.#warnings = warnings;
    this.#flusher = new Flusher(this.#staging, options.sync);
    this.#room = new RoomNeeded(dirname(target));
    this.#lock = options.checkOnly ? null : new TargetLock(target, 'replace', options.sync);
  }

  get refuseCaseCollisions(): boolean {
    return this.#caseInsensitive;
  }

  planDir(dir: PlannedDir): void {
    this.#room.addDirectory(basename(dir.rel === '' ? this.#staging : dir.rel));
  }

  planFile(op: FileOp, dataBytes: number): void {
    this.#room.addFile(basename(op.rel), dataBytes);
  }

  checkPlan(): void {
    this.#room.ensure(`restore ${this.#target} (the new tree is built beside the old one)`);
  }

  prepare(): void {
    try {
      mkdirSync(this.#staging, { mode: 0o700 });
    } catch (error) {
      throw targetWriteError(this.#target, error); // the cause names the staging tree
    }
    this.#caseInsensitive = isCaseInsensitive(this.#staging);
    pauseAt?.('staging-created');
  }

  dir(dir: PlannedDir): void {
    if (dir.rel !== '') {
      try {
        mkdirSync(fsPath(join(this.#staging, dir.rel)), { mode: 0o700 });
      } catch (error) {
        throw targetWriteError(join(this.#target, dir.rel), error);
      }
    }
    this.#dirs.push(dir);
  }

  task(files: FileOp[], from: ReadSpec): WorkerTask {
    // The staging tree is ours (mode 0700, fresh name): nothing can be swapped inside it.
    const { owners, modeMask } = this.#options;
    const to = { root: this.#staging, confineTo: null, writeMode: 'create', owners, modeMask } as const;
    return { kind: 'copy', files, from, to };
  }

  written(result: TaskResult): void {
    this.#flusher.noteWritten(result.bytes);
  }

  writeFailed(file: FileFailed): Error {
    return fileWriteFailed(this.#target, file);
  }

  async finish(): Promise<void> {
    const { owners, modeMask } = this.#options;
    // Every file is written: their writeback runs while the directories get their attributes.
    this.#flusher.start();
    applyDirectoryAttributes(this.#staging, this.#dirs, { owners, modeMask });
    await this.#flusher.finish();
    pauseAt?.('staging-flushed');
    // The last moment a Ctrl-C can still stop the restore: the swap itself is not interrupted.
    throwIfAborted(this.#options.signal, this.#target);
  }

  commit(): string | null {
    assert(this.#lock !== null, 'a checking-only target is never committed');
    this.#swapping = true;
    return swapIn(
      {
        target: this.#target,
        staging: this.#staging,
        rollback: rollbackPathFor(this.#target),
        keep: this.#options.keep,
      },
      this.#lock,
      this.#options.sync,
      (dir) => this.#flusher.syncDirectory(dir),
      this.#warnings,
    );
  }

  explain(error: unknown): unknown {
    return explainTargetError(error, this.#target, [this.#staging, this.#target]);
  }

  async abandon(): Promise<void> {
    if (!this.#swapping) {
      await this.#flusher.settle();
      removeOwnStaging(this.#staging);
    }
    this.#lock?.release();
  }
}
