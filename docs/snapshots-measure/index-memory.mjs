// Bytes per previous-index entry for each way of holding it, at 1M entries shaped like the tiny-files
// store (memory/facts/shard-NNN/fact-NNNNNN.json). Run one representation per process:
//   node --expose-gc docs/snapshots-measure/index-memory.mjs <map-objects|map-index|packed|stream> [entries] [index.jsonl]
// `stream` reads an index file line by line (JSON.parse each), as a merge-join would; write one first with
//   node docs/snapshots-measure/index-memory.mjs write 1000000 /tmp/index.jsonl
import { createReadStream, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

const [mode = 'packed', countText = '1000000', file = '/tmp/index.jsonl'] = process.argv.slice(2);
const count = Number(countText);
const HEX = '0123456789abcdef';

function entry(i) {
  const shard = String(Math.floor(i / 1000)).padStart(3, '0');
  let sha = '';
  for (let k = 0; k < 64; k++) sha += HEX[(i * 7 + k * 13) & 15];
  return {
    path: `memory/facts/shard-${shard}/fact-${String(i).padStart(6, '0')}.json`,
    type: 'file',
    size: 64 + (i % 960),
    mode: 0o644,
    mtime_ns: String(1764470831123456789n + BigInt(i) * 1000003n),
    ctime_ns: String(1764470831223456789n + BigInt(i) * 1000003n),
    ino: String(1_000_000 + i),
    uid: 1000,
    gid: 1000,
    sha256: sha,
  };
}

function settle() {
  globalThis.gc?.();
  globalThis.gc?.();
  const m = process.memoryUsage();
  // `external` already includes `arrayBuffers` (Buffers, typed arrays).
  return { rss: m.rss, heap: m.heapUsed, external: m.external };
}

const before = settle();
let keep;
const started = process.hrtime.bigint();
if (mode === 'write') {
  let text = '';
  const parts = [];
  for (let i = 0; i < count; i++) {
    text += `${JSON.stringify(entry(i))}\n`;
    if (text.length > 1 << 20) {
      parts.push(text);
      text = '';
    }
  }
  parts.push(text);
  writeFileSync(file, parts.join(''));
  console.log(JSON.stringify({ wrote: file, entries: count }));
  process.exit(0);
} else if (mode === 'map-objects') {
  // What a straightforward loader keeps: the parsed line minus its path, keyed by path.
  const map = new Map();
  for (let i = 0; i < count; i++) {
    const { path, ...rest } = JSON.parse(JSON.stringify(entry(i)));
    map.set(path, rest);
  }
  keep = map;
} else if (mode === 'map-index' || mode === 'packed') {
  // The fields the change rule needs, in typed arrays (8 + 8 + 8 + 8 + 2 + 32 bytes per entry); rows found
  // through a Map of path strings (`map-index`) or through one buffer of path bytes + offsets and an
  // open-addressing table of row numbers (`packed`).
  const fields = {
    size: new Float64Array(count),
    mtime: new BigInt64Array(count),
    ctime: new BigInt64Array(count),
    ino: new BigUint64Array(count),
    mode: new Uint16Array(count),
    sha: new Uint8Array(count * 32),
  };
  const map = new Map();
  const paths = Buffer.allocUnsafe(mode === 'packed' ? count * 48 : 0);
  const offset = new Uint32Array(mode === 'packed' ? count + 1 : 0);
  const slots = new Int32Array(mode === 'packed' ? 2 ** Math.ceil(Math.log2(count * 2)) : 0).fill(-1);
  const mask = slots.length - 1;
  let used = 0;
  const hashBytes = (start, end) => {
    let h = 0x811c9dc5;
    for (let k = start; k < end; k++) h = Math.imul(h ^ paths[k], 0x01000193);
    return h >>> 0;
  };
  for (let i = 0; i < count; i++) {
    const e = JSON.parse(JSON.stringify(entry(i)));
    fields.size[i] = e.size;
    fields.mtime[i] = BigInt(e.mtime_ns);
    fields.ctime[i] = BigInt(e.ctime_ns);
    fields.ino[i] = BigInt(e.ino);
    fields.mode[i] = e.mode;
    fields.sha.set(Buffer.from(e.sha256, 'hex'), i * 32);
    if (mode === 'map-index') {
      map.set(e.path, i);
      continue;
    }
    offset[i] = used;
    used += paths.write(e.path, used, 'utf8');
    offset[i + 1] = used;
    let slot = hashBytes(offset[i], used) & mask;
    while (slots[slot] !== -1) slot = (slot + 1) & mask;
    slots[slot] = i;
  }
  keep = [fields, map, paths, offset, slots];
} else if (mode === 'stream') {
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Number.POSITIVE_INFINITY });
  let n = 0;
  let last = '';
  for await (const line of lines) {
    const e = JSON.parse(line);
    if (e.path <= last) throw new Error('not sorted');
    last = e.path;
    n++;
  }
  keep = n;
} else {
  throw new Error(`unknown mode ${mode}`);
}
const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
const after = settle();
const retained = after.heap + after.external - before.heap - before.external;
console.log(
  JSON.stringify({
    mode,
    entries: count,
    ms: Math.round(elapsedMs),
    retainedBytesPerEntry: Math.round(retained / count),
    rssMB: Math.round(after.rss / 2 ** 20),
    peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
    kept: keep ? 1 : 0,
  }),
);
