// What restore's reads cost by range size: 16 MiB packs read whole, and in 4 MiB, 1 MiB and 256 KiB ranges,
// 8 requests in flight, with the client's CPU per GB. Uses the AWS_* environment and an existing bucket.
// usage: node docs/s3-measure/get-ranges.mjs <bucket> [packs] (after npm run build)
import { randomBytes } from 'node:crypto';
import { S3Storage } from '../../dist/src/s3/client.js';
import { parseS3Location } from '../../dist/src/s3/location.js';

const PACK = 16 << 20;
const [bucket, count = '16'] = process.argv.slice(2);
const storage = await S3Storage.open(parseS3Location(`s3://${bucket}/get-ranges`), { concurrency: 8 });
const keys = Array.from({ length: Number(count) }, (_, i) => `pack-${i}.tar`);
for (const key of keys) await storage.putObject(key, randomBytes(PACK));
for (const range of [PACK, 4 << 20, 1 << 20, 256 << 10]) {
  const reads = keys.flatMap((key) => Array.from({ length: PACK / range }, (_, i) => ({ key, offset: i * range })));
  const cpu = process.cpuUsage();
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < reads.length) {
        const { key, offset } = reads[next++];
        await storage.getRange(key, offset, range);
      }
    }),
  );
  const used = process.cpuUsage(cpu);
  const gb = (keys.length * PACK) / 1e9;
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `${String(range >> 10).padStart(5)} KiB ranges: ${(gb * 1000 / seconds).toFixed(0)} MB/s, ${(reads.length / seconds).toFixed(0)} requests/s, ${((used.user + used.system) / 1e6 / gb).toFixed(2)} s CPU per GB`,
  );
}
await storage.deleteObjects(keys);
storage.close();
