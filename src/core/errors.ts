// The one registry of statesnap error codes and the exit codes they map to.
// Codes are stable: never renamed or reused. Every error names the path(s) involved and keeps its cause.

import { OUT_OF_RESOURCES } from './protocol.js';

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
  /** A restore target equal to, inside, or containing the backup. */
  ERR_TARGET_OVERLAPS_BACKUP: ExitCode.usage,
  ERR_DEST_EXISTS: ExitCode.failed,
  /** `--force` met something at the destination that is not the backup statesnap published there. */
  ERR_DEST_NOT_REPLACEABLE: ExitCode.failed,
  ERR_DEST_WRITE: ExitCode.failed,
  /** `--link-dest` names no complete backup, overlaps a tree of the run, or lies on another filesystem. */
  ERR_LINK_DEST_INVALID: ExitCode.failed,
  ERR_FILE_UNREADABLE: ExitCode.failed,
  ERR_ABORTED: ExitCode.interrupted,
  /** The CLI received SIGTERM: the run stopped and cleaned up as for ERR_ABORTED. */
  ERR_TERMINATED: ExitCode.terminated,
  ERR_MANIFEST_MISSING: ExitCode.failed,
  ERR_MANIFEST_INVALID: ExitCode.failed,
  ERR_MANIFEST_VERSION: ExitCode.failed,
  /** The backup was made by a newer statesnap, in a format this one cannot read. */
  ERR_FORMAT_NEWER: ExitCode.failed,
  ERR_INDEX_INVALID: ExitCode.failed,
  ERR_BACKUP_EMPTY: ExitCode.failed,
  ERR_BACKUP_CORRUPT: ExitCode.failed,
  ERR_TARGET_INVALID: ExitCode.failed,
  ERR_TARGET_WRITE: ExitCode.failed,
  ERR_RECOVERY_NEEDED: ExitCode.failed,
  ERR_TARGET_BUSY: ExitCode.failed,
  /** The target's filesystem lacks the room (bytes or inodes) a restore needs; checked before the first write. */
  ERR_TARGET_NO_SPACE: ExitCode.failed,
  ERR_BENCH_REGRESSION: ExitCode.failed,
  /** A path given as a snapshot repository is not one (and cannot become one: not empty, not a directory). */
  ERR_REPO_INVALID: ExitCode.failed,
  /** Another snapshot or prune holds the repository's lock. */
  ERR_REPO_BUSY: ExitCode.failed,
  /** `<repo>/latest` in a repository without a complete snapshot. */
  ERR_SNAPSHOT_NOT_FOUND: ExitCode.failed,
  /** A snapshot's --exec-before command failed or timed out: nothing was written. */
  ERR_HOOK_FAILED: ExitCode.failed,
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
  /** The process ran out of open files, threads or memory: no path is at fault; a limit or --threads is. */
  ERR_SYSTEM_LIMIT: ExitCode.failed,
  /** The command line could not be understood (unknown command or option, missing argument). */
  ERR_USAGE: ExitCode.usage,
  /** A bug: an exception that is not a StatesnapError reached the command line. */
  ERR_INTERNAL: ExitCode.failed,
} as const satisfies Record<string, ExitCode>;

export type ErrorCode = keyof typeof registry;

// A message is read by a person: a path or name longer than this (from a hostile index, a 100 KB argument)
// shows its beginning and end, so an error stays one readable line; `path` keeps the whole path.
const LONGEST_WORD = 1000;
const LONGEST_MESSAGE = 4000;
const LONG_WORD = new RegExp(`\\S{${LONGEST_WORD + 1},}`, 'g');

/** `text` cut to `limit` characters around its middle, saying how much was left out. */
function abbreviate(text: string, limit: number): string {
  if (text.length <= limit) return text;
  const keep = Math.floor((limit - 40) / 2);
  return `${text.slice(0, keep)}…(${text.length - 2 * keep} characters left out)…${text.slice(-keep)}`;
}

/** A message as people get it: every long run of non-blank characters (a path, a name) shortened, then the whole. */
export function readableMessage(message: string): string {
  const words = message.replace(LONG_WORD, (word) => abbreviate(word, LONGEST_WORD));
  return abbreviate(words, LONGEST_MESSAGE);
}

/** A string from a file being read (a manifest field, an index path), quoted for a message, shortened if long. */
export function quoted(text: string): string {
  return JSON.stringify(abbreviate(text, 200));
}

export class StatesnapError extends Error {
  override readonly name = 'StatesnapError';
  readonly code: ErrorCode;
  /** The path concerned, whole (the message may show a long one shortened). */
  readonly path: string | undefined;
  readonly exitCode: ExitCode;

  constructor(code: ErrorCode, message: string, options: { path?: string; cause?: unknown } = {}) {
    super(readableMessage(message), { cause: options.cause });
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

/**
 * Whether `error` is a system error (it names a syscall) on one of the trees under `roots`, or on a descriptor
 * (no path): what an operation may blame on the tree it writes. A system error on another path was raised
 * somewhere that should have said which side failed, and is not relabelled as a write failure.
 */
export function isSystemErrorUnder(error: unknown, roots: readonly string[]): boolean {
  const { syscall, path } = (error ?? {}) as { syscall?: unknown; path?: unknown };
  if (typeof syscall !== 'string' || error instanceof StatesnapError) return false;
  if (typeof path !== 'string') return true;
  return roots.some((root) => path === root || path.startsWith(`${root}/`));
}

/** Whether `error` is a system error saying the process ran out of descriptors or memory. */
export function isOutOfResources(error: unknown): boolean {
  const code = systemErrorCode(error);
  return code !== undefined && OUT_OF_RESOURCES.has(code);
}

/**
 * The error for a process that ran out of a resource (`EMFILE`, `ENFILE`, `ENOMEM`, a worker thread that could
 * not start) while working on `path`: it says which limit to raise instead of blaming the path.
 */
export function systemLimitError(path: string | undefined, cause: string, error?: unknown): StatesnapError {
  const remedy = /\bENOMEM\b/.test(cause)
    ? 'use fewer --threads or free memory'
    : 'raise the open-file limit (ulimit -n) or use fewer --threads';
  const where = path === undefined ? '' : ` at ${path}`;
  return new StatesnapError(
    'ERR_SYSTEM_LIMIT',
    `ran out of a system resource${where} (${cause}): ${remedy}`,
    {
      path,
      cause: error,
    },
  );
}

/**
 * The error for `error` met at `path` when it says the process ran out of descriptors or memory, else null:
 * `throw outOfResourcesAt(path, error) ?? <the error that blames path>`.
 */
export function outOfResourcesAt(path: string, error: unknown): StatesnapError | null {
  return isOutOfResources(error) ? systemLimitError(path, describeCause(error), error) : null;
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
