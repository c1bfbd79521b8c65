// What a backup writes into its manifest.json (docs/format.md), without the schema: a backup loads this, and
// the schema (manifest-schema.ts, zod) is loaded by what reads a manifest back.

import type { SkipKind } from '../core/walk.js';
import type { IndexFormat } from './layout.js';
import type { Manifest, SkippedCounts, StatesnapExtras } from './manifest-schema.js';
import type { S3Manifest } from './s3-index.js';

export {
  INDEX_FILE,
  INDEX_FORMAT,
  type IndexFormat,
  MANIFEST_FILE,
  MANIFEST_SIZE_LIMIT,
  META_DIR,
  OXIOS_CATEGORIES,
  RESERVED_ROOT_NAMES,
  unsafeRelativePathReason,
} from './layout.js';
export type {
  IndexRecord,
  Manifest,
  RootRecord,
  SkippedCounts,
  StatesnapExtras,
} from './manifest-schema.js';

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

/**
 * Oxios writes 2-space pretty JSON (serde_json::to_string_pretty); so do we. The `Manifest` type is the schema's,
 * so what is written is what a reader accepts without loading the schema on the way out.
 */
export function serializeManifest(manifest: Manifest | S3Manifest): string {
  return `${JSON.stringify(manifest, null, 2)}\n`;
}
