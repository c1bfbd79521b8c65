// Test-only pause points (docs/test-hooks.md): with STATESNAP_TEST_PAUSE_AT set, a run stops itself with
// SIGSTOP at the named phases, so a test can look at the disk and kill or resume it at exactly that point.
// The variable is read once, when this module loads; unset, `pauseAt` is undefined and every call site skips.

import { appendFileSync, writeSync } from 'node:fs';

const PAUSE_PHASES = [
  // backup
  'partial-created',
  'index-sealed',
  'manifest-written',
  'before-publish',
  'after-rename-aside',
  'published',
  // restore (the swap's phases also occur when `recover` or the next restore finishes a journalled swap)
  'staging-created',
  'staging-flushed',
  'journal-written',
  'target-moved-aside',
  'staging-moved-in',
  // snapshot repository: the lock taken and leftovers removed (snapshot, prune); prune's snapshots renamed
  // to `.deleting-<id>`, none removed yet
  'lock-acquired',
  'prune-renamed',
  // prune on S3: the deletion plan written under the lock, nothing deleted; then, the lock released, before
  // the sweep's first delete and after each batch (`sweeping:N`: once at least N planned keys are deleted)
  'gc-planned',
  'sweeping',
  // both: after a batch of the copy, once at least N files are done (`copying:N`, default 1)
  'copying',
] as const;
type PausePhase = (typeof PAUSE_PHASES)[number];

type Pause = (phase: PausePhase, filesDone?: number) => void;

/** `phase[:files]` items, comma-separated, into each phase's file count (phases without a count: 0). */
function parsePausePoints(spec: string): Map<string, number> {
  const points = new Map<string, number>();
  for (const item of spec.split(',')) {
    const [phase = '', count] = item.trim().split(':');
    if (
      !(PAUSE_PHASES as readonly string[]).includes(phase) ||
      (count !== undefined && !/^\d+$/.test(count))
    ) {
      throw new Error(`STATESNAP_TEST_PAUSE_AT: unknown pause point ${JSON.stringify(item)}`);
    }
    points.set(phase, count === undefined ? (phase === 'copying' ? 1 : 0) : Number(count));
  }
  return points;
}

/**
 * Pauses once at each point of `spec`: writes `<phase> <filesDone> <pid>` as one line to `lineFile` (stderr
 * when unset), then stops the whole process, worker threads included, until SIGCONT (or SIGKILL).
 */
function makePause(spec: string, lineFile: string | undefined): Pause {
  const pending = parsePausePoints(spec);
  return (phase, filesDone = 0) => {
    const atLeast = pending.get(phase);
    if (atLeast === undefined || filesDone < atLeast) return;
    pending.delete(phase);
    const line = `${phase} ${filesDone} ${process.pid}\n`;
    if (lineFile === undefined) writeSync(2, line);
    else appendFileSync(lineFile, line);
    process.kill(process.pid, 'SIGSTOP');
  };
}

const spec = process.env.STATESNAP_TEST_PAUSE_AT;

/** Undefined unless a test asked for pause points: call sites write `pauseAt?.('phase')`. */
export const pauseAt: Pause | undefined =
  spec === undefined || spec === '' ? undefined : makePause(spec, process.env.STATESNAP_TEST_PAUSE_FILE);
