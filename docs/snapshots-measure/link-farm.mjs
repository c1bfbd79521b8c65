// The floor of a no-change snapshot in Node: recreate the directory tree of <source> under <dest> and
// hard-link every regular file from <prev> (a complete earlier copy of <source>), with N worker threads.
//   node docs/snapshots-measure/link-farm.mjs <source> <prev> <dest> <threads> <link|snapshot>
// `link`: mkdir + link() only (what `cp -al` does); `snapshot`: also lstat each source file (the change
// rule's input) and lstat each new link (the check that the previous file is the one its index describes).
import { linkSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

function linkRange({ source, prev, dest, files, mode }) {
  let linked = 0;
  for (const rel of files) {
    if (mode === 'snapshot') lstatSync(`${source}/${rel}`, { bigint: true });
    linkSync(`${prev}/${rel}`, `${dest}/${rel}`);
    if (mode === 'snapshot') lstatSync(`${dest}/${rel}`, { bigint: true });
    linked++;
  }
  return linked;
}

if (!isMainThread) {
  parentPort.postMessage(linkRange(workerData));
} else {
  const [source, prev, dest, threadsText = '1', mode = 'link'] = process.argv.slice(2);
  const threads = Number(threadsText);
  const start = process.hrtime.bigint();
  const files = [];
  // Canonical order: a directory's entries by name (readdirSync's own order), then its subdirectories.
  const pending = [''];
  mkdirSync(dest);
  while (pending.length > 0) {
    const dir = pending.pop();
    const subdirs = [];
    for (const entry of readdirSync(dir === '' ? source : `${source}/${dir}`, { withFileTypes: true })) {
      const rel = dir === '' ? entry.name : `${dir}/${entry.name}`;
      if (entry.isDirectory()) {
        mkdirSync(`${dest}/${rel}`);
        subdirs.push(rel);
      } else if (entry.isFile() && !entry.name.endsWith('.tmp')) {
        files.push(rel);
      }
    }
    pending.push(...subdirs.reverse());
  }
  const planned = process.hrtime.bigint();
  let linked = 0;
  if (threads === 0) {
    linked = linkRange({ source, prev, dest, files, mode });
  } else {
    const share = Math.ceil(files.length / threads);
    const counts = await Promise.all(
      Array.from({ length: threads }, (_, i) => {
        const worker = new Worker(new URL(import.meta.url), {
          workerData: { source, prev, dest, files: files.slice(i * share, (i + 1) * share), mode },
        });
        return new Promise((resolve, reject) => {
          worker.once('message', resolve);
          worker.once('error', reject);
        });
      }),
    );
    linked = counts.reduce((a, b) => a + b, 0);
  }
  const end = process.hrtime.bigint();
  console.log(
    JSON.stringify({
      mode,
      threads,
      files: linked,
      planSeconds: Number((Number(planned - start) / 1e9).toFixed(3)),
      linkSeconds: Number((Number(end - planned) / 1e9).toFixed(3)),
      usPerFile: Number((Number(end - planned) / 1e3 / linked).toFixed(2)),
    }),
  );
}
