// The public API of statesnap: a thin facade over the private modules. The CLI is built on exactly this.

export { type BackupOptions, type BackupResult, backup, DEFAULT_EXCLUDES, type Progress } from './backup.js';
export type { BackupKind } from './backup-reader.js';
export { type ErrorCode, ExitCode, isStatesnapError, StatesnapError } from './errors.js';
export { type InspectOptions, type InspectResult, inspect } from './inspect.js';
export { type Manifest, OXIOS_CATEGORIES } from './manifest.js';
export {
  type RestoreMode,
  type RestoreOptions,
  type RestoreProgress,
  type RestoreResult,
  restore,
  type SkippedEntries,
} from './restore.js';
export { type RecoverOptions, type RecoverResult, type RecoveryAction, recover } from './restore-swap.js';
export {
  type VerifyOptions,
  type VerifyProblem,
  type VerifyProgress,
  type VerifyResult,
  verify,
} from './verify.js';
export type { Warning, WarningSummary } from './warnings.js';
