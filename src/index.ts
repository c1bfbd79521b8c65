// The public API of statesnap: a thin facade over the private modules. The CLI is built on exactly this.

export { type BackupOptions, type BackupResult, backup, DEFAULT_EXCLUDES, type Progress } from './backup.js';
export { type ErrorCode, ExitCode, isStatesnapError, StatesnapError } from './errors.js';
export { type InspectOptions, type InspectResult, inspect } from './inspect.js';
export { type Manifest, OXIOS_CATEGORIES } from './manifest.js';
export type { Warning, WarningSummary } from './warnings.js';
