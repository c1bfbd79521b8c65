// Renders an operation's progress on stderr: on a terminal one self-rewriting line (elapsed time, phase,
// percent, ETA, files, bytes, files/s), redrawn at most every 100 ms; elsewhere (a CI log, with --progress) plain
// lines, one when a phase starts and one every few seconds. Hand-written: the total is an estimate that
// firms up as the walk goes on, which progress-bar packages cannot express, and the rest is one line of text.

import type { OperationProgress } from '../index.js';
import { formatNumber } from './text.js';

const REDRAW_INTERVAL_MS = 100;
const PLAIN_LINE_INTERVAL_MS = 5_000;
// Copying one small file costs about as much as copying this many bytes of a large one (a create and a few
// metadata calls against ~1-2 GB/s of data): how files and bytes are weighed into one fraction of the work.
const BYTES_PER_FILE = 128 * 1024;
// An ETA from less than this much of a phase is mostly start-up noise.
const ETA_AFTER_MS = 500;
// Rates are measured over about this much recent time, so the ETA follows a copy that speeds up or slows
// down (small files after large ones, a cold cache warming up) instead of the whole run's average.
const RATE_WINDOW_MS = 10_000;
const SAMPLE_EVERY_MS = 250;

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** A clock: `0:08`, `12:05`, `2:03:41`. */
export function formatClock(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  const two = (n: number) => String(n).padStart(2, '0');
  const [h, m, s] = [Math.floor(seconds / 3600), Math.floor(seconds / 60) % 60, seconds % 60];
  return h > 0 ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
}

/** The share of a phase's work that is done, files and bytes weighed together; null without a total. */
export function fractionDone(progress: OperationProgress<string, string>): number | null {
  if (!progress.totalKnown && progress.estimate === null) return null;
  const total = progress.filesTotal + progress.bytesTotal / BYTES_PER_FILE;
  if (total === 0) return 1;
  const done = progress.filesDone + progress.bytesDone / BYTES_PER_FILE;
  // An estimate may be passed before the walk catches up with it: not done until the totals are final.
  return Math.min(done / total, progress.totalKnown ? 1 : 0.99);
}

/** How fast a phase goes, measured over recent time: work (a `fractionDone`) and files per second. */
export interface Pace {
  /** Share of the phase's work done per millisecond; null until there is enough to measure. */
  fractionPerMs: number | null;
  filesPerSecond: number | null;
}

/**
 * The line for one report, restic's order: `[0:08] copying 42%  ETA 0:11  41,977/~100,230 files  612.4 MiB
 * 5,210 files/s` (elapsed time first; `~` marks an estimated total, `+` a total still growing). A byte total
 * is shown only when it is known or given: extrapolated from counted names it swings too much to read.
 */
export function renderProgress(progress: OperationProgress<string, string>, pace: Pace): string {
  const fraction = fractionDone(progress);
  const estimated = !progress.totalKnown && progress.estimate !== null;
  const mark = estimated ? '~' : '';
  const grows = fraction === null ? '+' : '';
  const parts = [
    `[${formatClock(progress.elapsedMs)}] ${progress.phase}${fraction === null ? '' : ` ${Math.floor(fraction * 100)}%`}`,
  ];
  // The most wanted first: a narrow terminal cuts the line at its end.
  if (fraction !== null && fraction < 1 && pace.fractionPerMs !== null && pace.fractionPerMs > 0) {
    parts.push(`ETA ${formatClock((1 - fraction) / pace.fractionPerMs)}`);
  }
  parts.push(`${formatNumber(progress.filesDone)}/${mark}${formatNumber(progress.filesTotal)}${grows} files`);
  parts.push(
    progress.estimate === 'counted' && !progress.totalKnown
      ? formatBytes(progress.bytesDone)
      : `${formatBytes(progress.bytesDone)}/${mark}${formatBytes(progress.bytesTotal)}${grows}`,
  );
  if (pace.filesPerSecond !== null) parts.push(`${formatNumber(Math.round(pace.filesPerSecond))} files/s`);
  return parts.join('  ');
}

