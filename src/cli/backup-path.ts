// The backup a command line names: `<repo>/latest` is the newest complete snapshot of that repository.

/** Resolves `<repo>/latest` (loading the repository code only for a path that ends so); any other path is itself. */
export async function backupPath(path: string): Promise<string> {
  if (!/(^|\/)latest\/?$/.test(path)) return path;
  const { resolveBackupPath } = await import('../snapshot/repository.js');
  return resolveBackupPath(path);
}
