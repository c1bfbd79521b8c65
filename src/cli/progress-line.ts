// Renders progress on stderr as one self-rewriting line (files, bytes, rate, ETA), only when stderr is a
// terminal, throttled so drawing never costs more than the work it reports. Hand-written: the whole job is
// one line, less code than configuring a progress-bar package.

export interface ProgressSnapshot {
  label: string;
  filesDone: number;
  bytesDone: number;
  filesTotal: number;
  bytesTotal: number;
  /** False while the total is still growing (the walk is not finished); no ETA is shown then. */
  totalKnown: boolean;
}

const REDRAW_INTERVAL_MS = 100;

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

function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 60) return `${Math.ceil(seconds)}s`;
  return `${Math.floor(seconds / 60)}m${String(Math.ceil(seconds % 60)).padStart(2, '0')}s`;
}

export class ProgressLine {
  readonly #stream: NodeJS.WriteStream;
  readonly #enabled: boolean;
  readonly #started = performance.now();
  #lastDraw = 0;
  #drawn = false;

  constructor(stream: NodeJS.WriteStream, enabled: boolean) {
    this.#stream = stream;
    this.#enabled = enabled && stream.isTTY === true;
  }

  update(snapshot: ProgressSnapshot): void {
    if (!this.#enabled) return;
    const now = performance.now();
    if (now - this.#lastDraw < REDRAW_INTERVAL_MS) return;
    this.#lastDraw = now;
    const elapsed = (now - this.#started) / 1000;
    const rate = elapsed > 0 ? snapshot.bytesDone / elapsed : 0;
    const eta =
      snapshot.totalKnown && rate > 0 ? (snapshot.bytesTotal - snapshot.bytesDone) / rate : Number.NaN;
    const total = snapshot.totalKnown ? '' : '+';
    const line =
      `${snapshot.label} ${snapshot.filesDone.toLocaleString('en-US')}/${snapshot.filesTotal.toLocaleString('en-US')}${total} files  ` +
      `${formatBytes(snapshot.bytesDone)}/${formatBytes(snapshot.bytesTotal)}${total}  ${formatBytes(rate)}/s  ETA ${formatSeconds(eta)}`;
    this.#stream.write(`\r\x1b[K${line.slice(0, (this.#stream.columns ?? 120) - 1)}`);
    this.#drawn = true;
  }

  /** Erases the line so what follows (warnings, the summary) starts on a clean line. */
  clear(): void {
    if (this.#drawn) this.#stream.write('\r\x1b[K');
    this.#drawn = false;
  }
}
