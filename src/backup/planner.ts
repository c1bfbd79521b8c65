// What a backup leaves out of the live source: the user's and the default exclude patterns.

import picomatch from 'picomatch';

export function compileExcludes(patterns: readonly string[]): (rel: string) => boolean {
  if (patterns.length === 0) return () => false;
  // fast-glob's syntax; picomatch is the matcher underneath it. `dot`: hidden files match `*` like any other.
  return picomatch(patterns as string[], { dot: true });
}
