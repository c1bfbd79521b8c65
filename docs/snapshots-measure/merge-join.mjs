// A no-change snapshot's lookups, as a merge-join: every path of a canonically ordered 1M-line index is
// sought in order while the index streams in batches (one JSON.parse per line, optionally a zod check).
// Prints the time per entry and the peak RSS. After `npm run build` and index-memory.mjs `write`:
//   node docs/snapshots-measure/merge-join.mjs /tmp/index.jsonl [zod]
import { createReadStream } from 'node:fs';
import { z } from 'zod';
import { SortedCursor } from '../../dist/src/snapshot/index-order.js';

const [file = '/tmp/index.jsonl', check = 'none'] = process.argv.slice(2);
const ns = z.string().regex(/^\d{1,30}$/);
const Entry = z.strictObject({
  path: z.string(),
  type: z.literal('file'),
  size: z.number().int().nonnegative(),
  mode: z.number().int().min(0).max(0o7777),
  mtime_ns: ns,
  ctime_ns: ns,
  ino: ns,
  uid: z.number().int().nonnegative(),
  gid: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

/** Batches of parsed lines, one per chunk of the file. */
async function* batches(path) {
  let rest = '';
  for await (const chunk of createReadStream(path, { encoding: 'utf8', highWaterMark: 256 * 1024 })) {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop();
    yield lines.map((line) => (check === 'zod' ? Entry.parse(JSON.parse(line)) : JSON.parse(line)));
  }
  if (rest !== '') yield [JSON.parse(rest)];
}

/** The walk of an unchanged store asks for the same paths, in the same order (index-memory.mjs's names). */
function* walkPaths(count) {
  for (let i = 0; i < count; i++) {
    yield `memory/facts/shard-${String(Math.floor(i / 1000)).padStart(3, '0')}/fact-${String(i).padStart(6, '0')}.json`;
  }
}

const start = process.hrtime.bigint();
let unmatched = 0;
let matched = 0;
const cursor = new SortedCursor(batches(file), () => unmatched++);
for (const path of walkPaths(Number(process.env.ENTRIES ?? 1_000_000))) {
  let found = cursor.seek(path);
  if (found instanceof Promise) found = await found;
  if (found !== undefined) matched++;
}
await cursor.finish();
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
console.log(
  JSON.stringify({
    check,
    matched,
    unmatched,
    seconds: Number(seconds.toFixed(2)),
    usPerEntry: Number(((seconds * 1e6) / matched).toFixed(2)),
    peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
  }),
);
