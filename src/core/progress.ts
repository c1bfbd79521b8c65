// The progress objects the library's operations report through `onProgress` (the CLI draws them: src/cli/).
// One shape for every operation; fields are only added, and a field that was replaced stays as an alias.

/**
 * Where an operation's totals come from while they are not final: `counted` (the source's names counted
 * ahead of the copy; bytes extrapolated from the average size of the files found so far), `given` (the
 * caller's `estimate`, e.g. a previous backup's totals).
 */
export type TotalsEstimate = 'counted' | 'given';

/** What the progress of every operation says. */
export interface OperationProgress<Operation extends string, Phase extends string> {
  operation: Operation;
  phase: Phase;
  /** Files and bytes done in this phase. */
  filesDone: number;
  bytesDone: number;
  /**
   * Files and bytes of this phase: exact once `totalKnown` (a backup's bytes: once every file is read, since its
   * walk need not stat them); an estimate while `estimate` names one; otherwise
   * what has been found so far (a lower bound).
   */
  filesTotal: number;
  bytesTotal: number;
  /** The totals are final. */
  totalKnown: boolean;
  /** What the totals are estimated from while they are not final; null when final or not estimated. */
  estimate: TotalsEstimate | null;
  /** Since the operation started. */
  elapsedMs: number;
}

export interface BackupProgress extends OperationProgress<'backup', 'copying' | 'finishing'> {
  /**
   * Files and bytes the walk has found so far; final once `planningDone`.
   * @deprecated use `filesTotal`, `bytesTotal` (with `totalKnown` and `estimate`).
   */
  filesPlanned: number;
  /** @deprecated use `bytesTotal`. */
  bytesPlanned: number;
  /** @deprecated the same as `totalKnown`. */
  planningDone: boolean;
}

/**
 * Phases: `checking`: the index is validated (or an Oxios tree walked), nothing read yet; `verifying`: merge
 * mode's check of every backup file before the target changes; `copying`; `finishing`: directory
 * attributes, flush, swap.
 */
export type RestoreProgress = OperationProgress<
  'restore',
  'checking' | 'verifying' | 'copying' | 'finishing'
>;

/** Phases: `checking`: the backup's tree is listed; `verifying`: every file is read and compared. */
export type VerifyProgress = OperationProgress<'verify', 'checking' | 'verifying'>;

/** A progress report as an operation's stages make it: what every report of the operation shares comes later. */
export type ProgressReport<P extends OperationProgress<string, string>> = Omit<P, 'operation' | 'elapsedMs'>;

/** The caller's `onProgress`, as the stages of one operation (started at `startedAt`) call it. */
export function progressReporter<P extends OperationProgress<string, string>>(
  operation: P['operation'],
  startedAt: number,
  onProgress: (progress: P) => void,
): (report: ProgressReport<P>) => void {
  return (report) =>
    onProgress({ ...report, operation, elapsedMs: Math.round(performance.now() - startedAt) } as P);
}
