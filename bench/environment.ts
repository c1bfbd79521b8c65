// Where a benchmark ran: machine, filesystem of the bench directory, package version and git commit, so a
// result file says what its figures can be compared with.

import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import type { MachineInfo } from './result.js';

function output(command: string, args: readonly string[], cwd?: string): string | null {
  try {
    return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

/** findmnt gives the mount options too (`discard` makes deleting slow: docs/performance.md); df -T is the fallback. */
function filesystemOf(dir: string): MachineInfo['filesystem'] {
  const findmnt = output('findmnt', ['-n', '-o', 'FSTYPE,OPTIONS', '-T', dir]);
  if (findmnt) {
    const [type, options] = findmnt.split(/\s+/, 2);
    if (type) return { type, options: options ?? null };
  }
  const df = output('df', ['-T', dir]);
  const type = df?.split('\n')[1]?.split(/\s+/)[1];
  return type ? { type, options: null } : null;
}

export function machineInfo(benchDir: string): MachineInfo {
  const cpus = os.cpus();
  return {
    platform: process.platform,
    arch: process.arch,
    release: os.release(),
    cpus: os.availableParallelism(),
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    memoryBytes: os.totalmem(),
    node: process.version,
    filesystem: filesystemOf(benchDir),
    loadAverage: loadAverage(),
  };
}

export function loadAverage(): number[] {
  return os.loadavg().map((load) => Math.round(load * 100) / 100);
}

/** HEAD and whether the work tree has changes, or nulls when `root` is not a git checkout. */
export function gitInfo(root: string): { commit: string | null; dirty: boolean | null } {
  const commit = output('git', ['rev-parse', 'HEAD'], root);
  if (commit === null) return { commit: null, dirty: null };
  const status = output('git', ['status', '--porcelain', '--untracked-files=no'], root);
  return { commit, dirty: status === null ? null : status.length > 0 };
}
