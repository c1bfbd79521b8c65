// The single definition (zod) of a backup's manifest.json, and its I/O (docs/format.md describes it).
// manifest.json keeps the Oxios version-1 shape (version, created_at, oxios_version, sections) so Oxios can
// restore our backups; everything statesnap adds lives under the `statesnap` key, which Oxios' reader ignores.

import { join } from 'node:path';
import { describeCause, StatesnapError } from '../core/errors.js';
import type { SkipKind } from '../core/walk.js';
import { z } from '../core/zod.js';
import { mode, ownerId, timestampNs } from './fields.js';
import { type MetadataErrors, readMetadataFile } from './metadata-file.js';

export const MANIFEST_FILE = 'manifest.json';
export const META_DIR = '.statesnap';
export const INDEX_FILE = `${META_DIR}/index.jsonl`;
/** Names at the root of a backup that hold the backup's own files, never the store's. */
export const RESERVED_ROOT_NAMES: ReadonlySet<string> = new Set([MANIFEST_FILE, META_DIR]);
const SUPPORTED_MANIFEST_VERSION = 1;

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

/** Why a relative path from a manifest or index must not be used to build a path, or null if it is safe. */
export function unsafeRelativePathReason(path: string): string | null {
  if (path.length === 0) return 'is empty';
  if (path.includes('\0')) return 'contains a NUL byte';
  if (path.includes('\\')) return 'contains a backslash';
  if (path.startsWith('/')) return 'is absolute';
  for (const segment of path.split('/')) {
    if (segment === '') return 'has an empty segment';
    if (segment === '..') return "has a '..' segment";
    if (segment === '.') return "has a '.' segment";
  }
  return null;
}

/** A relative path from a manifest or index: safe to join to a root (see unsafeRelativePathReason). */
export const relativePath = z.string().superRefine((path, ctx) => {
  const reason = unsafeRelativePathReason(path);
  if (reason !== null) ctx.addIssue({ code: 'custom', message: `path ${JSON.stringify(path)} ${reason}` });
});

const count = z.number().int().nonnegative();
export const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits');

// Oxios' own fields are read as leniently as Oxios' serde reader reads them (a String, a u32, a usize), so every
// backup Oxios restores is readable here: an empty or odd `created_at`, a section name that is not a folder of
// the store, or a count beyond 2^53 is information about the backup (read/manifest-notes.ts), never a refusal.
// No section name is ever used to build a path before it passes unsafeRelativePathReason.
const SectionSchema = z.object({
  name: z.string(),
  entry_count: z.number().refine((n) => Number.isInteger(n) && n >= 0, 'must be an integer >= 0'),
});

const SkippedCountsSchema = z.object({
  symlink: count,
  fifo: count,
  socket: count,
  char_device: count,
  block_device: count,
  excluded: count,
  reserved: count,
});

const WarningSchema = z.object({ path: z.string(), problem: z.string(), message: z.string() });

/** The attributes of the backup's root directory (the store's own), which no index line describes. */
const RootRecordSchema = z.strictObject({ mode, mtime_ns: timestampNs, uid: ownerId, gid: ownerId });

const StatesnapExtrasSchema = z
  .looseObject({
    /** Absent in format 1. */
    format: z.union([z.literal(1), z.literal(2)]).optional(),
    tool: z.literal('statesnap'),
    tool_version: z.string(),
    hash_algorithm: z.literal('sha256'),
    index: z.object({ path: z.literal(INDEX_FILE), entries: count, sha256 }),
    totals: z.object({ files: count, dirs: count, bytes: count }),
    skipped: SkippedCountsSchema,
    warnings: z.object({
      count,
      by_problem: z.record(z.string(), count),
      /** The first warnings only (see `count`); a 1M-file run must not produce a giant manifest. */
      list: z.array(WarningSchema),
    }),
    categories: z.array(z.string()),
    /** Format 2: the source root directory's attributes. */
    root: RootRecordSchema.optional(),
    /** Format 2: when the backup started reading the source (wall clock, ns): what a snapshot's racy check needs. */
    started_at_ns: timestampNs.optional(),
  })
  .superRefine((extras, ctx) => {
    if (extras.format !== 2) return;
    for (const key of ['root', 'started_at_ns'] as const) {
      if (extras[key] === undefined)
        ctx.addIssue({ code: 'custom', path: [key], message: 'is required in format 2' });
    }
  });

