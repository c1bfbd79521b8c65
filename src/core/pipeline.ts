// The one pipeline that backup, restore (both modes, and merge's pre-check) and verify run on. A run acquires
// its resources in one place (the worker pool, the warning log, the destinations it adopts) and releases them on
// one failure path. A pass streams an entry source into a destination in batches, with backpressure, and sends
// every per-item problem through one error policy that says warn or abort (restic's archiver ErrorFunc).

import { abortError, assert, systemLimitError, throwIfAborted } from './errors.js';
import { BatchDispatcher, type BatchLimits, threadLimit, WorkerPool } from './pool.js';
import type {
  FileOp,
  FileOutcome,
  FileProblem,
  PlainError,
  ReadSpec,
  RunFailure,
  TaskResult,
  WorkerTask,
  WriteSpec,
} from './protocol.js';
import type { EntrySink, PlannedDir, SkipKind, WalkProblem } from './walk.js';
import { type Warning, WarningLog } from './warnings.js';

/** Where a pass's entries come from: the planner's walk of a live source, or a backup reader. */
export interface EntrySource {
  /** Where and how the workers read this source's files. */
  readonly read: ReadSpec;
  /**
   * false: files are planned without their sizes (0 in the op), and a file's bytes count as planned once a
   * worker has read it. @default true
   */
  readonly sizesPlanned?: boolean;
  /** Streams every entry into `sink`, a directory before its contents, waiting while `file` returns a promise. */
  entries(sink: EntrySink, signal: AbortSignal): Promise<void>;
  /** A source whose contents are downloaded rather than read by the workers (object storage). */
  readonly remote?: RemoteContent;
}

/** How a remote source's files reach the workers: grouped into ranged downloads, each one worker task. */
export interface RemoteContent {
  /** Whether `next` joins the batch being formed (one download). */
  joins(batch: readonly FileOp[], batchBytes: number, next: FileOp): boolean;
  /** Downloads a batch's bytes: the task that writes its files to `to` (null: only checks them). */
  task(files: FileOp[], to: WriteSpec | null, signal: AbortSignal): Promise<WorkerTask>;
}

/** Where a restore target's copy task writes: what a remote source's task writes to instead. */
function writeSpecOf(task: WorkerTask): WriteSpec {
  assert(task.kind === 'copy', `a remote source was given a ${task.kind} destination`);
  return task.to;
}

export type FileWritten = Extract<FileOutcome, { ok: true }>;
export type FileFailed = Extract<FileOutcome, { ok: false }>;

/** Where a pass's files go: a backup writer or a restore target. Every method runs on the main thread. */
export interface Destination {
  /** A directory of the source, parents first ('' is the root); throwing fails the run. */
  dir(dir: PlannedDir): void;
  /**
   * The worker task that writes one batch of the source's files (a promise: once there is room for it). A
   * destination that waits for room stops waiting when `signal` fires (the pass was stopped or failed).
   */
  task(files: FileOp[], from: ReadSpec, signal: AbortSignal): WorkerTask | Promise<WorkerTask>;
  /** How large a batch of this destination may grow. @default the pool's */
  readonly batchLimits?: BatchLimits;
  /** A file of the source, in the source's order, before it goes to the workers. */
  file?(op: FileOp): void;
  /** A file the workers wrote, in completion order. */
  fileDone?(file: FileWritten): void;
  /** A file the workers could not read (a warning, not a failure): it has no place in what is written. */
  fileLost?(file: FileFailed): void;
  /** An entry the source does not copy (a symlink, a FIFO, an excluded path, …). */
  skipped?(rel: string, kind: SkipKind): void;
  /** After each batch: what the workers wrote (a flusher starts writeback from here). */
  written(result: TaskResult): void;
  /** The error that fails the run when a file could not be written (ENOSPC, EROFS, …). */
  writeFailed(file: FileFailed): Error;
  /** The error a run that failed while this destination was adopted reports, given what was thrown. */
  explain(error: unknown): unknown;
  /** On the failure path, once no batch is in flight: removes what was made, or leaves it to recovery. */
  abandon(): Promise<void>;
}