interface Sample {
  at: number;
  fraction: number | null;
  files: number;
}

/** Measures a phase's pace from its reports: over the last RATE_WINDOW_MS once the phase is that old. */
class PaceMeter {
  #samples: Sample[] = [];

  restart(): void {
    this.#samples = [];
  }

  add(at: number, progress: OperationProgress<string, string>): Pace {
    const now = { at, fraction: fractionDone(progress), files: progress.filesDone };
    const samples = this.#samples;
    // The phase's start: nothing done yet, whatever its first report says.
    if (samples.length === 0) samples.push({ at, fraction: 0, files: 0 });
    while (samples.length > 1 && at - samples[1]!.at >= RATE_WINDOW_MS) samples.shift();
    if (at - samples.at(-1)!.at >= SAMPLE_EVERY_MS) samples.push(now);
    const first = samples[0]!;
    if (at - first.at < ETA_AFTER_MS) return { fractionPerMs: null, filesPerSecond: null };
    // Before the totals were estimated there was no fraction: measure from the first sample that has one.
    const from = samples.find((sample) => sample.fraction !== null);
    const fractionPerMs =
      from && now.fraction !== null && at > from.at ? (now.fraction - from.fraction!) / (at - from.at) : null;
    return { fractionPerMs, filesPerSecond: ((now.files - first.files) / (at - first.at)) * 1000 };
  }
}

export type ProgressMode = 'line' | 'plain' | 'off';

/** How progress is shown: `--progress`/`--no-progress` decide; by default a line on a terminal only. */
export function progressMode(
  stream: NodeJS.WriteStream,
  forced: boolean | undefined,
  quiet: boolean,
): ProgressMode {
  if (forced === false || (forced === undefined && quiet)) return 'off';
  if (stream.isTTY === true) return 'line';
  return forced ? 'plain' : 'off';
}

export class ProgressLine {
  readonly #stream: NodeJS.WriteStream;
  #mode: ProgressMode;
  readonly #pace = new PaceMeter();
  #lastDraw = Number.NEGATIVE_INFINITY;
  #phase: string | undefined;
  #drawn = false;

  constructor(stream: NodeJS.WriteStream, mode: ProgressMode) {
    this.#stream = stream;
    this.#mode = mode;
  }

  /**
   * The `onProgress` to give an operation, or undefined when nothing is shown: backup then skips the count
   * that only feeds the display.
   */
  listener(): ((progress: OperationProgress<string, string>) => void) | undefined {
    return this.#mode === 'off' ? undefined : (progress) => this.update(progress);
  }

  update(progress: OperationProgress<string, string>): void {
    if (this.#mode === 'off') return;
    const now = performance.now();
    const newPhase = progress.phase !== this.#phase;
    if (newPhase) {
      this.#phase = progress.phase;
      this.#pace.restart();
    }
    const pace = this.#pace.add(now, progress);
    const interval = this.#mode === 'line' ? REDRAW_INTERVAL_MS : PLAIN_LINE_INTERVAL_MS;
    if (!newPhase && now - this.#lastDraw < interval) return;
    this.#lastDraw = now;
    const line = renderProgress(progress, pace);
    if (this.#mode === 'plain') {
      this.#stream.write(`statesnap: progress: ${line}\n`);
      return;
    }
    this.#stream.write(`\r\x1b[K${line.slice(0, (this.#stream.columns ?? 120) - 1)}`);
    this.#drawn = true;
  }

  /** Erases the line so what follows (warnings, the summary, an error) starts on a clean line. */
  clear(): void {
    if (this.#drawn) this.#stream.write('\r\x1b[K');
    this.#drawn = false;
  }

  /** Erases the line and draws no more (Ctrl-C: the cleanup that follows is not progress). */
  stop(): void {
    this.clear();
    this.#mode = 'off';
  }
}
