// Drives the piscina pool of file workers: groups planned files into batches, keeps the amount of work in
// flight bounded (p-limit plus a wait on the producer), starts threads beyond the first only as batches need
// them, stops the workers between files when the run stops, and hands each batch's outcomes back in completion
// order.

import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import pLimit, { type LimitFunction } from 'p-limit';
import { Piscina } from 'piscina';
import { abortError, describeCause, isOutOfResources, systemLimitError } from './errors.js';
import {
  type FileOp,
  type PostedResult,
  postedTask,
  receivedResult,
  type TaskResult,
  type WorkerRequest,
  type WorkerTask,
} from './protocol.js';

const WORKER_FILE = new URL('../../workers/file-worker.js', import.meta.url).href;

// piscina loads a worker by trying require() first. On Node 20.19+ that require()s our ES module, and that
// path intermittently aborts the whole process (seen in ~1 of 10 test runs: "Assertion failed:
// facade->InstantiateModule(...)" in ModuleWrap::CreateRequiredModuleFacade). With require(esm) off inside
// the workers, require() throws ERR_REQUIRE_ESM, which piscina catches and falls back to import().
const REQUIRE_ESM_OFF = (process.features as { require_module?: boolean }).require_module
  ? ['--no-experimental-require-module']
  : [];

/**
 * The Node options the workers start with. They inherit this process's (so `--cpu-prof`, `--inspect` or
 * `--conditions` reach them too) when Node takes every one of them for a worker: it refuses V8 and
 * process-wide options (`--trace-gc`, `--max-old-space-size`, ...), which apply to the whole process from the
 * main thread anyway, and then the workers get none of them. Asking Node costs a thread, only when there are
 * options at all.
 */
function workerExecArgv(): string[] {
  if (process.execArgv.length === 0) return REQUIRE_ESM_OFF;
  const inherited = [...process.execArgv, ...REQUIRE_ESM_OFF];
  try {
    void new Worker('', { eval: true, execArgv: inherited }).terminate();
    return inherited;
  } catch {
    return REQUIRE_ESM_OFF;
  }
}

// A postMessage round trip costs more than copying a 1 KiB file, so files travel in batches; 256 files per
// batch was the measured sweet spot (docs/performance.md).
const BATCH_MAX_FILES = 256;
const BATCH_MAX_BYTES = 8 * 1024 * 1024;
// A file this large is a task of its own and is sent as soon as it is seen (or, planned without its size, as soon
// as a worker finds it in a batch), so it does not finish last and one thread does not copy every large file of a
// folder while the others wait.
const LARGE_FILE_BYTES = 4 * 1024 * 1024;

// Workers do synchronous I/O, so a thread beyond the cores helps only while others wait on the disk or the
// network; each costs ~5 MB (an idle isolate and its buffers: 256 threads took 1.2 GB to copy 10 files).
const MAX_THREADS_PER_CORE = 4;

/**
 * A worker thread that could not start or load its code for want of descriptors or memory (each thread needs
 * a few: `ulimit -n 64` with 16 threads is enough) fails the run with what to change, never as a bug.
 */
function startFailure(error: unknown): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (code !== 'ERR_WORKER_INIT_FAILED' && !isOutOfResources(error)) return error;
  return systemLimitError(undefined, `cannot start a worker thread: ${describeCause(error)}`, error);
}

/** The most threads a run may start: the caller's `threads`, but never more than the machine can keep busy. */
export function threadLimit(requested: number): number {
  return Math.max(1, Math.min(requested, availableParallelism() * MAX_THREADS_PER_CORE));
}

export class WorkerPool {
  readonly #piscina: Piscina<WorkerRequest, PostedResult>;
  #peakThreads = 0;
  // piscina reports a worker that failed while idle as an 'error' event: unheard, it would end the process
  // with a stack trace. The pool remembers it and refuses further tasks (a queued task could wait forever).
  #failure: unknown = null;

  /**
   * Starts one thread; piscina starts another for each batch that finds every thread busy, up to `maxThreads`.
   */
  constructor(maxThreads: number) {
    this.#piscina = new Piscina({
      filename: WORKER_FILE,
      execArgv: workerExecArgv(),
      // One thread boots as soon as the pool exists, while the main thread is still walking to its first batch.
      minThreads: 1,
      maxThreads,
      concurrentTasksPerWorker: 1,
      // The pool lives for one run: an idle thread is kept for the next batch rather than restarted.
      idleTimeout: Number.POSITIVE_INFINITY,
      // Nothing reads piscina's run and wait time histograms: recording them costs main-thread time per batch.
      recordTiming: false,
    });
    this.#piscina.on('workerCreate', () => this.#countThreads());
    this.#piscina.on('error', (error: unknown) => {
      this.#failure ??= startFailure(error);
    });
  }

  /** How many worker threads the pool has started (none is stopped before the pool closes). */
  get threadsStarted(): number {
    return this.#peakThreads;
  }

  // piscina starts threads inside run() (counted here, starting or not) and when a thread frees up with
  // tasks still queued (counted once that one is ready).
  #countThreads(): void {
    this.#peakThreads = Math.max(this.#peakThreads, this.#piscina.threads.length);
  }

  async run(task: WorkerTask, stop: Int32Array): Promise<TaskResult> {
    if (this.#failure !== null) throw this.#failure;
    // Downloaded bytes (and a streamed file's part port) are moved to the worker, never copied.
    const transferList =
      task.kind !== 'unpack' ? undefined : task.stream ? [task.data, task.stream.port] : [task.data];
    const result = this.#piscina.run({ task: postedTask(task), stop }, { transferList });
    this.#countThreads();
    try {
      return receivedResult(await result);
    } catch (error) {
      this.#failure ??= startFailure(error);
      throw startFailure(error);
    }
  }

  async close(): Promise<void> {
    await this.#piscina.destroy();
  }
}

