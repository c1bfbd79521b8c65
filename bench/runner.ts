// Runs the rounds: in each, every case once (destinations made and removed outside the timed window), then
// turns the per-round wall times into medians, ranges, throughputs and pairwise ratios. Ratios are taken per
// round and then their median: absolute times swing 2-3x with a shared machine's load while same-round ratios
// hold (docs/performance.md, "paired rounds").

import { setMaxListeners } from 'node:events';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Bench } from 'tinybench';
import type { CaseId } from '../src/cli/bench-cases.js';
import { abortError } from '../src/core/errors.js';
import { removeTree, syncAll, which } from './baselines.js';
import {
  type BenchCase,
  type CaseOutput,
  COPY_REFERENCES,
  type Iteration,
  ONE_FILE_STORE,
  type ReferenceId,
  WALK_REFERENCES,
} from './cases.js';
import type { CaseResult, RatioFigures, RoundFigures, Spread } from './result.js';

export interface RoundsOptions {
  source: string;
  /** Destinations are made here, one directory per iteration; it must exist. */
  workDir: string;
  rounds: number;
  cases: readonly BenchCase[];
  signal: AbortSignal;
  onLog: (line: string) => void;
}

export interface RoundSample extends CaseOutput {
  ms: number;
  /** 0-based place of the case in this round's order. */
  position: number;
  /** Untimed work around the iteration: making its directory (and input), the sync; removing its output. */
  setupMs: number;
  cleanupMs: number;
}

function sampleOf(bench: Bench, id: CaseId): number {
  const result = bench.getTask(id)?.result;
  if (result?.state !== 'completed')
    throw new Error(`Assertion failed: ${id} did not complete (${result?.state})`);
  return result.latency.samples?.[0] ?? result.latency.mean;
}

/** Runs `rounds` rounds of every case; returns each case's samples in round order. */
export async function runRounds(options: RoundsOptions): Promise<Map<CaseId, RoundSample[]>> {
  const samples = new Map<CaseId, RoundSample[]>(options.cases.map((c) => [c.id, []]));
  for (let round = 1; round <= options.rounds; round++) {
    const sampled = await runRound(round, options);
    for (const [id, sample] of sampled) samples.get(id)!.push(sample);
  }
  return samples;
}

/**
 * One round: every case once, each starting further along the (cyclic) case order, so no case is always first
 * after the page-cache warm-up or always right after the same neighbour; pairs stay adjacent except across the
 * wrap. tinybench runs the round, for what it does well here: it times each task with a monotonic
 * high-resolution clock while keeping its beforeEach/afterEach hooks (fresh destination, input, `sync`;
 * deleting the output) outside the timed window, runs async tasks in order, stops on the abort signal, and
 * with `throws` fails on the first error instead of recording it. Its own statistics are not used: they need
 * many back-to-back samples of one task, which on a machine whose speed drifts measure the drift; one sample
 * per case per round, paired with the references of the same round, does not.
 */
