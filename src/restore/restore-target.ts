// The RestoreTarget seam: where a restore writes. A target holds the target's lock from its creation to its end,
// sees every entry of the backup before the first write and refuses what it cannot take, is prepared before the
// first write, finished after the last, and committed to make the restored state live. Replace mode
// (replace-target.ts) and merge mode (merge-target.ts) are its two implementations.

import { join } from 'node:path';
import { describeCause, isSystemErrorUnder, outOfResourcesAt, StatesnapError } from '../core/errors.js';
import type { Destination, FileFailed } from '../core/pipeline.js';
import type { FileOp, WriteSpec } from '../core/protocol.js';
import type { PlannedDir } from '../core/walk.js';

/** What restored files and directories get besides content: owners (a restore as root) and which mode bits. */
export type AttributeRules = Pick<WriteSpec, 'owners' | 'modeMask'>;

export interface RestoreTarget extends Destination {
  /** A merge cannot be undone: every backup file is checked (a pass of its own) before the first write. */
  readonly checkFirst: boolean;
  /** Backup paths that differ only by case are refused: the target's filesystem would make them one file. */
  readonly refuseCaseCollisions: boolean;
  /** A directory of the backup (parents first, '' is the root), as its first read lists it; nothing written yet. */
  planDir(dir: PlannedDir): void;
  /** A file of the backup, as its first read lists it; `dataBytes` of it take room (less when sparse). */
  planFile(op: FileOp, dataBytes: number): void;
  /** After the first read, before the first write: refuses what the target cannot take (room, conflicts). */
  checkPlan(): void;
  /** The first write: makes the directories the files go into. */
  prepare(): void;
  /** After the last file: directory attributes, then a flush. */
  finish(): Promise<void>;
  /** Makes the restored state live; returns where the previous target was kept, or null. */
  commit(): string | null;
}

export function targetInvalid(target: string, message: string): StatesnapError {
  return new StatesnapError('ERR_TARGET_INVALID', `cannot restore into ${target}: ${message}`, {
    path: target,
  });
}

export function targetWriteError(path: string, error: unknown): StatesnapError {
  if (error instanceof StatesnapError) return error;
  return (
    outOfResourcesAt(path, error) ??
    new StatesnapError('ERR_TARGET_WRITE', `cannot write ${path}: ${describeCause(error)}`, {
      path,
      cause: error,
    })
  );
}

/**
 * A target's `explain`: a system error on the trees it writes (`roots`) is a write failure there; anything
 * else (a bug, an error on the backup's side) was explained where it happened and stays as it is.
 */
export function explainTargetError(error: unknown, path: string, roots: readonly string[]): unknown {
  return isSystemErrorUnder(error, roots) ? targetWriteError(path, error) : error;
}

/** The error that stops a restore for a file the workers could not write (ENOSPC, EROFS, …). */
export function fileWriteFailed(target: string, file: FileFailed): StatesnapError {
  const path = join(target, file.rel);
  return new StatesnapError('ERR_TARGET_WRITE', `cannot restore ${path}: ${file.message}`, {
    path,
    cause: file.cause,
  });
}