/** A per-item problem: found while listing the source (`walk`), or by a worker reading a file (`read`). */
export type ItemProblem = { rel: string; message: string } & (
  | { stage: 'walk'; problem: WalkProblem; cause: undefined }
  | { stage: 'read'; problem: Exclude<FileProblem, RunFailure>; cause: PlainError | undefined }
);

/** Decides a per-item problem: a warning to record and go on, or the error that fails the run. */
export type ErrorPolicy = (problem: ItemProblem) => Warning | Error;

export interface SkipCounts {
  count: number;
  /** By kind, with the kinds' own names (`char-device`, as in the index); only kinds that occurred. */
  byKind: Partial<Record<SkipKind, number>>;
}

/** What a pass counted; a pass fills the caller's tally, so the counts survive a pass that fails. */
export interface Tally {
  filesPlanned: number;
  bytesPlanned: number;
  /** Files whose size `bytesPlanned` includes: every planned one, or (sizes not planned) those read so far. */
  filesSized: number;
  filesDone: number;
  bytesDone: number;
  /** The source has listed everything: `filesPlanned` and `bytesPlanned` are final. */
  planningDone: boolean;
  /** Directories below the root. */
  dirs: number;
  /** Files whose path held another file than the source listed (renamed over mid-run); the new one was read. */
  replaced: number;
  skipped: SkipCounts;
}

export function newTally(): Tally {
  return {
    filesPlanned: 0,
    bytesPlanned: 0,
    filesSized: 0,
    filesDone: 0,
    bytesDone: 0,
    planningDone: false,
    dirs: 0,
    replaced: 0,
    skipped: { count: 0, byKind: {} },
  };
}

export interface Pass {
  source: EntrySource;
  /** Where the files are written, or null to read and check them where they are (verify, merge's pre-check). */
  destination: Destination | null;
  /** Without a destination: read every file in full and compare hashes (false: open, confine, type, size). */
  readContent?: boolean;
  /** Without a destination: report a file whose permission bits differ from its op's (verify). @default false */
  compareModes?: boolean;
  policy: ErrorPolicy;
  /** Sees every entry as it streams (after the destination): cross-checks against another listing. */
  observe?: {
    dir?(dir: PlannedDir): void;
    file?(op: FileOp): void;
    skip?(rel: string, kind: SkipKind): void;
  };
  /** After each batch. */
  onProgress?: (tally: Tally) => void;
  /** The counts to fill. @default a new tally */
  tally?: Tally;
}

export interface PipelineOptions {
  /** The most worker threads the run may use; it starts them only as batches need them (see threadLimit). */
  threads: number;
  /** The caller's signal: when it fires, the run stops and throws ERR_ABORTED. */
  signal: AbortSignal;
  onWarning: (warning: Warning) => void;
  /** The path ERR_ABORTED names. */
  path: string;
}

/** One operation's resources: handed to its body by `runPipeline`, released by it. */
export class Run {
  readonly signal: AbortSignal;
  /** Every warning of the run (verify: every problem found). */
  readonly warnings: WarningLog;
  readonly #threads: number;
  readonly #path: string;
  readonly #adopted: Destination[] = [];
  // Started by the first pass (or `startWorkers`): an operation refused before any file moves never starts
  // worker threads.
  #pool: WorkerPool | null = null;
  #poolClosed = false;

  constructor(options: PipelineOptions) {
    this.signal = options.signal;
    this.warnings = new WarningLog(options.onWarning);
    this.#threads = threadLimit(options.threads);
    this.#path = options.path;
  }

  /** Makes `destination` the run's: if the run fails from here on, it explains the error and is abandoned. */
  adopt<D extends Destination>(destination: D): D {
    this.#adopted.push(destination);
    return destination;
  }

  /** The worker threads the run has started: no more than its batches could keep busy. */
  get threadsStarted(): number {
    return this.#pool?.threadsStarted ?? 0;
  }

