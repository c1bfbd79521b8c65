// What compressing packs would save and cost: the small files of a store as tar members, gzip level 1 in
// independent chunks (a chunk can be fetched by a ranged read and inflated alone; concatenated gzip members
// are still one valid .tar.gz), per chunk size, with the CPU it took on one thread. Synthetic stores compress
// better than real ones (their text comes from a small vocabulary): read the ratios as an upper bound.
// usage: node docs/s3-measure/pack-compression.mjs <store> [max files] (after npm run build)
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { TarWriter } from '../../dist/src/format/tar.js';

const LARGE = 4 * 1024 * 1024;
const [root, limit = '30000'] = process.argv.slice(2);
const writer = new TarWriter(64 << 20);
let files = 0;
const pending = [''];
while (pending.length > 0 && files < Number(limit)) {
  const rel = pending.pop();
  for (const name of readdirSync(join(root, rel))) {
    const path = rel === '' ? name : `${rel}/${name}`;
    const stat = lstatSync(join(root, path));
    if (stat.isDirectory()) pending.push(path);
    else if (stat.isFile() && stat.size < LARGE && files < Number(limit)) {
      const data = readFileSync(join(root, path));
      writer.addFile({ path: Buffer.from(path), size: data.length, mode: 0o644, mtimeSeconds: 0, uid: 0, gid: 0 }, data);
      files++;
    }
  }
}
const tar = writer.finish();
console.log(`${files} files, tar ${(tar.length / 1e6).toFixed(1)} MB`);
for (const chunk of [64 << 10, 256 << 10, 1 << 20, tar.length]) {
  const before = process.cpuUsage();
  let out = 0;
  for (let at = 0; at < tar.length; at += chunk) out += gzipSync(tar.subarray(at, at + chunk), { level: 1 }).length;
  const cpu = process.cpuUsage(before);
  const seconds = (cpu.user + cpu.system) / 1e6;
  console.log(`chunk ${chunk >= tar.length ? 'whole' : `${chunk >> 10} KiB`}: ${(tar.length / out).toFixed(2)}x smaller, ${(tar.length / 1e6 / seconds).toFixed(0)} MB/s of tar per core`);
}
