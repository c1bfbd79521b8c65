// The client's CPU per GB of 16 MiB pack uploads: with the SDK hashing each body for its signature and
// statesnap computing its Content-MD5 (both on the main thread), and with both hashes given (as a worker that
// built the pack would hand them over). Uses the AWS_* environment and an existing bucket.
// usage: node docs/s3-measure/put-cpu.mjs <bucket> [packs] (after npm run build)
import { createHash, randomBytes } from 'node:crypto';
import { S3Storage } from '../../dist/src/s3/client.js';
import { parseS3Location } from '../../dist/src/s3/location.js';

const [bucket, count = '32'] = process.argv.slice(2);
const storage = await S3Storage.open(parseS3Location(`s3://${bucket}/put-cpu`), { concurrency: 4 });
const packs = Array.from({ length: Number(count) }, () => randomBytes(16 << 20));
const hashes = packs.map((pack) => ({
  sha256: createHash('sha256').update(pack).digest('hex'),
  contentMd5: createHash('md5').update(pack).digest('base64'),
}));
for (const given of [false, true, false, true]) {
  const cpu = process.cpuUsage();
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < packs.length) {
        const i = next++;
        await storage.putObject(`pack-${i}.tar`, packs[i], given ? hashes[i] : {});
      }
    }),
  );
  const used = process.cpuUsage(cpu);
  const gb = (packs.length * (16 << 20)) / 1e9;
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `${given ? 'hashes given   ' : 'hashed by client'}: ${((used.user + used.system) / 1e6 / gb).toFixed(2)} s CPU per GB, ${(gb * 1000 / seconds).toFixed(0)} MB/s`,
  );
}
await storage.deleteObjects(packs.map((_, i) => `pack-${i}.tar`));
storage.close();
