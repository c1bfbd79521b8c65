// The public API of statesnap: a thin facade over the private modules. The CLI is built on exactly this.

export {
  type BackupOptions,
  type BackupResult,
  backup,
  DEFAULT_EXCLUDES,
  type Progress,
} from './backup/backup.js';
export { type ErrorCode, ExitCode, isStatesnapError, StatesnapError } from './core/errors.js';
export type { Warning, WarningSummary } from './core/warnings.js';
export { type Manifest, OXIOS_CATEGORIES } from './format/manifest.js';
export type { BackupKind } from './read/backup-reader.js';
export { type InspectOptions, type InspectResult, inspect } from './read/inspect.js';
export {
  type VerifyOptions,
  type VerifyProblem,
  type VerifyProgress,
  type VerifyResult,
  verify,
} from './read/verify.js';
export { type RecoverOptions, type RecoverResult, type RecoveryAction, recover } from './restore/journal.js';
export {
  type RestoreMode,
  type RestoreOptions,
  type RestoreProgress,
  type RestoreResult,
  restore,
  type SkippedEntries,
} from './restore/restore.js';
