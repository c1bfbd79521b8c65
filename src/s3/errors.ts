// What a failed S3 request means, as one line for the user and a stable code: the SDK's errors (service
// errors by their S3 code, network errors by their system code, timeouts, missing credentials or region)
// mapped to StatesnapErrors. The SDK's error objects are never kept as the cause: some servers echo the
// access key id and the string that was signed into them.

import { type ErrorCode, StatesnapError } from '../core/errors.js';

/** What is kept of a failed request: enough to diagnose it, nothing that identifies the credentials. */
export interface S3FailureCause {
  /** The S3 error code (`NoSuchBucket`, `SlowDown`, …) or the SDK's error name (`TimeoutError`, …). */
  name: string;
  httpStatus: number | null;
  /** The system error code of a network failure (`ECONNREFUSED`, …). */
  systemCode: string | null;
  /** Attempts made, retries included. */
  attempts: number | null;
  requestId: string | null;
}

interface SdkErrorShape {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  $metadata?: { httpStatusCode?: unknown; attempts?: unknown; requestId?: unknown };
  cause?: unknown;
}

export function failureCauseOf(error: unknown): S3FailureCause {
  const shape = (typeof error === 'object' && error !== null ? error : {}) as SdkErrorShape;
  const meta = shape.$metadata ?? {};
  let systemCode = typeof shape.code === 'string' ? shape.code : null;
  // Node's fetch-style errors keep the system code on a cause; the SDK's http handler puts it on the error.
  const nested = shape.cause as { code?: unknown } | undefined;
  if (systemCode === null && typeof nested?.code === 'string') systemCode = nested.code;
  return {
    name: typeof shape.name === 'string' ? shape.name : 'Error',
    httpStatus: typeof meta.httpStatusCode === 'number' ? meta.httpStatusCode : null,
    systemCode,
    attempts: typeof meta.attempts === 'number' ? meta.attempts : null,
    requestId: typeof meta.requestId === 'string' ? meta.requestId : null,
  };
}

const NETWORK_REASONS: Record<string, string> = {
  ECONNREFUSED: 'the connection was refused (is the server running?)',
  ENOTFOUND: 'the host name does not resolve',
  EAI_AGAIN: 'the host name could not be resolved (DNS failure)',
  ECONNRESET: 'the server closed the connection',
  EPIPE: 'the server closed the connection',
  ETIMEDOUT: 'the server did not answer in time',
  EHOSTUNREACH: 'the host is unreachable',
  ENETUNREACH: 'the network is unreachable',
};

function describeFailure(cause: S3FailureCause, message: string): { code: ErrorCode; reason: string } {
  const status = cause.httpStatus;
  switch (cause.name) {
    case 'NoSuchBucket':
      return { code: 'ERR_S3_NOT_FOUND', reason: 'the bucket does not exist' };
    case 'NoSuchKey':
      return { code: 'ERR_S3_NOT_FOUND', reason: 'the object does not exist' };
    case 'InvalidAccessKeyId':
      return { code: 'ERR_S3_ACCESS_DENIED', reason: 'the server does not know the access key id' };
    case 'SignatureDoesNotMatch':
      return {
        code: 'ERR_S3_ACCESS_DENIED',
        reason: 'the request signature does not match (wrong secret key?)',
      };
    case 'AccessDenied':
      return { code: 'ERR_S3_ACCESS_DENIED', reason: 'access denied' };
    case 'PreconditionFailed':
      return { code: 'ERR_S3_EXISTS', reason: 'the object already exists' };
    case 'BadDigest':
    case 'InvalidDigest':
    case 'XAmzContentSHA256Mismatch':
      return { code: 'ERR_S3_REQUEST', reason: 'the server received other bytes than were sent' };
    case 'CredentialsProviderError':
      return {
        code: 'ERR_S3_CONFIG',
        reason: 'no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)',
      };
    case 'TimeoutError':
    case 'RequestTimeout':
      return { code: 'ERR_S3_UNREACHABLE', reason: 'the server did not answer in time' };
  }
  if (cause.systemCode !== null && NETWORK_REASONS[cause.systemCode] !== undefined) {
    return { code: 'ERR_S3_UNREACHABLE', reason: NETWORK_REASONS[cause.systemCode]! };
  }
  // The SDK throws a plain Error, without a name or code to match, when no region can be found.
  if (/region is missing/i.test(message)) {
    return { code: 'ERR_S3_CONFIG', reason: 'no region configured (set AWS_REGION, or --region)' };
  }
  // HEAD answers carry no body, so their errors have only a status.
  if (status === 404) return { code: 'ERR_S3_NOT_FOUND', reason: 'not found' };
  if (status === 403) return { code: 'ERR_S3_ACCESS_DENIED', reason: 'access denied' };
  if (status === 412) return { code: 'ERR_S3_EXISTS', reason: 'the object already exists' };
  if (status === 503 || cause.name === 'SlowDown') {
    return { code: 'ERR_S3_REQUEST', reason: 'the server is overloaded (SlowDown)' };
  }
  if (status !== null && status >= 500) return { code: 'ERR_S3_REQUEST', reason: 'server error' };
  return { code: 'ERR_S3_REQUEST', reason: 'the request failed' };
}

/** What went wrong, in the words of the cause: `NoSuchBucket, HTTP 404, 1 attempt`. */
function causeDetails(cause: S3FailureCause): string {
  const parts: string[] = [];
  if (cause.name !== 'Error' && cause.name !== 'Unknown') parts.push(cause.name);
  if (cause.systemCode !== null && cause.systemCode !== cause.name) parts.push(cause.systemCode);
  if (cause.httpStatus !== null) parts.push(`HTTP ${cause.httpStatus}`);
  if (cause.attempts !== null && cause.attempts > 1) parts.push(`${cause.attempts} attempts`);
  return parts.length > 0 ? ` (${parts.join(', ')})` : '';
}

/**
 * The StatesnapError for a failed request: `cannot <action> <where>: <reason> (<details>)`. `where` names the
 * bucket and key (`s3://bucket/prefix/key`); a network failure also names the endpoint it could not reach.
 */
export function s3Failure(error: unknown, action: string, where: string, endpoint: string): StatesnapError {
  if (error instanceof StatesnapError) return error;
  const cause = failureCauseOf(error);
  const message =
    typeof (error as SdkErrorShape | null)?.message === 'string' ? (error as Error).message : '';
  if (cause.name === 'AbortError') {
    return new StatesnapError('ERR_ABORTED', 'operation interrupted', { path: where, cause });
  }
  const { code, reason } = describeFailure(cause, message);
  const at = code === 'ERR_S3_UNREACHABLE' ? ` at ${endpoint}` : '';
  return new StatesnapError(code, `cannot ${action} ${where}${at}: ${reason}${causeDetails(cause)}`, {
    path: where,
    cause,
  });
}
