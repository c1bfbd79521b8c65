// The BackupReader seam: how restore and verify read an existing backup. `openBackup` validates the manifest
// and returns the reader for its kind: a statesnap backup (entries from its hashed per-file index) or an Oxios
// backup (a plain tree + manifest.json, walked without following links). A snapshot in object storage is a
// third (s3-reader.ts); open-reader.ts picks the kind a location names.

import { type BigIntStats, lstatSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { abortError, describeCause, outOfResourcesAt, StatesnapError } from '../core/errors.js';
import { CAN_LOCATE_FDS } from '../core/paths.js';
import type { EntrySource } from '../core/pipeline.js';
import type { FileOp, ReadSpec, SkippedKind } from '../core/protocol.js';
import { type EntrySink, type PlannedDir, treeUnreadable, walk } from '../core/walk.js';
import { type IndexEntry, readIndexBatches } from '../format/index-reader.js';
import {
  formatOf,
  type IndexFormat,
  type Manifest,
  RESERVED_ROOT_NAMES,
  type StatesnapExtras,
} from '../format/manifest.js';
import { readManifest } from '../format/manifest-schema.js';
import { isS3Location } from '../s3/location.js';
import { type ManifestNote, manifestNotes } from './manifest-notes.js';
import { resolveBackupPath } from './repository-listing.js';

export type BackupKind = 'statesnap' | 'oxios';

export interface ReadOptions {
  /** Refuse two paths that differ only by letter case (they would be one file on the filesystem written). */
  refuseCaseCollisions: boolean;
  /** Entries carry their recorded content hash, for the workers to compare (false: restore's `--no-verify`). */
  hashes: boolean;
  /**
   * Keep what this read validated for the reader's next `source()`, which then replays it instead of reading
   * and checking the index again (a restore reads a backup twice: its check, then its copy). Only a local
   * index of at most `REPLAYABLE_ENTRIES` entries is kept. @default false
   */
  keep?: boolean;
}

/** What readers of every kind know of their statesnap extras. */
export type ReaderExtras = Pick<StatesnapExtras, 'totals'>;

export interface BackupReader {
  /**
   * Real path of the backup directory: every opened file must lie under it. A snapshot in object storage:
   * its `s3://bucket/prefix/snapshots/<id>`.
   */
  readonly root: string;
  /** The backup is a local directory (false: object storage, whose contents the source downloads). */
  readonly local: boolean;
  readonly manifest: Pick<Manifest, 'version' | 'created_at' | 'oxios_version' | 'sections'>;
  readonly kind: BackupKind;
  /** The statesnap extras, present exactly when `kind` is `statesnap`. */
  readonly extras: ReaderExtras | undefined;
  /** The format of a statesnap backup's index (format 2 on records owners), or null for an Oxios backup. */
  readonly format: IndexFormat | null;
  /** What workers check every opened file against (`root`), or null where the OS cannot tell (no /proc). */
  readonly confineTo: string | null;
  /**
   * The backup's entries as a pipeline source: the root directory ('') first, every directory before its
   * contents; links and special files as skipped entries; the backup's own files never.
   */
  source(options: ReadOptions): EntrySource;
  /** What the manifest says that does not stop a restore (see manifest-notes.ts). */
  notes(): ManifestNote[];
  /** Releases what the reader holds open (an object storage client's sockets). */
  close(): void;
}

/** A local backup directory's reader: its manifest and statesnap extras whole. */
export interface LocalBackupReader extends BackupReader {
  readonly manifest: Manifest;
  readonly extras: StatesnapExtras | undefined;
}

/** How messages name entry `rel` of the backup at `root`: a path, or an object storage location. */
export function backupEntryPath(root: string, rel: string): string {
  return isS3Location(root) ? `${root}/${rel}` : join(root, rel);
}

abstract class LocalBackup implements LocalBackupReader {
  readonly local = true;
  abstract readonly kind: BackupKind;
  abstract readonly extras: StatesnapExtras | undefined;
  abstract readonly format: IndexFormat | null;
  readonly confineTo: string | null;

  constructor(
    readonly root: string,
    readonly manifest: Manifest,
  ) {
    this.confineTo = CAN_LOCATE_FDS ? root : null;
  }

  source(options: ReadOptions): EntrySource {
    const read: ReadSpec = {
      root: this.root,
      confineTo: this.confineTo,
      attributesFrom: this.extras ? 'op' : 'source',
      // A backup does not change under a restore: one more read tells a flaky read from a file being edited.
      changedRetries: 1,
      expectSize: true,
    };
    return { read, entries: (sink, signal) => this.entries(sink, options, signal) };
  }

  notes(): ManifestNote[] {
    return manifestNotes(this.root, this.manifest);
  }

  close(): void {}

  protected abstract entries(sink: EntrySink, options: ReadOptions, signal: AbortSignal): Promise<void>;
}

function rootDir(stats: BigIntStats): PlannedDir {
  return { rel: '', mode: Number(stats.mode) & 0o7777, atimeNs: stats.atimeNs, mtimeNs: stats.mtimeNs };
}

/** A directory as an index (or, for the root, a format-2 manifest) records it; the owner only from format 2. */
export function recordedDir(
  rel: string,
  dir: { mode: number; mtime_ns: string; uid?: number; gid?: number },
): PlannedDir {
  const mtimeNs = BigInt(dir.mtime_ns);
  return { rel, mode: dir.mode, atimeNs: mtimeNs, mtimeNs, uid: dir.uid, gid: dir.gid };
}

/** What the pipeline needs of one index line, in every format and kind of index. */
type IndexLine = { path: string } & (
  | { type: 'dir'; mode: number; mtime_ns: string; uid?: number; gid?: number }
  | { type: 'file'; size: number; mode: number; mtime_ns: string; uid?: number; gid?: number; sha256: string }
  | { type: SkippedKind }
);

/** A file as its index line records it: the op restore and verify give the workers. */
export function recordedFile(
  file: Extract<IndexLine, { type: 'file' }>,
  options: Pick<ReadOptions, 'hashes'>,
): FileOp {
  return {
    rel: file.path,
    size: file.size,
    mode: file.mode,
    mtimeNs: file.mtime_ns,
    uid: file.uid,
    gid: file.gid,
    hash: options.hashes ? file.sha256 : undefined,
  };
}

/**
 * Streams validated index lines into a pipeline's sink in their order: directories, files (as `fileOp` makes
 * them, waiting while the sink applies backpressure), skipped entries.
 */
export async function sendIndexEntries<Line extends IndexLine>(
  lines: AsyncIterable<Line>,
  sink: EntrySink,
  signal: AbortSignal,
  root: string,
  fileOp: (file: Extract<Line, { type: 'file' }>) => FileOp,
): Promise<void> {
  async function* oneByOne(): AsyncGenerator<readonly Line[]> {
    for await (const line of lines) yield [line];
  }
  await sendIndexBatches(oneByOne(), sink, signal, root, fileOp);
}

/**
 * `sendIndexEntries` for lines read in batches: a step of an async iteration per line of a large local index
 * cost more than checking the line.
 */
export async function sendIndexBatches<Line extends IndexLine>(
  batches: AsyncIterable<readonly Line[]>,
  sink: EntrySink,
  signal: AbortSignal,
  root: string,
  fileOp: (file: Extract<Line, { type: 'file' }>) => FileOp,
): Promise<void> {
  for await (const batch of batches) {
    for (const line of batch) {
      if (signal.aborted) throw abortError(signal, root);
      const entry: IndexLine = line;
      if (entry.type === 'dir') {
        sink.dir(recordedDir(entry.path, entry));
      } else if (entry.type === 'file') {
        const wait = sink.file(fileOp(line as Extract<Line, { type: 'file' }>));
        if (wait) await wait;
      } else {
        sink.skip(entry.path, entry.type);
      }
    }
  }
}

// The most index entries a reader keeps for a second pass: a parsed line takes ~350 bytes of heap and ~600 of
// resident memory (a 100k-file restore's peak grew from 186 to 249 MB), so at most ~90 MB; a larger index is
// read and checked again, so memory stays flat on a 1M-file store.
export const REPLAYABLE_ENTRIES = 150_000;

/** An index's validated entries, kept for the next pass, and whether case collisions were refused in them. */
interface KeptIndex {
  batches: IndexEntry[][];
  refusedCaseCollisions: boolean;
}

async function* replay(batches: readonly IndexEntry[][]): AsyncGenerator<IndexEntry[]> {
  yield* batches;
}

/** A statesnap backup: its entries come from the index and carry the recorded mode, mtime and hash. */
class IndexedBackup extends LocalBackup {
  readonly kind = 'statesnap';
  readonly format: IndexFormat;
  #kept: KeptIndex | null = null;

  constructor(
    root: string,
    manifest: Manifest,
    readonly extras: StatesnapExtras,
  ) {
    super(root, manifest);
    this.format = formatOf(extras);
  }

  /** Each index line is validated as it is read; count and sha256 are checked at the end (ERR_INDEX_INVALID). */
  protected async entries(sink: EntrySink, options: ReadOptions, signal: AbortSignal): Promise<void> {
    // The root's own attributes are not in the index: a format-2 manifest records them; before that, the
    // backup's root directory has them (the backup gave it the source root's mode and mtime).
    const { extras } = this;
    let rootStats: BigIntStats | null = null;
    if (!extras.root) {
      try {
        rootStats = lstatSync(this.root, { bigint: true });
      } catch (error) {
        throw treeUnreadable('backup', this.root, error);
      }
    }
    sink.dir(rootStats === null ? recordedDir('', extras.root!) : rootDir(rootStats));
    const kept = this.#kept;
    // What was kept passed every check this read makes, the case collisions too when this read refuses them.
    const batches =
      kept !== null && (kept.refusedCaseCollisions || !options.refuseCaseCollisions)
        ? replay(kept.batches)
        : this.#read(options);
    await sendIndexBatches(batches, sink, signal, this.root, (file) => recordedFile(file, options));
  }

  /** The index's entries, read and validated; kept (see `ReadOptions.keep`) once the whole index passed. */
  async *#read(options: ReadOptions): AsyncGenerator<IndexEntry[]> {
    const { extras, format } = this;
    const expected = { format, ...extras.index, order: extras.index_order };
    const keeping: IndexEntry[][] | null =
      options.keep === true && extras.index.entries <= REPLAYABLE_ENTRIES ? [] : null;
    for await (const batch of readIndexBatches(this.root, expected, options)) {
      keeping?.push(batch);
      yield batch;
    }
    // Reached only after the last line: the line count and the digest matched the manifest.
    if (keeping !== null)
      this.#kept = { batches: keeping, refusedCaseCollisions: options.refuseCaseCollisions };
  }
}