async function runRound(round: number, options: RoundsOptions): Promise<Map<CaseId, RoundSample>> {
  const { cases, workDir, source } = options;
  // tinybench leaves two abort listeners per task on its signal: one signal per round keeps them bounded.
  const roundSignal = AbortSignal.any([options.signal]);
  setMaxListeners(Math.max(10, cases.length * 2), roundSignal);
  const bench = new Bench({
    name: `round ${round}`,
    iterations: 1,
    time: 0,
    warmup: false,
    throws: true,
    retainSamples: true,
    signal: roundSignal,
  });
  const offset = Math.floor(((round - 1) * cases.length) / options.rounds);
  const order = [...cases.slice(offset), ...cases.slice(0, offset)];
  const outputs = new Map<CaseId, CaseOutput | undefined>();
  const untimed = new Map<CaseId, { position: number; setupMs: number; cleanupMs: number }>();
  // Whatever one case left for writeback is flushed before the next starts, so no case pays for another.
  const canSync = which('sync') !== null;
  let keptBackup: { dir: string; path: string } | undefined;
  for (const [position, benchCase] of order.entries()) {
    const keepForLater = benchCase.makesBackup && order.slice(position + 1).some((c) => c.readsBackup);
    const dir = join(workDir, `round-${round}-${benchCase.id}`);
    const iteration: Iteration = { source, dir, dest: join(dir, 'dest'), backup: undefined };
    bench.add(
      benchCase.id,
      async () => {
        outputs.set(benchCase.id, await benchCase.run(iteration));
      },
      {
        async: true,
        beforeEach: async () => {
          const started = performance.now();
          await mkdir(dir);
          iteration.backup = keptBackup?.path;
          await benchCase.prepare?.(iteration);
          if (canSync) await syncAll();
          untimed.set(benchCase.id, { position, setupMs: performance.now() - started, cleanupMs: 0 });
        },
        // Deleting soon after writing is fast, and slow once the blocks are written back on a disk mounted
        // with `discard` (a discard per extent), so every destination goes right after its own iteration.
        afterEach: async () => {
          const started = performance.now();
          await benchCase.cleanup?.(iteration);
          if (keepForLater) {
            keptBackup = { dir, path: iteration.dest };
          } else {
            await removeTree(dir);
            if (benchCase.readsBackup && keptBackup !== undefined) {
              await removeTree(keptBackup.dir);
              keptBackup = undefined;
            }
          }
          untimed.get(benchCase.id)!.cleanupMs = performance.now() - started;
        },
      },
    );
  }
  bench.addEventListener('cycle', ({ task }) => {
    if (task.result.state !== 'completed') return;
    const seconds = (ms: number) => (ms / 1000).toFixed(2);
    const around = untimed.get(task.name as CaseId);
    const untimedNote = around
      ? ` (untimed: setup ${seconds(around.setupMs)} s, cleanup ${seconds(around.cleanupMs)} s)`
      : '';
    const ms = task.result.latency.samples?.[0] ?? task.result.latency.mean;
    options.onLog(`round ${round}/${options.rounds}  ${task.name.padEnd(20)} ${seconds(ms)} s${untimedNote}`);
  });
  try {
    await bench.run();
  } catch (error) {
    // A Ctrl-C reaches the whole process group: the case's own process dies of it too and its failure is
    // only the interruption's echo.
    if (options.signal.aborted) throw abortError(options.signal, workDir);
    throw error;
  } finally {
    if (keptBackup !== undefined) await removeTree(keptBackup.dir);
  }
  if (options.signal.aborted) throw abortError(options.signal, workDir);
  return new Map(
    cases.map((c) => [c.id, { ms: sampleOf(bench, c.id), ...untimed.get(c.id)!, ...outputs.get(c.id) }]),
  );
}

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('Assertion failed: median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function spreadOf(values: readonly number[]): Spread {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

export interface StoreSize {
  files: number;
  bytes: number;
}

const REFERENCES_OF_KIND: Record<BenchCase['kind'], readonly ReferenceId[]> = {
  copy: COPY_REFERENCES,
  walk: WALK_REFERENCES,
  'start-up': [],
};

/** Per-case figures, and every case's ratios to the references of its kind that ran in the same rounds. */
export function summarize(
  cases: readonly BenchCase[],
  samples: ReadonlyMap<CaseId, readonly RoundSample[]>,
  store: StoreSize,
): CaseResult[] {
  return cases.map((benchCase) => {
    const own = samples.get(benchCase.id) ?? [];
    const copied = benchCase.kind === 'start-up' ? ONE_FILE_STORE : store;
    const rounds: RoundFigures[] = own.map((sample, index) => ({
      round: index + 1,
      ...sample,
      filesPerSec: copied.files / (sample.ms / 1000),
      mbPerSec: copied.bytes / 1e6 / (sample.ms / 1000),
    }));
    const ratios: Partial<Record<ReferenceId, RatioFigures>> = {};
    const references = REFERENCES_OF_KIND[benchCase.kind];
    for (const reference of references) {
      const theirs = samples.get(reference);
      if (theirs === undefined || theirs.length !== own.length) continue;
      const perRound = own.map((sample, index) => sample.ms / theirs[index]!.ms);
      ratios[reference] = { ...spreadOf(perRound), perRound };
    }
    const reported = (pick: (sample: RoundSample) => number | undefined): Spread | null => {
      const values = own.flatMap((sample) => {
        const value = pick(sample);
        return value === undefined ? [] : [value];
      });
      return values.length > 0 ? spreadOf(values) : null;
    };
    return {
      id: benchCase.id,
      label: benchCase.label,
      kind: benchCase.kind,
      subject: benchCase.subject,
      wallMs: spreadOf(rounds.map((r) => r.ms)),
      filesPerSec: spreadOf(rounds.map((r) => r.filesPerSec)),
      mbPerSec: spreadOf(rounds.map((r) => r.mbPerSec)),
      peakRssMb: reported((sample) => (sample.rssKb === undefined ? undefined : (sample.rssKb * 1024) / 1e6)),
      operationMs: reported((sample) => sample.innerMs),
      userMs: reported((sample) => sample.userMs),
      systemMs: reported((sample) => sample.systemMs),
      ratios,
      rounds,
    };
  });
}
