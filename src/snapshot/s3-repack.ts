// Repack on an S3 repository: packs whose live members take too little of them are copied, live members only,
// into new packs; every snapshot that used them gets a rewritten index and its manifest replaced. Runs under
// the writer lock; the old packs and indexes are then garbage, for the prune's plan to delete.

import { createHash } from 'node:crypto';
import { StatesnapError } from '../core/errors.js';
import { pathBytes } from '../core/protocol.js';
import {
  manifestKey,
  newDataKey,
  newIndexKey,
  parseS3Manifest,
  readS3Index,
  type S3FileEntry,
  S3IndexWriter,
  type S3Manifest,
} from '../format/s3-index.js';
import { entrySize, TAR_END_BYTES, type TarFileHeader, TarWriter } from '../format/tar.js';
import type { S3Storage } from '../s3/client.js';

/** New packs are closed at this many bytes, as the writer's are. */
const PACK_BYTES = 16 * 1024 * 1024;
const INDEX_PART_BYTES = 8 * 1024 * 1024;

export interface RepackSnapshot {
  id: string;
  manifest: S3Manifest;
}

export interface RepackResult {
  /** The packs copied (now garbage) and the packs written. */
  repacked: string[];
  written: string[];
  /** The snapshots whose index and manifest were replaced, and their old indexes (now garbage). */
  rewritten: string[];
  oldIndexes: string[];
}

interface LiveMember {
  header: TarFileHeader;
  sha256: string;
}

/** A snapshot's index entries, streamed and validated against its manifest. */
function indexEntries(storage: S3Storage, manifest: S3Manifest, signal: AbortSignal) {
  const { s3 } = manifest.statesnap;
  const stored = storage.readInRanges(s3.index.key, s3.index.bytes, INDEX_PART_BYTES, { signal });
  return readS3Index(stored, s3, storage.describe(s3.index.key), { refuseCaseCollisions: false });
}

function headerOf(entry: S3FileEntry): TarFileHeader {
  return {
    path: pathBytes(entry.path),
    size: entry.size,
    mode: entry.mode,
    mtimeSeconds: Number(BigInt(entry.mtime_ns) / 1_000_000_000n),
    uid: entry.uid,
    gid: entry.gid,
  };
}

const memberKey = (object: string, offset: number) => `${object}\0${offset}`;

/**
 * The live members of every data object the snapshots use (one per distinct content offset), read from
 * their indexes, and each object's size.
 */
async function liveMembers(
  storage: S3Storage,
  snapshots: readonly RepackSnapshot[],
  signal: AbortSignal,
): Promise<{ members: Map<string, Map<number, LiveMember>>; sizes: Map<string, number> }> {
  const members = new Map<string, Map<number, LiveMember>>();
  const sizes = new Map<string, number>();
  for (const { manifest } of snapshots) {
    for (const record of manifest.statesnap.s3.objects) sizes.set(record.key, record.size);
    for await (const entry of indexEntries(storage, manifest, signal)) {
      if (entry.type !== 'file') continue;
      const inObject = members.get(entry.object) ?? new Map<number, LiveMember>();
      members.set(entry.object, inObject);
      if (!inObject.has(entry.offset)) {
        inObject.set(entry.offset, { header: headerOf(entry), sha256: entry.sha256 });
      }
    }
  }
  return { members, sizes };
}

/** Bytes of an object no snapshot uses: its size less its live members' headers, contents and padding. */
function unusedShare(size: number, live: Map<number, LiveMember>): number {
  let used = TAR_END_BYTES;
  for (const member of live.values()) used += entrySize(member.header);
  return size === 0 ? 0 : Math.max(0, size - used) / size;
}

