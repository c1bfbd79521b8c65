// The single definition (zod) of a backup's manifest.json and its reading (docs/format.md describes it).
// manifest.json keeps the Oxios version-1 shape (version, created_at, oxios_version, sections) so Oxios can
// restore our backups; everything statesnap adds lives under the `statesnap` key, which Oxios' reader ignores.

import { join } from 'node:path';
import { describeCause, StatesnapError } from '../core/errors.js';
import { z } from '../core/zod.js';
import { mode, ownerId, timestampNs } from './fields.js';
import {
  INDEX_FILE,
  INDEX_FORMAT,
  MANIFEST_FILE,
  MANIFEST_SIZE_LIMIT,
  unsafeRelativePathReason,
} from './layout.js';
import { type MetadataErrors, readMetadataFile } from './metadata-file.js';

const SUPPORTED_MANIFEST_VERSION = 1;

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

/** The statesnap block's members (an object store's snapshot replaces `index` and `link_source`). */
export const STATESNAP_EXTRAS = {
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
  /**
   * The index lists its entries in canonical order (directory blocks in preorder, names by bytes), which
   * lets a later `--link-dest` backup join it with its walk; absent in older backups.
   */
  index_order: z.literal('canonical').optional(),
  /** The backup unchanged files were hard-linked from (`--link-dest`), or null. */
  link_source: z.object({ path: z.string(), manifest_created_at: z.string() }).nullable().optional(),
  /** How the files got into this backup: linked, copied, and the decisions on the way. */
  counts: z
    .object({
      linked: count,
      copied: count,
      hashed: count,
      hash_matched: count,
      link_fallbacks: z.record(z.string(), count),
      check_mismatches: count,
      removed_since_link_source: count,
    })
    .optional(),
  /** Bytes of the copied files: what this backup added to the disk besides directories and the index. */
  bytes_new: count.optional(),
  /** A snapshot in a repository: its id, which is also its directory's name there. */
  snapshot: z.object({ id: z.string().min(1) }).optional(),
};

const StatesnapExtrasSchema = z.looseObject(STATESNAP_EXTRAS).superRefine((extras, ctx) => {
  if (extras.format !== 2) return;
  for (const key of ['root', 'started_at_ns'] as const) {
    if (extras[key] === undefined)
      ctx.addIssue({ code: 'custom', path: [key], message: 'is required in format 2' });
  }
});

/** Oxios' own members of a manifest. */
export const OXIOS_MANIFEST = {
  version: z.literal(SUPPORTED_MANIFEST_VERSION),
  created_at: z.string(),
  oxios_version: z.string(),
  sections: z.array(SectionSchema),
};

export const ManifestSchema = z.looseObject({
  ...OXIOS_MANIFEST,
  statesnap: StatesnapExtrasSchema.optional(),
});

export type Manifest = z.infer<typeof ManifestSchema>;
export type StatesnapExtras = z.infer<typeof StatesnapExtrasSchema>;
/** What a manifest records about its backup's index. */
export type IndexRecord = StatesnapExtras['index'];
export type SkippedCounts = z.infer<typeof SkippedCountsSchema>;
export type RootRecord = z.infer<typeof RootRecordSchema>;

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
  return parseManifest(bytes, path, backupDir, ManifestSchema);
}

/**
 * A manifest's bytes as `schema` reads them, or a one-line error naming `path`: not JSON
 * (ERR_MANIFEST_INVALID), another version (ERR_MANIFEST_VERSION), a newer statesnap format (ERR_FORMAT_NEWER,
 * naming `backup`), or refused by the schema (ERR_MANIFEST_INVALID).
 */
export function parseManifest<Parsed>(
  bytes: Buffer,
  path: string,
  backup: string,
  schema: {
    safeParse(data: unknown): { success: true; data: Parsed } | { success: false; error: z.ZodError };
  },
): Parsed {
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
  if (typeof data === 'object' && data !== null) refuseNewerFormat(backup, data);
  const parsed = schema.safeParse(data);
  if (!parsed.success) {
    throw new StatesnapError(
      'ERR_MANIFEST_INVALID',
      `manifest ${path} is invalid: ${formatZodIssues(parsed.error)}`,
      { path, cause: parsed.error },
    );
  }
  return parsed.data;
}
