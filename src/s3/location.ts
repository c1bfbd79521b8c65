// `s3://bucket/prefix` locations: recognised, parsed and checked before any request, and named the same way
// in every message. Loads no SDK, so the commands that only parse a location stay fast.

import { StatesnapError } from '../core/errors.js';

export const S3_SCHEME = 's3://';

/** Where a repository lives in object storage: a bucket and a key prefix inside it ('' for the bucket's root). */
export interface S3Location {
  bucket: string;
  /** Without leading or trailing `/`; the repository's keys are `<prefix>/<key>`. */
  prefix: string;
}

// S3 key names are at most 1,024 bytes; the repository's own keys under the prefix take up to ~120.
const MAX_PREFIX_BYTES = 768;
// AWS's rules for new buckets (3-63 of lowercase letters, digits, dots, hyphens) are stricter than what older
// buckets and other servers allow (uppercase, underscores: RGW's relaxed names, AWS us-east-1's legacy ones),
// so only what can never be a bucket name is refused here; the server judges the rest.
const BUCKET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]$/;

/** Whether a command-line location means object storage rather than a local path. */
export function isS3Location(location: string): boolean {
  return location.startsWith(S3_SCHEME);
}

function invalid(location: string, reason: string): StatesnapError {
  return new StatesnapError(
    'ERR_S3_LOCATION_INVALID',
    `${JSON.stringify(location)} is not a usable S3 location: ${reason} (expected s3://bucket/prefix)`,
    { path: location },
  );
}

/** Why a key prefix cannot hold a repository, or null. Keys are bytes to S3; other tools normalise some. */
function prefixProblem(prefix: string): string | null {
  if (Buffer.byteLength(prefix) > MAX_PREFIX_BYTES)
    return `the prefix is longer than ${MAX_PREFIX_BYTES} bytes`;
  if (/[\u0000-\u001f\u007f]/.test(prefix)) return 'the prefix contains a control character';
  if (prefix.includes('\\')) return 'the prefix contains a backslash';
  for (const segment of prefix.split('/')) {
    if (segment === '') return 'the prefix has an empty segment (`//`)';
    if (segment === '.' || segment === '..') return `the prefix has a \`${segment}\` segment`;
  }
  return null;
}

/**
 * Parses `s3://bucket`, `s3://bucket/` or `s3://bucket/some/prefix[/]`. Refuses (ERR_S3_LOCATION_INVALID) a
 * missing or malformed bucket name, and a prefix other tools would read differently (`//`, `.`, `..`, control
 * characters, backslashes).
 */
export function parseS3Location(location: string): S3Location {
  if (!isS3Location(location)) throw invalid(location, `it does not start with ${S3_SCHEME}`);
  const rest = location.slice(S3_SCHEME.length);
  const slash = rest.indexOf('/');
  const bucket = slash === -1 ? rest : rest.slice(0, slash);
  if (bucket === '') throw invalid(location, 'the bucket name is missing');
  if (!BUCKET_NAME.test(bucket) || bucket.includes('..')) {
    throw invalid(location, `\`${bucket}\` is not a bucket name`);
  }
  const prefix = slash === -1 ? '' : rest.slice(slash + 1).replace(/\/$/, '');
  if (prefix !== '') {
    const problem = prefixProblem(prefix);
    if (problem !== null) throw invalid(location, problem);
  }
  return { bucket, prefix };
}

/** The full key of `key` below the location's prefix. */
export function objectKey(location: S3Location, key: string): string {
  return location.prefix === '' ? key : `${location.prefix}/${key}`;
}

/** `s3://bucket/prefix[/key]`, as every message names an object or a repository. */
export function formatS3Location(location: S3Location, key?: string): string {
  const path = key === undefined ? location.prefix : objectKey(location, key);
  return `${S3_SCHEME}${location.bucket}${path === '' ? '' : `/${path}`}`;
}
