// The backup a command line names: `<repo>/latest` is the newest complete snapshot of that repository.

import { isS3Location } from '../s3/location.js';

/** Resolves `<repo>/latest` (loading the repository code only for a path that ends so); any other path is itself. */
export async function backupPath(path: string): Promise<string> {
  // An object storage location's `latest` is found by its reader, from the repository's listing.
  if (isS3Location(path) || !/(^|\/)latest\/?$/.test(path)) return path;
  const { resolveBackupPath } = await import('../snapshot/repository.js');
  return resolveBackupPath(path);
}
