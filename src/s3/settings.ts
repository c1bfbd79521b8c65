// How statesnap reaches object storage: the endpoint, region, addressing, concurrency and timeouts, resolved
// once from the options and the AWS environment conventions, and checked before any request. Credentials are
// not resolved here: the SDK's provider chain finds them, and no setting ever holds or prints them.

import { StatesnapError } from '../core/errors.js';
import { integerOption, invalidOption } from '../core/options.js';

export interface S3Options {
  /**
   * URL of an S3-compatible service (Ceph RGW, MinIO, …): `http(s)://host[:port]`.
   * @default `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`, else AWS S3 itself
   */
  endpoint?: string;
  /**
   * Region requests are signed for.
   * @default `AWS_REGION`, else the profile's region; with a custom endpoint, `us-east-1`
   */
  region?: string;
  /** Profile of the shared AWS config and credentials files. @default `AWS_PROFILE`, else `default` */
  profile?: string;
  /**
   * Address buckets as `endpoint/bucket/key` instead of `bucket.endpoint/key`: what RGW and MinIO serve
   * under a plain host name.
   * @default true with a custom endpoint, false for AWS S3
   */
  pathStyle?: boolean;
  /** Requests in flight at once (uploads of packs, ranged reads). @default 8 */
  concurrency?: number;
  /** Attempts per request, retries included (with exponential backoff, on 5xx, throttling and timeouts). @default 4 */
  maxAttempts?: number;
  /** Milliseconds to wait for a connection. @default 5000 */
  connectTimeoutMs?: number;
  /** Milliseconds a request may go without a byte moving before it fails (and is retried). @default 30000 */
  idleTimeoutMs?: number;
}

export interface S3Settings {
  /** null: AWS S3, the SDK finds the regional endpoint. */
  endpoint: string | null;
  /** null: whatever the SDK finds in the environment and profile (an error if nothing). */
  region: string | null;
  profile: string | null;
  pathStyle: boolean;
  concurrency: number;
  maxAttempts: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
}

/** RGW and MinIO accept any region name in a signature; us-east-1 is what their clients default to. */
export const CUSTOM_ENDPOINT_REGION = 'us-east-1';

type Environment = Readonly<Record<string, string | undefined>>;

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

/**
 * Checks an endpoint URL: http or https, a host, nothing after the authority but `/`, and no user name or
 * password in it (an endpoint appears in messages, and credentials never may).
 */
function checkEndpoint(endpoint: string, source: string): string {
  const refuse = (reason: string) =>
    new StatesnapError('ERR_S3_CONFIG', `${source} is not a usable S3 endpoint: ${reason}`);
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw refuse(`\`${endpoint}\` is not a URL (expected http(s)://host[:port])`);
  }
  if (url.username !== '' || url.password !== '') {
    // The value itself is not repeated: it holds a secret.
    throw refuse(
      'it contains a user name or password; give credentials through AWS_ACCESS_KEY_ID/AWS_PROFILE',
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw refuse(`\`${endpoint}\` is not an http:// or https:// URL`);
  }
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '') {
    throw refuse(`\`${endpoint}\` has a path, query or fragment; give only http(s)://host[:port]`);
  }
  return url.origin;
}

/** Resolves S3 options against the environment (`process.env` unless given); refuses bad values up front. */
export function resolveS3Settings(options: S3Options = {}, env: Environment = process.env): S3Settings {
  const fromOption = nonEmpty(options.endpoint);
  const fromEnv = nonEmpty(env.AWS_ENDPOINT_URL_S3) ?? nonEmpty(env.AWS_ENDPOINT_URL);
  let endpoint: string | null = null;
  if (fromOption !== undefined) endpoint = checkEndpoint(fromOption, '--endpoint');
  else if (fromEnv !== undefined) {
    endpoint = checkEndpoint(fromEnv, env.AWS_ENDPOINT_URL_S3 ? 'AWS_ENDPOINT_URL_S3' : 'AWS_ENDPOINT_URL');
  }
  if (options.pathStyle !== undefined && typeof options.pathStyle !== 'boolean') {
    throw invalidOption('pathStyle', 'a boolean', options.pathStyle);
  }
  if (
    options.region !== undefined &&
    (typeof options.region !== 'string' || !/^[a-z0-9-]+$/i.test(options.region))
  ) {
    throw invalidOption('region', 'a region name such as eu-west-1', options.region);
  }
  const region = nonEmpty(options.region) ?? nonEmpty(env.AWS_REGION) ?? null;
  return {
    endpoint,
    region,
    profile: nonEmpty(options.profile) ?? nonEmpty(env.AWS_PROFILE) ?? null,
    pathStyle: options.pathStyle ?? endpoint !== null,
    concurrency: integerOption('concurrency', options.concurrency, 8, 1, 256),
    maxAttempts: integerOption('maxAttempts', options.maxAttempts, 4, 1, 20),
    connectTimeoutMs: integerOption('connectTimeoutMs', options.connectTimeoutMs, 5_000, 100, 600_000),
    idleTimeoutMs: integerOption('idleTimeoutMs', options.idleTimeoutMs, 30_000, 100, 3_600_000),
  };
}
