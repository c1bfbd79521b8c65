// The one registry of statesnap error codes and the exit codes they map to.
// Codes are stable: never renamed or reused. Every error names the path(s) involved and keeps its cause.

/** Process exit codes used by the CLI (documented in the README). */
export const ExitCode = {
  ok: 0,
  failed: 1,
  usage: 2,
  completedWithWarnings: 3,
  /** SIGINT (Ctrl-C) or an aborted signal: 128 + 2, as a shell reports a process SIGINT killed. */
  interrupted: 130,
  /** SIGTERM: 128 + 15. */
  terminated: 143,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

const registry = {
  ERR_INVALID_OPTION: ExitCode.usage,
  ERR_SOURCE_NOT_DIRECTORY: ExitCode.failed,
  ERR_SOURCE_UNREADABLE: ExitCode.failed,
  ERR_DEST_OVERLAPS_SOURCE: ExitCode.usage,
  ERR_DEST_EXISTS: ExitCode.failed,
  ERR_DEST_WRITE: ExitCode.failed,
  ERR_FILE_UNREADABLE: ExitCode.failed,
  ERR_ABORTED: ExitCode.interrupted,
  /** The CLI received SIGTERM: the run stopped and cleaned up as for ERR_ABORTED. */
  ERR_TERMINATED: ExitCode.terminated,
  ERR_MANIFEST_MISSING: ExitCode.failed,
  ERR_MANIFEST_INVALID: ExitCode.failed,
  ERR_MANIFEST_VERSION: ExitCode.failed,
  ERR_INDEX_INVALID: ExitCode.failed,
  ERR_BACKUP_EMPTY: ExitCode.failed,
  ERR_BACKUP_CORRUPT: ExitCode.failed,
  ERR_TARGET_INVALID: ExitCode.failed,
  ERR_TARGET_WRITE: ExitCode.failed,
  ERR_RECOVERY_NEEDED: ExitCode.failed,
  ERR_TARGET_BUSY: ExitCode.failed,
  ERR_BENCH_REGRESSION: ExitCode.failed,
  /** An `s3://` location that cannot name a bucket and prefix. */
  ERR_S3_LOCATION_INVALID: ExitCode.usage,
  /** No way to reach object storage as configured: a bad endpoint, no region, no credentials. */
  ERR_S3_CONFIG: ExitCode.failed,
  /** The server refused the credentials or the access (wrong key or secret, no permission). */
  ERR_S3_ACCESS_DENIED: ExitCode.failed,
  /** The bucket or an object does not exist. */
  ERR_S3_NOT_FOUND: ExitCode.failed,
  /** The server could not be reached or stopped answering (after the retries). */
  ERR_S3_UNREACHABLE: ExitCode.failed,
  /** An object that must be written only once (a commit marker) already exists. */
  ERR_S3_EXISTS: ExitCode.failed,
  /** Any other failed request (server errors after the retries, a body the server received damaged). */
  ERR_S3_REQUEST: ExitCode.failed,
  /** The command line could not be understood (unknown command or option, missing argument). */
  ERR_USAGE: ExitCode.usage,
  /** A bug: an exception that is not a StatesnapError reached the command line. */
  ERR_INTERNAL: ExitCode.failed,
} as const satisfies Record<string, ExitCode>;

export type ErrorCode = keyof typeof registry;

export class StatesnapError extends Error {
  override readonly name = 'StatesnapError';
  readonly code: ErrorCode;
  readonly path: string | undefined;
  readonly exitCode: ExitCode;

  constructor(code: ErrorCode, message: string, options: { path?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.code = code;
    this.path = options.path;
    this.exitCode = registry[code];
  }
}

export function isStatesnapError(error: unknown, code?: ErrorCode): error is StatesnapError {
  return error instanceof StatesnapError && (code === undefined || error.code === code);
}

/** The `code` of a Node system error (`ENOENT`, …), or undefined for anything else. */
export function systemErrorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** A one-line description of a cause: `ENOSPC: no space left on device`. */
export function describeCause(error: unknown): string {
  if (error instanceof Error) return error.message.split('\n')[0] ?? error.name;
  return String(error);
}

export function abortError(signal: AbortSignal, path?: string): StatesnapError {
  return new StatesnapError('ERR_ABORTED', 'operation interrupted', { path, cause: signal.reason });
}

export function throwIfAborted(signal: AbortSignal, path: string): void {
  if (signal.aborted) throw abortError(signal, path);
}

/** Invariant failures are bugs, never control flow. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`Assertion failed: ${message}`);
}
