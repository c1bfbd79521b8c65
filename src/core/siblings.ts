// Names and finds the work entries statesnap keeps beside a final path (a backup being built, a replaced
// backup, a restore's staging tree, a restore journal being written), so a later run can tell which ones a
// killed run left.
// The name carries the owning pid: a sibling whose pid is no longer alive is stale.

import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export type SiblingPurpose = 'partial' | 'replaced' | 'staging' | 'journal';

export function siblingPath(finalPath: string, purpose: SiblingPurpose): string {
  return `${finalPath}.${purpose}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

export interface Sibling {
  path: string;
  purpose: SiblingPurpose;
}

/** Whether the process that owns a sibling is still running (a pid we may not signal is alive too). */
export function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Siblings of `finalPath` with one of `purposes` whose owning process has died. */
export function findStaleSiblings(finalPath: string, purposes: readonly SiblingPurpose[]): Sibling[] {
  const pattern = new RegExp(
    `^${escapeRegExp(basename(finalPath))}\\.(${purposes.join('|')})-(\\d+)-[0-9a-f]{8}$`,
  );
  let names: string[];
  try {
    names = readdirSync(dirname(finalPath));
  } catch {
    return [];
  }
  const stale: Sibling[] = [];
  for (const name of names) {
    const match = pattern.exec(name);
    if (!match) continue;
    const pid = Number(match[2]);
    if (!isAlive(pid))
      stale.push({ path: join(dirname(finalPath), name), purpose: match[1] as SiblingPurpose });
  }
  return stale;
}
