// One statesnap operation in a process of its own, so the benchmark can read its peak RSS (worker threads
// share the process, so they are included) and CPU time: `node dist/bench/child.js backup <source> <dest>
// [--no-sync] [--threads n]` or `restore <backup> <target>`. Prints one JSON line (ChildReport) on stdout.

import { parseArgs } from 'node:util';
import { backup, restore } from '../src/index.js';

export interface ChildReport {
  /** The operation's own result object (BackupResult or RestoreResult). */
  result: Record<string, unknown>;
  /** process.resourceUsage().maxRSS: peak resident set in KiB, main thread and workers together. */
  maxRssKb: number;
  userMs: number;
  systemMs: number;
}

async function runOperation(args: string[]): Promise<object> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { 'no-sync': { type: 'boolean', default: false }, threads: { type: 'string' } },
  });
  const [operation, from, to] = positionals;
  if (from === undefined || to === undefined) throw new Error('usage: child.js backup|restore <from> <to>');
  if (operation === 'backup') {
    return backup({
      source: from,
      dest: to,
      sync: !values['no-sync'],
      threads: values.threads === undefined ? undefined : Number(values.threads),
    });
  }
  // Replace mode with its defaults (verify hashes first, flush before the swap), as `statesnap restore` runs.
  if (operation === 'restore') return restore({ backup: from, target: to });
  throw new Error(`unknown operation \`${operation}\``);
}

const result = await runOperation(process.argv.slice(2));
const usage = process.resourceUsage();
const report: ChildReport = {
  result: { ...result },
  maxRssKb: usage.maxRSS,
  userMs: usage.userCPUTime / 1000,
  systemMs: usage.systemCPUTime / 1000,
};
process.stdout.write(`${JSON.stringify(report)}\n`);