  throwIfAborted(): void {
    throwIfAborted(this.signal, this.#path);
  }

  /**
   * Streams `pass.source` through the worker pool. The first error (a destination or policy refusal, a
   * failed batch, the caller's signal) stops the stream and the dispatch; batches in flight finish; that error,
   * or ERR_ABORTED when the caller's signal fired, is what the pass throws.
   */
  async pass(pass: Pass): Promise<Tally> {
    const flow = new PassFlow(pass, this.signal, this.warnings);
    const readContent = pass.readContent ?? true;
    const compareMode = pass.compareModes ?? false;
    const { destination, source } = pass;
    const { remote } = source;
    const dispatcher = new BatchDispatcher({
      pool: this.#startPool(),
      threads: this.#threads,
      signal: flow.signal,
      joins: remote?.joins.bind(remote),
      makeTask: remote
        ? async (files) =>
            remote.task(
              files,
              destination ? writeSpecOf(await destination.task(files, source.read, flow.signal)) : null,
              flow.signal,
            )
        : destination
          ? (files) => destination.task(files, source.read, flow.signal)
          : (files) => ({ kind: 'hash', files, from: source.read, readContent, compareMode }),
      onResult: flow.guarded((result: TaskResult) => flow.batchDone(result)),
      batchLimits: destination?.batchLimits,
      sizesPlanned: source.sizesPlanned,
    });
    try {
      await source.entries(
        flow.sink((op) => dispatcher.add(op)),
        flow.signal,
      );
      flow.tally.planningDone = true;
      await dispatcher.finish();
    } catch (error) {
      flow.stop(error);
      await dispatcher.settle();
      this.throwIfAborted();
      throw flow.cause;
    }
    this.throwIfAborted();
    return flow.tally;
  }

  /**
   * Streams `source` through the same counting and error policy as `pass`, without reading or writing a file:
   * what a pass would do (a dry run). Starts no worker thread.
   */
  async survey(pass: Pick<Pass, 'source' | 'policy'>): Promise<Tally> {
    const flow = new PassFlow({ ...pass, destination: null }, this.signal, this.warnings);
    try {
      await pass.source.entries(
        flow.sink(() => undefined),
        flow.signal,
      );
    } catch (error) {
      flow.stop(error);
      this.throwIfAborted();
      throw flow.cause;
    }
    flow.tally.planningDone = true;
    this.throwIfAborted();
    return flow.tally;
  }

  /**
   * Starts the first worker thread now, so that it boots while the caller prepares its first pass (a thread
   * takes tens of milliseconds to load its code). Call it once nothing can refuse the operation any more.
   */
  startWorkers(): void {
    this.#startPool();
  }

  #startPool(): WorkerPool {
    this.#pool ??= new WorkerPool(this.#threads);
    return this.#pool;
  }

