// Where a benchmark ran: machine, filesystem of the bench directory, package version and git commit, so a
// result file says what its figures can be compared with.

import { execFileSync } from 'node:child_process';
import { readdirSync, realpathSync } from 'node:fs';
import * as os from 'node:os';
import { basename } from 'node:path';
import type { MachineInfo, ScratchInfo } from './result.js';

function output(command: string, args: readonly string[], cwd?: string): string | null {
  try {
    return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

/**
 * Whether the filesystem keeps a journal, or null when that does not apply or cannot be told. It changes the
 * figures: an ext4 without one scans its inode tables for every file created after a big deletion.
 */
function hasJournal(type: string, source: string | null): boolean | null {
  if (type === 'ext2') return false;
  if (type === 'xfs') return true;
  if ((type !== 'ext3' && type !== 'ext4') || source === null) return null;
  try {
    // jbd2 lists each journal it runs as `<block device>-<journal inode>`.
    const device = basename(realpathSync(source));
    return readdirSync('/proc/fs/jbd2').some((name) => name.startsWith(`${device}-`));
  } catch {
    return null;
  }
}

/** findmnt gives the mount options too (`discard` makes deleting slow: docs/performance.md); df -T is the fallback. */
export function filesystemOf(dir: string): NonNullable<MachineInfo['filesystem']> | null {
  const findmnt = output('findmnt', ['-n', '-o', 'SOURCE,FSTYPE,OPTIONS', '-T', dir]);
  if (findmnt) {
    const [source, type, options] = findmnt.split(/\s+/, 3);
    if (type) return { type, options: options ?? null, journal: hasJournal(type, source ?? null) };
  }
  const df = output('df', ['-T', dir]);
  const [source, type] = df?.split('\n')[1]?.split(/\s+/) ?? [];
  return type ? { type, options: null, journal: hasJournal(type, source ?? null) } : null;
}

export function machineInfo(benchDir: string, scratch: ScratchInfo | null): MachineInfo {
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
    scratch,
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
