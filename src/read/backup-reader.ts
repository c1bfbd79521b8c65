// Opens a backup for restore and verify: its validated manifest, which kind it is (statesnap, with a hashed
// per-file index, or Oxios: a plain tree + manifest.json), and its entries as one stream in which a directory
// always comes before its contents: read from the index, or walked from an Oxios tree without following links.

import { type BigIntStats, lstatSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { abortError, describeCause, StatesnapError } from '../core/errors.js';
import { CAN_LOCATE_FDS } from '../core/paths.js';
import type { FileOp, SkippedKind } from '../core/protocol.js';
import { type PlannedDir, type WalkProblem, walk } from '../core/walk.js';
import { readIndex } from '../format/index-file.js';
import {
  MANIFEST_FILE,
  type Manifest,
  META_DIR,
  readManifest,
  type StatesnapExtras,
} from '../format/manifest.js';
import { countCategoryEntries } from '../format/sections.js';

export type BackupKind = 'statesnap' | 'oxios';

/** Receives a backup's entries; the root directory ('') comes first, every directory before its contents. */
export interface EntrySink {
  dir(dir: PlannedDir): void;
  /** May return a promise to apply backpressure: the stream waits for it. */
  file(op: FileOp): undefined | Promise<void>;
  /** An entry that is not restored: recorded as skipped in the index, or a link/special found in an Oxios tree. */
  skipped(rel: string, kind: SkippedKind): void;
  /** Oxios trees only: an entry the walk could not read or represent. */
  problem(rel: string, problem: WalkProblem, message: string): void;
}

export interface BackupSource {
  /** Real path of the backup directory: every opened file must lie under it. */
  root: string;
  manifest: Manifest;
  kind: BackupKind;
  /** The statesnap extras, present exactly when `kind` is `statesnap`. */
  extras: StatesnapExtras | undefined;
  /** What workers check every opened file against (`root`), or null where the OS cannot tell (no /proc). */
  confineTo: string | null;
}

export function openBackup(path: string): BackupSource {
  const manifest = readManifest(path);
  let root: string;
  try {
    root = realpathSync(path);
  } catch (error) {
    throw new StatesnapError('ERR_MANIFEST_MISSING', `cannot read backup ${path}: ${describeCause(error)}`, {
      path,
      cause: error,
    });
  }
  const extras = manifest.statesnap;
  return {
    root,
    manifest,
    kind: extras ? 'statesnap' : 'oxios',
    extras,
    confineTo: CAN_LOCATE_FDS ? root : null,
  };
}

function rootDir(stats: BigIntStats): PlannedDir {
  return { rel: '', mode: Number(stats.mode) & 0o7777, atimeNs: stats.atimeNs, mtimeNs: stats.mtimeNs };
}

/**
 * Streams the backup's entries into `sink`. A statesnap backup's entries come from its index (validated line
 * by line, count and sha256 checked at the end: ERR_INDEX_INVALID) and carry the recorded mode, mtime and
 * hash; an Oxios backup's come from walking its tree and carry only what the walk saw.
 */
export async function streamEntries(
  source: BackupSource,
  sink: EntrySink,
  options: { refuseCaseCollisions: boolean; signal: AbortSignal },
): Promise<void> {
  // The root's own attributes are not in the index: the backup's root directory has them (the finalizer
  // gave it the source root's mode and mtime).
  if (source.extras) {
    sink.dir(rootDir(lstatSync(source.root, { bigint: true })));
    for await (const entry of readIndex(source.root, source.extras.index, options)) {
      if (options.signal.aborted) throw abortError(options.signal, source.root);
      if (entry.type === 'dir') {
        const mtimeNs = BigInt(entry.mtime_ns);
        sink.dir({ rel: entry.path, mode: entry.mode, atimeNs: mtimeNs, mtimeNs });
      } else if (entry.type === 'file') {
        const wait = sink.file({
          rel: entry.path,
          size: entry.size,
          mode: entry.mode,
          mtimeNs: entry.mtime_ns,
          hash: entry.sha256,
        });
        if (wait) await wait;
      } else {
        sink.skipped(entry.path, entry.type);
      }
    }
    return;
  }
  await walk(
    source.root,
    {
      isExcluded: () => false,
      reservedRootNames: new Set([MANIFEST_FILE, META_DIR]),
      signal: options.signal,
    },
    {
      dir: (dir) => sink.dir(dir),
      file: (file) => sink.file({ rel: file.rel, size: file.size }),
      skip: (rel, kind) => {
        if (kind !== 'excluded' && kind !== 'reserved') sink.skipped(rel, kind);
      },
      problem: (rel, problem, message) => sink.problem(rel, problem, message),
    },
  );
}

/**
 * Oxios backups have no index: the manifest's sections are all there is to check the tree against. A section
 * whose folder holds fewer entries than it declares (counted as Oxios' list_category counts them) has lost
 * files. More entries are not a problem: Oxios counts before it copies a live store.
 */
export function sectionProblems(source: BackupSource): Array<{ path: string; message: string }> {
  const problems: Array<{ path: string; message: string }> = [];
  for (const section of source.manifest.sections) {
    const found = countCategoryEntries(source.root, section.name);
    if (found < section.entry_count) {
      problems.push({
        path: join(source.root, section.name),
        message: `section ${section.name} declares ${section.entry_count} entries, ${found} found`,
      });
    }
  }
  return problems;
}

/** How a manifest's totals differ from what its index lists, or null when they agree. */
export function totalsMismatch(
  extras: StatesnapExtras,
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