/** A backup made by Oxios: no index; its entries come from walking the tree and carry what the walk saw. */
class OxiosTree extends LocalBackup {
  readonly kind = 'oxios';
  readonly extras = undefined;
  readonly format = null;

  protected async entries(sink: EntrySink, _options: ReadOptions, signal: AbortSignal): Promise<void> {
    await walk(
      this.root,
      { tree: 'backup', isExcluded: () => false, reservedRootNames: RESERVED_ROOT_NAMES, signal },
      {
        // Oxios keeps no owners: whoever restores its backup owns the result, directories as files.
        dir: ({ uid: _uid, gid: _gid, ...dir }) => sink.dir(dir),
        // The walk's dev+ino are for a live source's renamed-over files; a backup's copies are never replanned.
        file: (file) => sink.file({ rel: file.rel, size: file.size }),
        skip: (rel, kind) => {
          if (kind !== 'excluded' && kind !== 'reserved') sink.skip(rel, kind);
        },
        problem: (rel, problem, message) => sink.problem(rel, problem, message),
      },
    );
  }
}

/** Opens the backup at `path`; `<repo>/latest` opens the newest complete snapshot of that repository. */
export function openBackup(given: string): LocalBackupReader {
  const path = resolveBackupPath(given);
  const manifest = readManifest(path);
  let root: string;
  try {
    root = realpathSync(path);
  } catch (error) {
    throw (
      outOfResourcesAt(path, error) ??
      new StatesnapError('ERR_MANIFEST_MISSING', `cannot read backup ${path}: ${describeCause(error)}`, {
        path,
        cause: error,
      })
    );
  }
  return manifest.statesnap
    ? new IndexedBackup(root, manifest, manifest.statesnap)
    : new OxiosTree(root, manifest);
}

/** How a manifest's totals differ from what its index lists, or null when they agree. */
export function totalsMismatch(
  extras: ReaderExtras,
  listed: { files: number; dirs: number; bytes: number },
): string | null {
  const { totals } = extras;
  if (totals.files === listed.files && totals.dirs === listed.dirs && totals.bytes === listed.bytes)
    return null;
  return (
    `records ${totals.files} files, ${totals.dirs} dirs, ${totals.bytes} bytes; its index lists ` +
    `${listed.files} files, ${listed.dirs} dirs, ${listed.bytes} bytes`
  );
}
