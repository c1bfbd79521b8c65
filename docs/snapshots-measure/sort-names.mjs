// What sorting one directory's names costs, per 100k names, next to reading the directory and lstat'ing
// its entries. Run after `npm run build`, on a generated store (warm cache):
//   node docs/snapshots-measure/sort-names.mjs /mnt/x/s100k/memory/facts
import { lstatSync, readdirSync } from 'node:fs';
import { compareNames, sortNames } from '../../dist/src/snapshot/index-order.js';

const dir = process.argv[2];
const ROUNDS = 7;

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function time(label, names, run) {
  const samples = [];
  for (let round = 0; round < ROUNDS; round++) {
    const copy = names.slice();
    const start = process.hrtime.bigint();
    run(copy);
    samples.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  const ms = median(samples);
  console.log(`${label.padEnd(44)} ${ms.toFixed(1).padStart(7)} ms  ${((ms * 1e5) / names.length).toFixed(1).padStart(7)} ms per 100k`);
}

const listed = readdirSync(dir);
// Shuffled: readdir order on ext4 is hash order, already far from sorted; shuffle so every run starts alike.
let seed = 1;
const shuffled = listed.slice();
for (let i = shuffled.length - 1; i > 0; i--) {
  seed = (seed * 1103515245 + 12345) >>> 0;
  const j = seed % (i + 1);
  [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
}
console.log(`${listed.length} names in ${dir}`);
time('readdirSync (names)', shuffled, () => readdirSync(dir));
time('readdirSync withFileTypes', shuffled, () => readdirSync(dir, { withFileTypes: true }));
time('readdirSync as Buffers', shuffled, () => readdirSync(dir, { encoding: 'buffer' }));
time('lstatSync of every entry', shuffled, (names) => {
  for (const name of names) lstatSync(`${dir}/${name}`, { bigint: true });
});
time('sort() default (UTF-16 units)', shuffled, (names) => names.sort());
time('sortNames (checks, then default sort)', shuffled, (names) => sortNames(names));
time('sort(compareNames) (UTF-8 order in JS)', shuffled, (names) => names.sort(compareNames));
const buffers = shuffled.map((name) => Buffer.from(name));
time('Buffer names: sort(Buffer.compare)', buffers, (names) => names.sort(Buffer.compare));
time('Buffer names: sort(compareNames)', buffers, (names) => names.sort(compareNames));
// libuv's scandir (behind readdirSync) already returns names sorted by strcmp, i.e. by bytes: sorting what
// it returns is the linear pass of a sort over sorted input.
const sorted = readdirSync(dir);
console.log(`readdirSync order is byte order: ${sorted.every((name, i) => i === 0 || compareNames(sorted[i - 1], name) < 0)}`);
time('sortNames on readdirSync order', sorted, (names) => sortNames(names));
const dirents = readdirSync(dir, { withFileTypes: true });
time('Dirents in readdirSync order: sort by compareNames', dirents, (entries) =>
  entries.sort((a, b) => compareNames(a.name, b.name)),
);
const shuffledDirents = shuffled.map((name) => dirents.find((entry) => entry.name === name));
time('Dirents shuffled: sort by compareNames', shuffledDirents, (entries) =>
  entries.sort((a, b) => compareNames(a.name, b.name)),
);
