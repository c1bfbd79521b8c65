// The progress objects the library's operations report through `onProgress` (the CLI draws them: src/cli/).

export interface BackupProgress {
  /** `copying` while files are planned and copied; `finishing` while the manifest is written and data flushed. */
  phase: 'copying' | 'finishing';
  filesDone: number;
  bytesDone: number;
  /** Files and bytes found so far; final once `planningDone` is true. */
  filesPlanned: number;
  bytesPlanned: number;
  planningDone: boolean;
}

export interface RestoreProgress {
  /**
   * `checking`: the index is validated (or an Oxios tree walked), nothing read yet; `verifying`: merge mode's
   * check of every backup file before the target changes; `copying`; `finishing`: directory attributes,
   * flush, swap.
   */
  phase: 'checking' | 'verifying' | 'copying' | 'finishing';
  /** Files and bytes done in this phase (`checking`: entries validated so far). */
  filesDone: number;
  bytesDone: number;
  filesTotal: number;
  bytesTotal: number;
  /** False while `checking` an Oxios tree, whose totals are known only once it is walked. */
  totalKnown: boolean;
}

export interface VerifyProgress {
  filesDone: number;
  bytesDone: number;
  filesTotal: number;
  bytesTotal: number;
  /** False while the total is still growing (an Oxios tree is being walked). */
  totalKnown: boolean;
}