  /** The one failure path: destinations abandoned newest first, then the error the caller sees. */
  async execute<T>(body: (run: Run) => Promise<T>): Promise<T> {
    try {
      return await body(this);
    } catch (error) {
      // Every pass has let its in-flight batches settle before it threw: nothing writes into what is removed.
      // The worker threads go first: they hold descriptors, and a run that failed for want of them (EMFILE)
      // must still be able to clean up.
      await this.#closePool();
      for (const destination of [...this.#adopted].reverse()) await destination.abandon();
      if (this.signal.aborted) throw abortError(this.signal, this.#path);
      throw this.#adopted.at(-1)?.explain(error) ?? error;
    } finally {
      await this.#closePool();
    }
  }

  async #closePool(): Promise<void> {
    if (this.#poolClosed) return;
    this.#poolClosed = true;
    await this.#pool?.close();
  }
}

/** One pass's state on the main thread: its counts, and the controller its first failure aborts. */
class PassFlow {
  readonly tally: Tally;
  /** The caller's signal and this pass's failure, together: what stops the stream and the pool. */
  readonly signal: AbortSignal;
  readonly #pass: Pass;
  readonly #warnings: WarningLog;
  // Raised on the main thread (a refused entry, a failed write) to stop the stream and the pool; its reason
  // is the error the pass reports, whichever stage noticed it first.
  readonly #failure = new AbortController();

  constructor(pass: Pass, callerSignal: AbortSignal, warnings: WarningLog) {
    this.#pass = pass;
    this.#warnings = warnings;
    this.tally = pass.tally ?? newTally();
    this.signal = AbortSignal.any([callerSignal, this.#failure.signal]);
  }

  /** The first error that stopped the pass. */
  get cause(): unknown {
    return this.#failure.signal.reason;
  }

  stop(error: unknown): void {
    this.#failure.abort(error);
  }

  #fail(error: unknown): never {
    this.stop(error);
    throw error;
  }

  /** `callback`, made to stop the pass with whatever it throws. */
  guarded<A extends unknown[]>(callback: (...args: A) => void): (...args: A) => void {
    return (...args) => {
      try {
        callback(...args);
      } catch (error) {
        this.#fail(error);
      }
    };
  }

  #decide(problem: ItemProblem): void {
    const verdict = this.#pass.policy(problem);
    if (verdict instanceof Error) this.#fail(verdict);
    this.#warnings.add(verdict.path, verdict.problem, verdict.message);
  }

  batchDone(result: TaskResult): void {
    const { tally } = this;
    const { destination } = this.#pass;
    const sizing = this.#pass.source.sizesPlanned === false;
    for (const outcome of result.outcomes) {
      if (sizing) {
        tally.filesSized++;
        if (outcome.ok) tally.bytesPlanned += outcome.size;
      }
      if (outcome.ok) {
        tally.filesDone++;
        tally.bytesDone += outcome.size;
        if (outcome.replaced) tally.replaced++;
        destination?.fileDone?.(outcome);
      } else if (outcome.problem === 'dest-failed') {
        assert(destination !== null, `a read-only pass reported a failed write of ${outcome.rel}`);
        this.#fail(destination.writeFailed(outcome));
      } else if (outcome.problem === 'no-resources') {
        const path = `${this.#pass.source.read.root}/${outcome.rel}`;
        this.#fail(systemLimitError(path, outcome.message, outcome.cause));
      } else {
        const { rel, problem, message, cause } = outcome;
        this.#decide({ rel, problem, message, cause, stage: 'read' });
        destination?.fileLost?.(outcome);
      }
    }
    destination?.written(result);
    this.#pass.onProgress?.(tally);
  }

  /** Where the source streams its entries: counted, handed to the destination and observer, files dispatched. */
  sink(dispatch: (op: FileOp) => undefined | Promise<void>): EntrySink {
    const { tally } = this;
    const { destination, observe } = this.#pass;
    const sized = this.#pass.source.sizesPlanned !== false;
    return {
      dir: this.guarded((dir) => {
        if (dir.rel !== '') tally.dirs++;
        destination?.dir(dir);
        observe?.dir?.(dir);
      }),
      file: (op) => {
        tally.filesPlanned++;
        if (sized) {
          tally.filesSized++;
          tally.bytesPlanned += op.size;
        }
        destination?.file?.(op);
        observe?.file?.(op);
        return dispatch(op);
      },
      skip: this.guarded((rel, kind) => {
        tally.skipped.count++;
        tally.skipped.byKind[kind] = (tally.skipped.byKind[kind] ?? 0) + 1;
        destination?.skipped?.(rel, kind);
        observe?.skip?.(rel, kind);
      }),
      problem: this.guarded((rel, problem, message) =>
        this.#decide({ rel, problem, message, cause: undefined, stage: 'walk' }),
      ),
    };
  }
}

/** Runs `body` with a run's resources and releases them however it ends. */
export function runPipeline<T>(options: PipelineOptions, body: (run: Run) => Promise<T>): Promise<T> {
  return new Run(options).execute(body);
}