export const ManifestSchema = z.looseObject({
  version: z.literal(SUPPORTED_MANIFEST_VERSION),
  created_at: z.string(),
  oxios_version: z.string(),
  sections: z.array(SectionSchema),
  statesnap: StatesnapExtrasSchema.optional(),
});

export type Manifest = z.infer<typeof ManifestSchema>;
export type StatesnapExtras = z.infer<typeof StatesnapExtrasSchema>;
/** What a manifest records about its backup's index. */
export type IndexRecord = StatesnapExtras['index'];
export type SkippedCounts = z.infer<typeof SkippedCountsSchema>;
export type RootRecord = z.infer<typeof RootRecordSchema>;

/** The format of a statesnap backup's index and extras. */
export function formatOf(extras: StatesnapExtras): IndexFormat {
  return extras.format ?? 1;
}

/** The manifest's skipped counts (snake_case names, every kind present) from counts by the kinds' own names. */
export function skippedCountsOf(byKind: Partial<Record<SkipKind, number>>): SkippedCounts {
  return {
    symlink: byKind.symlink ?? 0,
    fifo: byKind.fifo ?? 0,
    socket: byKind.socket ?? 0,
    char_device: byKind['char-device'] ?? 0,
    block_device: byKind['block-device'] ?? 0,
    excluded: byKind.excluded ?? 0,
    reserved: byKind.reserved ?? 0,
  };
}

export function formatZodIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => (issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : issue.message))
    .join('; ');
}

function manifestErrors(path: string): MetadataErrors {
  return {
    unreadable: (message, cause) =>
      new StatesnapError('ERR_MANIFEST_MISSING', `cannot read manifest ${path}: ${message}`, { path, cause }),
    refused: (message, cause) =>
      new StatesnapError('ERR_MANIFEST_INVALID', `manifest ${path} ${message}`, { path, cause }),
  };
}

/**
 * Refuses a statesnap block in a format this statesnap cannot read, before its shape is checked: a newer
 * format may change what the block holds. A format that is not a positive integer is left to the schema.
 */
function refuseNewerFormat(path: string, data: unknown): void {
  const extras = (data as { statesnap?: unknown }).statesnap;
  if (typeof extras !== 'object' || extras === null) return;
  const { format, tool_version: version } = extras as { format?: unknown; tool_version?: unknown };
  if (typeof format !== 'number' || !Number.isInteger(format) || format <= INDEX_FORMAT) return;
  const by = typeof version === 'string' ? ` ${JSON.stringify(version).slice(0, 40)}` : '';
  throw new StatesnapError(
    'ERR_FORMAT_NEWER',
    `backup ${path} was made by a newer statesnap${by} (format ${format}); this statesnap reads formats 1 to ${INDEX_FORMAT}: upgrade statesnap to read it`,
    { path },
  );
}

/** Reads and validates `<backup>/manifest.json`; every failure is a one-line error naming the file. */
export function readManifest(backupDir: string): Manifest {
  const path = join(backupDir, MANIFEST_FILE);
  const bytes = readMetadataFile(path, MANIFEST_SIZE_LIMIT, manifestErrors(path));
  let data: unknown;
  try {
    data = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new StatesnapError(
      'ERR_MANIFEST_INVALID',
      `manifest ${path} is not valid JSON: ${describeCause(error)}`,
      { path, cause: error },
    );
  }
  const version = (data as { version?: unknown } | null)?.version;
  if (typeof data === 'object' && data !== null && version !== SUPPORTED_MANIFEST_VERSION) {
    throw new StatesnapError(
      'ERR_MANIFEST_VERSION',
      `manifest ${path} has version ${JSON.stringify(version)}; only version ${SUPPORTED_MANIFEST_VERSION} is supported`,
      { path },
    );
  }
  if (typeof data === 'object' && data !== null) refuseNewerFormat(backupDir, data);
  const parsed = ManifestSchema.safeParse(data);
  if (!parsed.success) {
    throw new StatesnapError(
      'ERR_MANIFEST_INVALID',
      `manifest ${path} is invalid: ${formatZodIssues(parsed.error)}`,
      { path, cause: parsed.error },
    );
  }
  return parsed.data;
}

/** Oxios writes 2-space pretty JSON (serde_json::to_string_pretty); so do we. */
export function serializeManifest(manifest: Manifest): string {
  return `${JSON.stringify(ManifestSchema.parse(manifest), null, 2)}\n`;
}
