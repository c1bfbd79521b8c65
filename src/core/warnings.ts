// Collects per-file problems of a run (files that vanished, changed while read, were unreadable, ...) for the
// result, the manifest and the exit code. Counts are exact; the list keeps the first entries only, so a run
// over a million vanishing files stays small.

export interface Warning {
  path: string;
  problem: string;
  message: string;
}

export interface WarningSummary {
  count: number;
  byProblem: Record<string, number>;
  /** The first `WARNING_LIST_LIMIT` warnings, in the order they happened. */
  list: Warning[];
}

export const WARNING_LIST_LIMIT = 1000;

export class WarningLog {
  #count = 0;
  readonly #byProblem: Record<string, number> = {};
  readonly #list: Warning[] = [];
  readonly #onWarning: (warning: Warning) => void;

  constructor(onWarning: (warning: Warning) => void = () => {}) {
    this.#onWarning = onWarning;
  }

  add(path: string, problem: string, message: string): void {
    this.#count++;
    this.#byProblem[problem] = (this.#byProblem[problem] ?? 0) + 1;
    const warning = { path, problem, message };
    if (this.#list.length < WARNING_LIST_LIMIT) this.#list.push(warning);
    this.#onWarning(warning);
  }

  get count(): number {
    return this.#count;
  }

  summary(): WarningSummary {
    return { count: this.#count, byProblem: { ...this.#byProblem }, list: [...this.#list] };
  }
}
