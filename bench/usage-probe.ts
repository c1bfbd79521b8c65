// Preloaded (`node --import`) into every statesnap command the suite times, so the suite measures the real
// CLI and can still read what the process cost: at exit, its peak RSS and CPU time (worker threads share the
// process, so they are included) are written as one JSON line to file descriptor 3.

import { writeSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';

export interface ProcessUsage {
  /** process.resourceUsage().maxRSS: peak resident set in KiB, main thread and workers together. */
  maxRssKb: number;
  userMs: number;
  systemMs: number;
}

// Worker threads run preloads too, and share the process's descriptors: only the main thread reports.
if (isMainThread) {
  process.on('exit', () => {
    const usage = process.resourceUsage();
    const report: ProcessUsage = {
      maxRssKb: usage.maxRSS,
      userMs: usage.userCPUTime / 1000,
      systemMs: usage.systemCPUTime / 1000,
    };
    writeSync(3, `${JSON.stringify(report)}\n`);
  });
}
