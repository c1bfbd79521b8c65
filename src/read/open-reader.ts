// Opens the backup a location names: a snapshot in object storage (whose reader, and the S3 SDK, load only
// then) or a local backup directory.

import { isS3Location } from '../s3/location.js';
import type { S3Options } from '../s3/settings.js';
import { type BackupReader, openBackup } from './backup-reader.js';

/**
 * The reader of the backup `location` names: a snapshot in object storage (`s3://…/<id>` or `…/latest`,
 * whose code and SDK load only then), or a local backup directory.
 */
export async function openReader(
  location: string,
  options: { s3?: S3Options; signal?: AbortSignal } = {},
): Promise<BackupReader> {
  if (!isS3Location(location)) return openBackup(location);
  const { openS3Snapshot } = await import('./s3-reader.js');
  return openS3Snapshot(location, { ...options.s3, signal: options.signal });
}
