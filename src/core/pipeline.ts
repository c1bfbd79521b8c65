// Runs every file of a backup through the worker pool once (a hash pass or a copy pass), streaming the
// entries with backpressure so memory stays flat, with one failure path: the first error stops the pass,
// in-flight batches finish, and that error (or ERR_ABORTED on the caller's signal) is what the pass throws.

import { type BackupSource, streamEntries } from '../read/backup-reader.js';
import { abortError } from './errors.js';
import { BatchDispatcher, type WorkerPool } from './pool.js';
import type { FileOp, FileOutcome, SkippedKind, TaskResult, WorkerTask } from './protocol.js';
import type { PlannedDir, WalkProblem } from './walk.js';

export interface BackupPass {
  source: BackupSource;
  pool: WorkerPool;
  threads: number;
  signal: AbortSignal;
  refuseCaseCollisions: boolean;
  makeTask: (files: FileOp[]) => WorkerTask;
  /** Each file's outcome, on the main thread; throwing fails the pass. */
  onOutcome: (outcome: FileOutcome) => void;
  /** After each batch's outcomes (progress, flushing). */
  onBatch?: (result: TaskResult) => void;
  /** Each directory, before its contents; throwing fails the pass. */
  dir?: (dir: PlannedDir) => void;
  /** Each file, before it is dispatched. */
  file?: (op: FileOp) => void;
  skipped?: (rel: string, kind: SkippedKind) => void;
  /** An entry an Oxios tree walk could not read or represent; throwing fails the pass. */
  problem: (rel: string, problem: WalkProblem, message: string) => void;
}

export async function runBackupPass(pass: BackupPass): Promise<void> {
  // Errors raised on the main thread (a bad outcome, a directory that cannot be made) stop the pool and the
  // entry stream through this; its reason is the error the pass reports, whichever stage noticed it first.
  const failure = new AbortController();
  const signal = AbortSignal.any([pass.signal, failure.signal]);
  const guard =
    <A extends unknown[]>(callback: (...args: A) => void) =>
    (...args: A): void => {
      try {
        callback(...args);
      } catch (error) {
        failure.abort(error);
        throw error;
      }
    };
  const dispatcher = new BatchDispatcher({
    pool: pass.pool,
    threads: pass.threads,
    signal,
    makeTask: pass.makeTask,
    onResult: guard((result: TaskResult) => {
      for (const outcome of result.outcomes) pass.onOutcome(outcome);
      pass.onBatch?.(result);
    }),
  });
  try {
    await streamEntries(
      pass.source,
      {
        dir: guard(pass.dir ?? (() => {})),
        file: (op) => {
          pass.file?.(op);
          return dispatcher.add(op);
        },
        skipped: pass.skipped ?? (() => {}),
        problem: guard(pass.problem),
      },
      { refuseCaseCollisions: pass.refuseCaseCollisions, signal },
    );
    await dispatcher.finish();
  } catch (error) {
    failure.abort(error);
    await dispatcher.settle();
    if (pass.signal.aborted) throw abortError(pass.signal, pass.source.root);
    throw failure.signal.reason;
  }
  if (pass.signal.aborted) throw abortError(pass.signal, pass.source.root);
}
