// The names and path rules of a backup's layout (docs/format.md): where the manifest and the index live, which
// root names are the backup's own, the Oxios categories, and which relative paths are safe to join to a root.
// No schema library: a backup loads this, and only a reader needs to validate.

export const MANIFEST_FILE = 'manifest.json';
export const META_DIR = '.statesnap';
export const INDEX_FILE = `${META_DIR}/index.jsonl`;
/** Names at the root of a backup that hold the backup's own files, never the store's. */
export const RESERVED_ROOT_NAMES: ReadonlySet<string> = new Set([MANIFEST_FILE, META_DIR]);

/**
 * The format of statesnap's own parts of a backup (the `statesnap` block and the index), as
 * `statesnap.format` records it; absent means 1. Format 2 adds owners, source identity and names that are not
 * UTF-8 to the index, and the root directory's attributes and the start time to the manifest. A reader reads
 * every format up to `INDEX_FORMAT` and refuses a higher one (ERR_FORMAT_NEWER).
 */
export const INDEX_FORMAT = 2;
export type IndexFormat = 1 | 2;

// A manifest holds sections, categories and at most 100 warnings: a few KiB to a few hundred. Anything near
// this is not a manifest, and reading it whole would let a hostile backup exhaust memory.
export const MANIFEST_SIZE_LIMIT = 16 << 20;

/** The Oxios categories, in the order Oxios lists them in `sections`. */
export const OXIOS_CATEGORIES: readonly string[] = [
  'seeds',
  'evals',
  'memory/conversations',
  'memory/sessions',
  'memory/facts',
  'memory/episodes',
  'memory/knowledge',
  'sessions',
  'agent_groups',
];

const DOT = 0x2e;

/** Why a relative path from a manifest or index must not be used to build a path, or null if it is safe. */
export function unsafeRelativePathReason(path: string): string | null {
  if (path.length === 0) return 'is empty';
  if (path.includes('\0')) return 'contains a NUL byte';
  if (path.includes('\\')) return 'contains a backslash';
  if (path.startsWith('/')) return 'is absolute';
  // Segment by segment without splitting: every line of an index passes here.
  for (let start = 0; start <= path.length; ) {
    let end = path.indexOf('/', start);
    if (end === -1) end = path.length;
    const length = end - start;
    if (length === 0) return 'has an empty segment';
    if (length <= 2 && path.charCodeAt(start) === DOT) {
      if (length === 1) return "has a '.' segment";
      if (path.charCodeAt(start + 1) === DOT) return "has a '..' segment";
    }
    start = end + 1;
  }
  return null;
}