/** Copies the live members of `candidates` into new packs; returns where each member went. */
async function copyLiveMembers(
  storage: S3Storage,
  candidates: readonly string[],
  members: Map<string, Map<number, LiveMember>>,
  signal: AbortSignal,
): Promise<{ moved: Map<string, { object: string; offset: number }>; written: Map<string, number> }> {
  const moved = new Map<string, { object: string; offset: number }>();
  const written = new Map<string, number>();
  let pack = new TarWriter();
  let packKey = newDataKey();
  let packBytes = 0;
  const upload = async () => {
    const bytes = pack.finish();
    await storage.putObject(packKey, bytes, { ifAbsent: true, signal });
    written.set(packKey, bytes.length);
  };
  for (const object of candidates) {
    const bytes = await storage.getObject(object, { signal });
    const live = [...members.get(object)!].sort(([a], [b]) => a - b);
    for (const [offset, member] of live) {
      const content = bytes.subarray(offset, offset + member.header.size);
      const hash = createHash('sha256').update(content).digest('hex');
      if (content.length !== member.header.size || hash !== member.sha256) {
        throw new StatesnapError(
          'ERR_BACKUP_CORRUPT',
          `cannot repack ${storage.describe(object)}: the file at byte ${offset} does not match its index (sha256 ${hash}); nothing was replaced`,
          { path: storage.describe(object) },
        );
      }
      const size = entrySize(member.header);
      if (packBytes > 0 && packBytes + size + TAR_END_BYTES > PACK_BYTES) {
        await upload();
        pack = new TarWriter();
        packKey = newDataKey();
        packBytes = 0;
      }
      moved.set(memberKey(object, offset), { object: packKey, offset: pack.addFile(member.header, content) });
      packBytes += size;
    }
  }
  if (packBytes > 0) await upload();
  return { moved, written };
}

/** Writes a new index for one snapshot with the moved members' new places, then replaces its manifest. */
async function rewriteSnapshot(
  storage: S3Storage,
  snapshot: RepackSnapshot,
  moved: Map<string, { object: string; offset: number }>,
  written: Map<string, number>,
  signal: AbortSignal,
): Promise<void> {
  const writer = new S3IndexWriter(INDEX_PART_BYTES);
  const { s3 } = snapshot.manifest.statesnap;
  for (const record of s3.objects) writer.declareObject(record.key, record.size);
  for (const [key, size] of written) writer.declareObject(key, size);
  for await (const entry of indexEntries(storage, snapshot.manifest, signal)) {
    const place = entry.type === 'file' ? moved.get(memberKey(entry.object, entry.offset)) : undefined;
    writer.add(place === undefined ? entry : { ...(entry as S3FileEntry), ...place });
  }
  const summary = await writer.finish();
  const parts: Buffer[] = [];
  for await (const part of writer.parts()) parts.push(part);
  const indexKey = newIndexKey(snapshot.id);
  await storage.putObject(indexKey, Buffer.concat(parts), { ifAbsent: true, signal });
  const manifest = {
    ...snapshot.manifest,
    statesnap: {
      ...snapshot.manifest.statesnap,
      s3: { ...s3, index: { key: indexKey, ...summary.index }, objects: summary.objects },
    },
  };
  const body = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
  // What every reader will check, checked before the one object that makes it the snapshot.
  parseS3Manifest(body, storage.describe(manifestKey(snapshot.id)), snapshot.id);
  await storage.putObject(manifestKey(snapshot.id), body, { signal });
}

/**
 * Repacks every data object of `snapshots` whose unused share is over `maxUnusedPercent`. Until a snapshot's
 * manifest is replaced, its old index and packs are untouched; after, its new ones are complete: a run cut
 * off anywhere leaves every snapshot whole, and what it wrote is garbage for the next prune.
 */
export async function repack(
  storage: S3Storage,
  snapshots: readonly RepackSnapshot[],
  maxUnusedPercent: number,
  signal: AbortSignal,
): Promise<RepackResult> {
  const { members, sizes } = await liveMembers(storage, snapshots, signal);
  const candidates = [...members]
    .filter(([object, live]) => unusedShare(sizes.get(object) ?? 0, live) * 100 > maxUnusedPercent)
    .map(([object]) => object)
    .sort();
  if (candidates.length === 0) return { repacked: [], written: [], rewritten: [], oldIndexes: [] };
  const { moved, written } = await copyLiveMembers(storage, candidates, members, signal);
  const repacked = new Set(candidates);
  const affected = snapshots.filter(({ manifest }) =>
    manifest.statesnap.s3.objects.some((record) => repacked.has(record.key)),
  );
  for (const snapshot of affected) await rewriteSnapshot(storage, snapshot, moved, written, signal);
  return {
    repacked: candidates,
    written: [...written.keys()],
    rewritten: affected.map(({ id }) => id),
    oldIndexes: affected.map(({ manifest }) => manifest.statesnap.s3.index.key),
  };
}
