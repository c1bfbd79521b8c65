// What packing a store costs in bytes: the files below the large-file limit as tar members (header + padding)
// against their content, how many 16 MiB packs they fill, and what the large files add.
// usage: node docs/s3-measure/pack-overhead.mjs <store> (after npm run build)
import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { entrySize } from '../../dist/src/format/tar.js';

const LARGE = 4 * 1024 * 1024;
const PACK = 16 * 1024 * 1024;
const root = process.argv[2];
let small = 0;
let content = 0;
let packed = 0;
let large = 0;
let largeBytes = 0;
const pending = [''];
while (pending.length > 0) {
  const rel = pending.pop();
  for (const name of readdirSync(join(root, rel))) {
    const path = rel === '' ? name : `${rel}/${name}`;
    const stat = lstatSync(join(root, path));
    if (stat.isDirectory()) pending.push(path);
    else if (stat.isFile() && stat.size >= LARGE) {
      large++;
      largeBytes += stat.size;
    } else if (stat.isFile()) {
      small++;
      content += stat.size;
      packed += entrySize({ path: Buffer.from(path), size: stat.size, mode: 0o644, mtimeSeconds: 0, uid: 0, gid: 0 });
    }
  }
}
const mb = (n) => (n / 1e6).toFixed(1);
console.log(`small files: ${small}, content ${mb(content)} MB, as tar members ${mb(packed)} MB (${(packed / content).toFixed(2)}x, ${((packed - content) / small).toFixed(0)} B/file more), ${Math.ceil(packed / PACK)} packs of 16 MiB`);
console.log(`large files (>= 4 MiB): ${large}, ${mb(largeBytes)} MB`);
console.log(`all data objects: ${mb(packed + largeBytes)} MB for ${mb(content + largeBytes)} MB of content (${((packed + largeBytes) / (content + largeBytes)).toFixed(3)}x)`);
