// The public API of statesnap: a thin facade over the private modules. The CLI calls the same functions, each
// loaded from its module when its command runs, so a command loads only what it uses.
// Names are only ever added: a renamed one stays as a deprecated alias.

import type { BackupProgress } from './core/progress.js';

export { type BackupOptions, type BackupPlan, type BackupResult, backup } from './backup/backup.js';
export { DEFAULT_EXCLUDES } from './backup/planner.js';
export { type ErrorCode, ExitCode, isStatesnapError, StatesnapError } from './core/errors.js';
export { parsePatternFile, type UnmatchedPattern } from './core/excludes.js';
export type { SkipCounts } from './core/pipeline.js';
export type {
  BackupProgress,
  OperationProgress,
  RestoreProgress,
  TotalsEstimate,
  VerifyProgress,
} from './core/progress.js';
export type { SkipKind } from './core/walk.js';
export type { Warning, WarningSummary } from './core/warnings.js';
export { type Manifest, OXIOS_CATEGORIES } from './format/manifest.js';
export type { BackupKind } from './read/backup-reader.js';
export { type InspectOptions, type InspectResult, inspect } from './read/inspect.js';
export type { ManifestNote, ManifestNoteKind } from './read/manifest-notes.js';
export { type ForeignEntry, resolveBackupPath } from './read/repository-listing.js';
export {
  type SnapshotVerdict,
  type VerifyOptions,
  type VerifyProblem,
  type VerifyRepositoryOptions,
  type VerifyRepositoryResult,
  type VerifyResult,
  verify,
  verifyRepository,
} from './read/verify.js';
export type { RecoveryAction } from './restore/journal.js';
export { type RecoverOptions, type RecoverResult, recover } from './restore/recover.js';
export {
  type RestoreMode,
  type RestoreOptions,
  type RestorePlan,
  type RestoreResult,
  restore,
} from './restore/restore.js';
export type { SkippedEntries } from './restore/scan.js';
export {
  type DiffChange,
  type DiffCounts,
  type DiffEntry,
  type DiffOptions,
  type DiffResult,
  type DiffSide,
  diff,
} from './snapshot/diff.js';
export {
  type ListOptions,
  type ListResult,
  list,
  type SnapshotRow,
  type UnfinishedRow,
} from './snapshot/list.js';
export { type PruneDecision, type PruneOptions, type PruneResult, prune } from './snapshot/prune.js';
export type {
  KeepCount,
  KeepReason,
  RetentionDuration,
  RetentionPolicy,
  RetentionRule,
} from './snapshot/retention.js';
export { parseRetentionDuration } from './snapshot/retention.js';
export type { S3PruneResult } from './snapshot/s3-gc.js';
export { type SnapshotOptions, type SnapshotResult, snapshot } from './snapshot/snapshot.js';

/** @deprecated renamed `BackupProgress` (it sits beside `RestoreProgress` and `VerifyProgress`). */
export type Progress = BackupProgress;