export interface BatchDispatcherOptions {
  pool: WorkerPool;
  threads: number;
  signal: AbortSignal;
  /**
   * Builds the task for one batch of files (copy or hash, with its roots); a promise holds the batch back
   * until the destination has room for what it produces (object storage: uploads in flight).
   */
  makeTask: (files: FileOp[]) => WorkerTask | Promise<WorkerTask>;
  /** How large a batch may grow. @default 256 files, 8 MiB */
  batchLimits?: BatchLimits | undefined;
  /**
   * Whether `next` may join the batch being formed (a source whose batches are downloads); replaces the
   * limits and the large-file rule. @default those
   */
  joins?: ((batch: readonly FileOp[], batchBytes: number, next: FileOp) => boolean) | undefined;
  /** Called on the main thread with each finished batch; throwing here fails the whole run. */
  onResult: (result: TaskResult) => void;
  /**
   * false: files come without their sizes (0), so the large-file rule cannot apply when they are batched; a
   * copy batch hands such a file back unread and it goes as a task of its own. @default true
   */
  sizesPlanned?: boolean | undefined;
}

export interface BatchLimits {
  files: number;
  bytes: number;
}

/**
 * Accepts files one by one and runs them through the pool in batches. `add` returns a promise when the
 * producer must wait (too many batches queued), which is how memory stays flat on a 1M-file store.
 */
export class BatchDispatcher {
  readonly #options: BatchDispatcherOptions;
  readonly #limit: LimitFunction;
  readonly #running = new Set<Promise<void>>();
  // Raised (element 0 set) when `signal` fires: the workers see it between files and chunks.
  readonly #stop = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
  #batch: FileOp[] = [];
  #batchBytes = 0;
  readonly #batchLimits: BatchLimits;
  #failure: unknown;
  #hasFailed = false;

  constructor(options: BatchDispatcherOptions) {
    this.#options = options;
    this.#batchLimits = options.batchLimits ?? { files: BATCH_MAX_FILES, bytes: BATCH_MAX_BYTES };
    // Two batches per thread in flight: one running, one already posted, so no worker waits on the main thread.
    this.#limit = pLimit(options.threads * 2);
    const raiseStop = () => Atomics.store(this.#stop, 0, 1);
    if (options.signal.aborted) raiseStop();
    else options.signal.addEventListener('abort', raiseStop, { once: true });
  }

  add(file: FileOp): undefined | Promise<void> {
    this.#throwIfFailed();
    const { joins } = this.#options;
    if (joins !== undefined) {
      let wait: Promise<void> | undefined;
      if (this.#batch.length > 0 && !joins(this.#batch, this.#batchBytes, file)) wait = this.#submitBatch();
      this.#batch.push(file);
      this.#batchBytes += file.size;
      return wait;
    }
    if (file.size >= LARGE_FILE_BYTES) return this.#submit([file]);
    this.#batch.push(file);
    this.#batchBytes += file.size;
    if (this.#batch.length >= this.#batchLimits.files || this.#batchBytes >= this.#batchLimits.bytes)
      return this.#submitBatch();
    return undefined;
  }

  /** Sends the last partial batch and waits for everything in flight; rethrows the first failure. */
  async finish(): Promise<void> {
    if (this.#batch.length > 0) await this.#submitBatch();
    while (this.#running.size > 0) await Promise.race(this.#running);
    this.#throwIfFailed();
  }

  /** Waits for in-flight work to settle without rethrowing (used on the failure path before cleanup). */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.#running]);
  }

  #submitBatch(): Promise<void> | undefined {
    const files = this.#batch;
    this.#batch = [];
    this.#batchBytes = 0;
    return this.#submit(files);
  }

  #submit(files: FileOp[]): Promise<void> | undefined {
    const { pool, signal, makeTask, onResult } = this.#options;
    const run = this.#limit(async () => {
      if (signal.aborted) throw abortError(signal);
      // A running batch is stopped by its own worker (the stop flag), which removes the file it was writing:
      // piscina's abort would terminate the thread, leaking its descriptors and leaving a file half-written in
      // a tree the caller is about to remove (or a temp file in a merge target).
      const task = await makeTask(files);
      if (signal.aborted) throw abortError(signal);
      const handsBack = this.#options.sizesPlanned === false && files.length > 1;
      if (handsBack && (task.kind === 'copy' || task.kind === 'link')) task.handBackFrom = LARGE_FILE_BYTES;
      const result = await pool.run(task, this.#stop);
      onResult(result);
      for (const file of result.handedBack ?? []) void this.#submit([file]);
    }).catch((error: unknown) => {
      if (!this.#hasFailed) {
        this.#hasFailed = true;
        this.#failure = error;
      }
    });
    const tracked = run.finally(() => this.#running.delete(tracked));
    this.#running.add(tracked);
    // Backpressure: once a batch per thread is queued behind the running ones, the producer waits for one.
    if (this.#limit.pendingCount >= this.#options.threads) return Promise.race(this.#running);
    return undefined;
  }

  #throwIfFailed(): void {
    if (this.#hasFailed) throw this.#failure;
  }
}
