// Where object storage is and how it is reached, decided before any request: `s3://` locations parsed and
// refused with one line, and the AWS environment conventions resolved into settings. No server needed.

import { describe, expect, it } from 'vitest';
import { formatS3Location, isS3Location, objectKey, parseS3Location } from '../dist/src/s3/location.js';
import { resolveS3Settings } from '../dist/src/s3/settings.js';

function errorOf(run: () => unknown): Error & { code?: string; path?: string } {
  try {
    run();
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected a refusal');
}

describe('parseS3Location', () => {
  it('reads a bucket and a prefix, with or without a trailing slash', () => {
    expect(parseS3Location('s3://backups/oxios/host-1')).toEqual({
      bucket: 'backups',
      prefix: 'oxios/host-1',
    });
    expect(parseS3Location('s3://backups/oxios/host-1/')).toEqual({
      bucket: 'backups',
      prefix: 'oxios/host-1',
    });
    expect(parseS3Location('s3://backups')).toEqual({ bucket: 'backups', prefix: '' });
    expect(parseS3Location('s3://backups/')).toEqual({ bucket: 'backups', prefix: '' });
    expect(parseS3Location('s3://Legacy_Bucket.1/a b/ü')).toEqual({
      bucket: 'Legacy_Bucket.1',
      prefix: 'a b/ü',
    });
  });

  it('names objects below the prefix the same way everywhere', () => {
    const location = parseS3Location('s3://backups/oxios');
    expect(objectKey(location, 'data/x.tar')).toBe('oxios/data/x.tar');
    expect(formatS3Location(location, 'data/x.tar')).toBe('s3://backups/oxios/data/x.tar');
    expect(formatS3Location(location)).toBe('s3://backups/oxios');
    const root = parseS3Location('s3://backups');
    expect(objectKey(root, 'data/x.tar')).toBe('data/x.tar');
    expect(formatS3Location(root)).toBe('s3://backups');
  });

  it.each([
    ['/local/path', 'does not start with s3://'],
    ['s3://', 'bucket name is missing'],
    ['s3:///prefix', 'bucket name is missing'],
    ['s3://ab', 'is not a bucket name'],
    ['s3://-bucket/x', 'is not a bucket name'],
    ['s3://bucket../x', 'is not a bucket name'],
    ['s3://buck et/x', 'is not a bucket name'],
    ['s3://bucket//x', 'empty segment'],
    ['s3://bucket/a//b', 'empty segment'],
    ['s3://bucket/a/../b', '`..` segment'],
    ['s3://bucket/./b', '`.` segment'],
    ['s3://bucket/a\\b', 'backslash'],
    ['s3://bucket/a\nb', 'control character'],
    [`s3://bucket/${'p'.repeat(769)}`, 'longer than 768 bytes'],
  ])('refuses %j (%s) with one line naming it', (location, reason) => {
    const error = errorOf(() => parseS3Location(location));
    expect(error.code).toBe('ERR_S3_LOCATION_INVALID');
    expect(error.message).toContain(reason);
    expect(error.message).toContain(JSON.stringify(location));
    expect(error.message.split('\n')).toHaveLength(1);
  });

  it('tells object-storage locations from local paths', () => {
    expect(isS3Location('s3://bucket/x')).toBe(true);
    expect(isS3Location('./s3://bucket')).toBe(false);
    expect(isS3Location('S3://bucket')).toBe(false);
  });
});

describe('resolveS3Settings', () => {
  it('uses AWS S3 with virtual-hosted addressing when no endpoint is configured', () => {
    expect(resolveS3Settings({}, { AWS_REGION: 'eu-west-1' })).toEqual({
      endpoint: null,
      region: 'eu-west-1',
      profile: null,
      pathStyle: false,
      concurrency: 8,
      maxAttempts: 4,
      connectTimeoutMs: 5_000,
      idleTimeoutMs: 30_000,
    });
  });

  it('takes the endpoint from --endpoint, then AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL, with path-style', () => {
    const env = { AWS_ENDPOINT_URL: 'http://generic:1', AWS_ENDPOINT_URL_S3: 'https://s3.example:8443/' };
    expect(resolveS3Settings({}, env)).toMatchObject({
      endpoint: 'https://s3.example:8443',
      pathStyle: true,
    });
    expect(resolveS3Settings({}, { AWS_ENDPOINT_URL: 'http://127.0.0.1:7480' }).endpoint).toBe(
      'http://127.0.0.1:7480',
    );
    expect(resolveS3Settings({ endpoint: 'http://option:2' }, env).endpoint).toBe('http://option:2');
    expect(resolveS3Settings({ endpoint: 'http://option:2', pathStyle: false }, env).pathStyle).toBe(false);
    expect(resolveS3Settings({}, { AWS_ENDPOINT_URL: '  ' }).endpoint).toBeNull();
  });

  it('takes region and profile from the options, then the environment', () => {
    const env = { AWS_REGION: 'us-west-2', AWS_PROFILE: 'backup' };
    expect(resolveS3Settings({}, env)).toMatchObject({ region: 'us-west-2', profile: 'backup' });
    expect(resolveS3Settings({ region: 'eu-central-1', profile: 'other' }, env)).toMatchObject({
      region: 'eu-central-1',
      profile: 'other',
    });
  });

  it.each([
    ['not a url', 'is not a URL'],
    ['ftp://host:21', 'not an http:// or https:// URL'],
    ['http://host:7480/bucket', 'has a path, query or fragment'],
    ['http://host:7480/?x=1', 'has a path, query or fragment'],
  ])('refuses the endpoint %j (%s)', (endpoint, reason) => {
    const error = errorOf(() => resolveS3Settings({ endpoint }, {}));
    expect(error.code).toBe('ERR_S3_CONFIG');
    expect(error.message).toContain('--endpoint');
    expect(error.message).toContain(reason);
  });

  it('refuses an endpoint holding a user name or password without repeating it', () => {
    const error = errorOf(() =>
      resolveS3Settings({}, { AWS_ENDPOINT_URL: 'http://AKIDEXAMPLE:s3cr3t-value@host:1' }),
    );
    expect(error.code).toBe('ERR_S3_CONFIG');
    expect(error.message).toContain('AWS_ENDPOINT_URL');
    expect(error.message).not.toContain('s3cr3t-value');
    expect(error.message).not.toContain('AKIDEXAMPLE');
  });

  it('refuses out-of-range numbers and malformed regions with ERR_INVALID_OPTION', () => {
    expect(errorOf(() => resolveS3Settings({ concurrency: 0 }, {})).code).toBe('ERR_INVALID_OPTION');
    expect(errorOf(() => resolveS3Settings({ maxAttempts: 1.5 }, {})).code).toBe('ERR_INVALID_OPTION');
    expect(errorOf(() => resolveS3Settings({ idleTimeoutMs: 10 }, {})).code).toBe('ERR_INVALID_OPTION');
    expect(errorOf(() => resolveS3Settings({ region: 'eu west' }, {})).code).toBe('ERR_INVALID_OPTION');
  });
});
