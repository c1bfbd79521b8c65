// Who owns a piece of work on disk (a restore journal, a lock, a tree beside a backup or a target), recorded so
// that another process can tell later whether that owner still runs. A pid alone is not enough: after a
// reboot, or in a new container, the same pid belongs to another process. So the record adds the process's
// start time, the kernel's boot id, the pid namespace and (hashed) the host name.

import { createHash } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';

export interface Owner {
  pid: number;
  /** When the process started, in clock ticks since boot (field 22 of /proc/<pid>/stat); '' where unknown. */
  start: string;
  /** The first 8 hex digits of the kernel's boot id (changes on every boot); '' where unknown. */
  boot: string;
  /** 8 hex digits of a hash of the host name. */
  host: string;
  /** The pid namespace's inode number (/proc/self/ns/pid): pids mean something only inside one; '' where unknown. */
  pidNs: string;
}

/**
 * `running`: the owner is this very process, or its pid runs with the recorded start time. `gone`: it cannot
 * still run (no such pid, another start time, a reboot since). `unknown`: it cannot be judged from here (another
 * machine, another pid namespace of this boot such as another container, or an older record with a pid alone
 * that is in use): treat it as running, and let a person decide.
 */
export type OwnerState = 'running' | 'gone' | 'unknown';

// Linux reports process times in USER_HZ, which the kernel fixes at 100 on every architecture Node runs on.
const TICKS_PER_SECOND = 100;

function readOrEmpty(read: () => string): string {
  try {
    return read();
  } catch {
    return '';
  }
}

/** The start time of `pid` in clock ticks since boot, or null when there is no such process to read. */
function processStart(pid: number | 'self'): string | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  // The command name (field 2) is in parentheses and may itself hold spaces and parentheses.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19] ?? null;
}

function hostHash(): string {
  return createHash('sha256').update(hostname()).digest('hex').slice(0, 8);
}

let current: Owner | undefined;

/** This process, as an owner record names it. */
export function thisProcess(): Owner {
  current ??= {
    pid: process.pid,
    start: processStart('self') ?? '',
    boot: readOrEmpty(() =>
      readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').replace(/-/g, '').slice(0, 8),
    ),
    host: hostHash(),
    pidNs: readOrEmpty(() => /^pid:\[(\d+)\]$/.exec(readlinkSync('/proc/self/ns/pid'))?.[1] ?? ''),
  };
  return current;
}

/** Whether some process has `pid` in this pid namespace (one we may not signal exists too). */
function pidInUse(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether the owner recorded in `owner` still runs (see OwnerState). */
export function ownerState(owner: Owner): OwnerState {
  const me = thisProcess();
  if (me.boot === '' || owner.boot === '') {
    // No /proc here or there (macOS): the pid is all there is to go by, on this host.
    if (owner.host !== me.host) return 'unknown';
    return pidInUse(owner.pid) ? 'running' : 'gone';
  }
  if (owner.boot !== me.boot) return owner.host === me.host ? 'gone' : 'unknown';
  if (owner.pidNs !== me.pidNs) return 'unknown';
  const start = processStart(owner.pid);
  if (start === null) {
    // /proc mounted with hidepid hides other users' processes: a pid we cannot read may still run.
    return pidInUse(owner.pid) ? 'unknown' : 'gone';
  }
  return start === owner.start ? 'running' : 'gone';
}

/** Seconds since 1970 at which this kernel booted (`btime` in /proc/stat), or null where unknown. */
function bootTime(): number | null {
  const line = readOrEmpty(() => readFileSync('/proc/stat', 'latin1')).match(/^btime (\d+)$/m);
  return line ? Number(line[1]) : null;
}

// A process that started this long after a record was written cannot have written it. The margin covers the
// whole-second boot time and small clock corrections.
const REUSE_MARGIN_MS = 60_000;

/**
 * Whether the owner of a record an older statesnap wrote (a pid alone) still runs, given when the record was
 * last changed: its pid is free, or now belongs to a process that started after the record was written.
 * Otherwise the pid may or may not still be that statesnap: `unknown`.
 */
export function legacyOwnerState(pid: number, recordedAtMs: number): OwnerState {
  if (!pidInUse(pid)) return 'gone';
  const start = processStart(pid);
  const booted = bootTime();
  if (start === null || booted === null) return 'unknown';
  const startedAtMs = booted * 1000 + (Number(start) / TICKS_PER_SECOND) * 1000;
  return startedAtMs > recordedAtMs + REUSE_MARGIN_MS ? 'gone' : 'unknown';
}

/** The owner as one token for names and records: `<pid>-<start>-<boot>-<host>-<pidns>`, unknown parts as `x`. */
export function formatOwner(owner: Owner): string {
  return [owner.pid, owner.start, owner.boot, owner.host, owner.pidNs].map((part) => part || 'x').join('-');
}

/** What formatOwner writes, as a regular expression (no groups) to embed in a name pattern. */
export const OWNER_PATTERN = '\\d+-(?:\\d+|x)-(?:[0-9a-f]{8}|x)-[0-9a-f]{8}-(?:\\d+|x)';

/** Reads a token formatOwner wrote, or null if `text` is not one. */
export function parseOwner(text: string): Owner | null {
  if (!new RegExp(`^${OWNER_PATTERN}$`).test(text)) return null;
  const [pid, start, boot, host, pidNs] = text.split('-').map((part) => (part === 'x' ? '' : part)) as [
    string,
    string,
    string,
    string,
    string,
  ];
  return { pid: Number(pid), start, boot, host, pidNs };
}

/** The owner for a message: `pid 123 (started 2026-11-30 04:30:01 UTC)`, or where it ran when not here. */
export function describeOwner(owner: Owner): string {
  const me = thisProcess();
  if (owner.boot === '' || me.boot === '' || owner.boot !== me.boot) {
    if (owner.host !== me.host) return `pid ${owner.pid} on another machine`;
    if (owner.boot !== me.boot) return `pid ${owner.pid} before the machine restarted`;
    return `pid ${owner.pid}`;
  }
  if (owner.pidNs !== me.pidNs) return `pid ${owner.pid} in another container (pid namespace ${owner.pidNs})`;
  const booted = bootTime();
  if (booted === null) return `pid ${owner.pid}`;
  const started = new Date(booted * 1000 + (Number(owner.start) * 1000) / TICKS_PER_SECOND);
  return `pid ${owner.pid} (started ${started.toISOString().slice(0, 19).replace('T', ' ')} UTC)`;
}
