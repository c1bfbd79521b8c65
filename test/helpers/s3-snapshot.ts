// A snapshot laid out in object storage by hand from a local backup (`statesnap backup`): its files in one tar
// pack (files >= 4 MiB in objects of their own), its index lines with `object`/`offset`, its manifest. Only for
// the reader's tests, which also need layouts no writer makes: hostile index lines, damaged or missing packs.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { TarWriter } from '../../dist/src/format/tar.js';
import type { S3Storage } from '../../dist/src/s3/client.js';

const LARGE_FILE_BYTES = 4 * 1024 * 1024;

type Line = Record<string, unknown> & { type: string; size?: number; object?: string; offset?: number };

export interface LaidOutSnapshot {
  id: string;
  /** The data objects, by key, with their bytes as uploaded. */
  objects: Map<string, Uint8Array>;
  indexKey: string;
}

function dataKey(): string {
  return `data/${createHash('md5').update(String(Math.random())).digest('hex')}.tar`;
}

function pathBytesOf(line: Line): Buffer {
  return typeof line.path === 'string'
    ? Buffer.from(line.path, 'utf8')
    : Buffer.from(line.path_b64 as string, 'base64');
}

/**
 * Uploads the local backup `backupDir` as snapshot `id` of the repository `storage` names (the marker too).
 * `editLines` sees the index lines (with `object`/`offset`) before they are stored; the object table is
 * built from the objects uploaded, so a line may be made to name one outside it.
 */
export async function layOutSnapshot(
  storage: S3Storage,
  backupDir: string,
  id: string,
  options: { editLines?: (lines: Line[]) => Line[] } = {},
): Promise<LaidOutSnapshot> {
  const manifest = JSON.parse(readFileSync(join(backupDir, 'manifest.json'), 'utf8'));
  const lines: Line[] = readFileSync(join(backupDir, '.statesnap/index.jsonl'), 'utf8')
    .split('\n')
    .filter((text) => text !== '')
    .map((text) => JSON.parse(text));
  const objects = new Map<string, Uint8Array>();
  const pack = new TarWriter();
  const packKey = dataKey();
  for (const line of lines) {
    if (line.type !== 'file') continue;
    delete line.linked;
    const path = pathBytesOf(line);
    const content = readFileSync(Buffer.concat([Buffer.from(`${backupDir}/`), path]));
    const header = {
      path,
      size: content.length,
      mode: line.mode as number,
      mtimeSeconds: Number(BigInt(line.mtime_ns as string) / 1_000_000_000n),
      uid: line.uid as number,
      gid: line.gid as number,
    };
    if (content.length >= LARGE_FILE_BYTES) {
      const alone = new TarWriter(content.length + 4096);
      const key = dataKey();
      line.offset = alone.addFile(header, content);
      line.object = key;
      objects.set(key, alone.finish());
    } else {
      line.offset = pack.addFile(header, content);
      line.object = packKey;
    }
  }
  objects.set(packKey, pack.finish());
  const stored = options.editLines ? options.editLines(lines) : lines;
  const index = gzipSync(stored.map((line) => `${JSON.stringify(line)}\n`).join(''));
  const indexKey = `snapshots/${id}/index-${createHash('md5').update(id).digest('hex')}.jsonl.gz`;
  const used = new Map<string, number>();
  for (const line of stored) {
    if (line.type === 'file') used.set(line.object!, (used.get(line.object!) ?? 0) + line.size!);
  }
  const { index: _index, link_source: _linkSource, ...extras } = manifest.statesnap;
  const s3 = {
    pack_format: 'tar',
    index: {
      key: indexKey,
      entries: stored.length,
      sha256: createHash('sha256').update(index).digest('hex'),
      bytes: index.length,
    },
    objects: [...objects].map(([key, bytes]) => ({ key, size: bytes.length, used: used.get(key) ?? 0 })),
    bytes_uploaded: [...objects.values()].reduce((sum, bytes) => sum + bytes.length, 0),
  };
  const statesnap = { ...extras, index_order: 'canonical', snapshot: { id }, base: null, s3 };
  await storage.putObject('.statesnap-repository', Buffer.from('{"statesnap_repository": 1}'));
  for (const [key, bytes] of objects) await storage.putObject(key, bytes);
  await storage.putObject(indexKey, index);
  await storage.putObject(
    `snapshots/${id}/manifest.json`,
    Buffer.from(JSON.stringify({ ...manifest, statesnap })),
  );
  return { id, objects, indexKey };
}
