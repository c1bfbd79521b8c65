// The speed and memory targets of the snapshot, full-copy and object-storage work (and the README's goals),
// evaluated against a run's figures: reported, never asserted. A target is measured only by a run of the store
// it is set for; any other run reports it `not measured`.

import type { CaseId } from '../src/cli/bench-cases.js';
import type { StoreProfile } from '../src/demo/generator.js';
import type { CaseResult, RoundFigures, TargetResult } from './result.js';
import { median } from './runner.js';

/** The store a target is set for: a profile, at scale 1 when the target names the full-size store. */
interface TargetScope {
  profile: StoreProfile;
  /** null: the figure does not depend on the store's size (it is measured at any scale of the profile). */
  scale: 1 | null;
}

interface TargetBase extends TargetScope {
  id: string;
  issue?: number;
  description: string;
  limit: number;
}

/** `caseId`'s wall time over `reference`'s in the same round; the median over rounds. */
interface RatioTarget extends TargetBase {
  kind: 'ratio';
  caseId: CaseId;
  reference: CaseId;
}

/** The highest peak RSS of these cases over every round, in 10^6 bytes. */
interface RssTarget extends TargetBase {
  kind: 'rss';
  caseIds: readonly CaseId[];
}

/**
 * User CPU per copied file, in µs: per round, the backup's user CPU minus the one-file backup's (the fixed
 * cost of a process), divided by the files the backup copied; the median over rounds.
 */
interface CpuPerFileTarget extends TargetBase {
  kind: 'cpu-per-file';
  caseId: CaseId;
  fixedCost: CaseId;
}

/** The median wall time of a case, in seconds. */
interface WallTarget extends TargetBase {
  kind: 'wall';
  caseId: CaseId;
}

type Target = RatioTarget | RssTarget | CpuPerFileTarget | WallTarget;

/** The 100k-file store. */
const OXIOS: TargetScope = { profile: 'oxios', scale: 1 };
/** The 1M-file store. */
const TINY_FILES: TargetScope = { profile: 'tiny-files', scale: 1 };

const BACKUP_CASES: readonly CaseId[] = [
  'statesnap',
  'statesnap-no-sync',
  'statesnap-restore',
  'statesnap-threads-1',
  'statesnap-threads-2',
  'statesnap-threads-4',
  'statesnap-threads-8',
];

export const TARGETS: readonly Target[] = [
  // Snapshots: an unchanged store must cost a fraction of a link farm.
  {
    kind: 'ratio',
    id: 'no-change-vs-rsync-link-dest',
    issue: 10,
    description: 'no-change snapshot ≤ 0.25× (rsync -a --link-dest + sync)',
    ...OXIOS,
    caseId: 'statesnap-link-dest',
    reference: 'rsync-link-dest',
    limit: 0.25,
  },
  {
    kind: 'ratio',
    id: 'no-change-vs-cp-al',
    issue: 10,
    description: 'no-change snapshot ≤ 1.0× (cp -al + sync)',
    ...OXIOS,
    caseId: 'statesnap-link-dest',
    reference: 'cp-al',
    limit: 1,
  },
  {
    kind: 'ratio',
    id: 'one-pct-vs-no-change',
    issue: 10,
    description: '1%-changed snapshot ≤ 1.3× no-change snapshot',
    ...OXIOS,
    caseId: 'statesnap-link-dest-1pct',
    reference: 'statesnap-link-dest',
    limit: 1.3,
  },
  {
    kind: 'ratio',
    id: 'no-change-vs-restic',
    issue: 10,
    description: "no-change snapshot ≤ 0.5× restic's no-change backup (+ sync)",
    ...OXIOS,
    caseId: 'statesnap-link-dest',
    reference: 'restic-no-change',
    limit: 0.5,
  },
  {
    kind: 'rss',
    id: 'no-change-peak-rss',
    issue: 10,
    description: 'no-change snapshot peak RSS ≤ 300 MB',
    ...TINY_FILES,
    caseIds: ['statesnap-link-dest', 'snapshot-no-change'],
    limit: 300,
  },
  // Full copies.
  {
    kind: 'ratio',
    id: 'durable-vs-cp-sync',
    issue: 11,
    description: 'statesnap backup ≤ 0.4× (cp -a + sync)',
    ...OXIOS,
    caseId: 'statesnap',
    reference: 'cp-a-sync',
    limit: 0.4,
  },
  {
    // Whether the target above can be met here at all: the same kernel work as cp -a, with no user-space cost,
    // spread over every core and flushed while it copies.
    kind: 'ratio',
    id: 'floor-vs-cp-sync',
    issue: 11,
    description: 'the floor (cp -a per core, flushed meanwhile) ≤ 0.4× (cp -a + sync)',
    ...OXIOS,
    caseId: 'cp-a-parallel-sync',
    reference: 'cp-a-sync',
    limit: 0.4,
  },
  {
    kind: 'ratio',
    id: 'durable-vs-floor',
    issue: 11,
    description: 'statesnap backup ≤ 1.0× the floor (cp -a per core, flushed meanwhile)',
    ...OXIOS,
    caseId: 'statesnap',
    reference: 'cp-a-parallel-sync',
    limit: 1,
  },
  {
    // Where start-up and the final flush weigh most.
    kind: 'ratio',
    id: 'durable-vs-cp-sync-small',
    issue: 11,
    description: 'statesnap backup ≤ 0.6× (cp -a + sync)',
    profile: 'oxios-small',
    scale: 1,
    caseId: 'statesnap',
    reference: 'cp-a-sync',
    limit: 0.6,
  },
  {
    kind: 'ratio',
    id: 'floor-vs-cp-sync-small',
    issue: 11,
    description: 'the floor (cp -a per core, flushed meanwhile) ≤ 0.6× (cp -a + sync)',
    profile: 'oxios-small',
    scale: 1,
    caseId: 'cp-a-parallel-sync',
    reference: 'cp-a-sync',
    limit: 0.6,
  },
  {
    kind: 'ratio',
    id: 'durable-vs-fs-cp',
    issue: 11,
    description: 'statesnap backup ≤ 0.15× fs.promises.cp',
    ...OXIOS,
    caseId: 'statesnap',
    reference: 'fs-cp',
    limit: 0.15,
  },
  {
    kind: 'ratio',
    id: 'restore-vs-cp-sync',
    issue: 11,
    description: 'statesnap restore ≤ 0.5× (cp -a + sync)',
    ...OXIOS,
    caseId: 'statesnap-restore',
    reference: 'cp-a-sync',
    limit: 0.5,
  },
  {
    // A restore copies the same tree as a backup: the same floor.
    kind: 'ratio',
    id: 'restore-vs-floor',
    issue: 11,
    description: 'statesnap restore ≤ 1.0× the floor (cp -a per core, flushed meanwhile)',
    ...OXIOS,
    caseId: 'statesnap-restore',
    reference: 'cp-a-parallel-sync',
    limit: 1,
  },
  {
    kind: 'ratio',
    id: 'walk-vs-du',
    issue: 11,
    description: 'planner walk ≤ 2× du -sb',
    ...OXIOS,
    caseId: 'planner-walk',
    reference: 'du-sb',
    limit: 2,
  },
  {
    kind: 'cpu-per-file',
    id: 'user-cpu-per-file',
    issue: 11,
    description: 'user CPU per copied small file ≤ 10 µs (backup minus one-file backup, ÷ files copied)',
    // Small files only (the oxios store's large files would add their hashing), and a figure per file that
    // does not depend on how many there are.
    profile: 'tiny-files',
    scale: null,
    caseId: 'statesnap',
    fixedCost: 'statesnap-one-file',
    limit: 10,
  },
  {
    kind: 'wall',
    id: 'start-up',
    issue: 11,
    description: 'start-up ≤ 0.12 s (wall time of a durable backup of one file)',
    profile: 'oxios',
    scale: null,
    caseId: 'statesnap-one-file',
    limit: 0.12,
  },
  {
    kind: 'rss',
    id: 'peak-rss',
    issue: 11,
    description: 'backup and restore peak RSS ≤ 300 MB',
    ...TINY_FILES,
    caseIds: BACKUP_CASES,
    limit: 300,
  },
  // Object storage, against the same operations on the local disk.
  {
    kind: 'ratio',
    id: 's3-vs-durable-backup',
    issue: 12,
    description: 'snapshot to S3 ≤ 2× durable local backup',
    ...OXIOS,
    caseId: 's3-snapshot',
    reference: 'statesnap',
    limit: 2,
  },
  {
    kind: 'ratio',
    id: 's3-vs-restic-s3',
    issue: 12,
    description: "snapshot to S3 ≤ 0.5× restic's backup to the same S3",
    ...OXIOS,
    caseId: 's3-snapshot',
    reference: 'restic-s3',
    limit: 0.5,
  },
  {
    kind: 'ratio',
    id: 's3-no-change-vs-local',
    issue: 12,
    description: 'no-change snapshot to S3 ≤ 2× no-change local snapshot',
    ...OXIOS,
    caseId: 's3-snapshot-no-change',
    reference: 'snapshot-no-change',
    limit: 2,
  },
  {
    kind: 'ratio',
    id: 's3-restore-vs-local',
    issue: 12,
    description: 'restore from S3 ≤ 2.5× local restore',
    ...OXIOS,
    caseId: 's3-restore',
    reference: 'statesnap-restore',
    limit: 2.5,
  },
  {
    kind: 'rss',
    id: 's3-peak-rss',
    issue: 12,
    description: 'snapshot to S3 peak RSS ≤ 400 MB',
    ...TINY_FILES,
    caseIds: ['s3-snapshot', 's3-snapshot-no-change'],
    limit: 400,
  },
  // The README's own goal, not an issue's.
  {
    kind: 'ratio',
    id: 'no-sync-vs-cp',
    description: 'statesnap --no-sync ≤ 0.5× cp -a',
    ...OXIOS,
    caseId: 'statesnap-no-sync',
    reference: 'cp-a',
    limit: 0.5,
  },
];

/** The run whose figures the targets are evaluated against. */
export interface RunScope {
  profile: StoreProfile;
  scale: number;
}

const UNITS: Record<Target['kind'], TargetResult['unit']> = {
  ratio: 'ratio',
  rss: 'MB',
  'cpu-per-file': 'µs',
  wall: 's',
};

function casesOf(target: Target): CaseId[] {
  switch (target.kind) {
    case 'ratio':
      return [target.caseId, target.reference];
    case 'rss':
      return [...target.caseIds];
    case 'cpu-per-file':
      return [target.caseId, target.fixedCost];
    case 'wall':
      return [target.caseId];
  }
}

/** Per round, `figure` of the two cases' rounds of the same number; the median, or null when a round lacks one. */
function pairedMedian(
  subject: CaseResult,
  reference: CaseResult,
  figure: (own: RoundFigures, theirs: RoundFigures) => number | undefined,
): number | null {
  if (subject.rounds.length !== reference.rounds.length) return null;
  const perRound = subject.rounds.map((round, index) => figure(round, reference.rounds[index]!));
  return perRound.every((value) => value !== undefined) ? median(perRound as number[]) : null;
}

/** The target's figure from these cases (all of its cases ran), or null when they do not give one. */
function figureOf(target: Target, byId: ReadonlyMap<string, CaseResult>): number | null {
  switch (target.kind) {
    case 'ratio':
      return pairedMedian(byId.get(target.caseId)!, byId.get(target.reference)!, (own, theirs) =>
        theirs.ms > 0 ? own.ms / theirs.ms : undefined,
      );
    case 'rss': {
      const peaks = target.caseIds.flatMap((id) => {
        const peak = byId.get(id)?.peakRssMb?.max;
        return peak === undefined ? [] : [peak];
      });
      return peaks.length > 0 ? Math.max(...peaks) : null;
    }
    case 'cpu-per-file':
      return pairedMedian(byId.get(target.caseId)!, byId.get(target.fixedCost)!, (own, fixed) =>
        own.userMs === undefined || fixed.userMs === undefined || !own.filesCopied
          ? undefined
          : ((own.userMs - fixed.userMs) * 1000) / own.filesCopied,
      );
    case 'wall':
      return median(byId.get(target.caseId)!.rounds.map((round) => round.ms)) / 1000;
  }
}

function scopeOf(target: Target): string {
  return `the ${target.profile} profile${target.scale === null ? '' : ` at scale ${target.scale}`}`;
}

/**
 * Each target against the figures of this run. A target is `not measured` (with the reason) when the run is
 * of another profile, of another scale than the one it is set for, or lacks one of its cases; a rss target
 * needs at least one of its cases, the others need all.
 */
export function evaluateTargets(cases: readonly CaseResult[], run: RunScope): TargetResult[] {
  const byId = new Map(cases.map((c) => [c.id, c]));
  return TARGETS.map((target) => {
    const needed = casesOf(target);
    const result: TargetResult = {
      id: target.id,
      ...(target.issue === undefined ? {} : { issue: target.issue }),
      description: target.description,
      profile: target.profile,
      scale: target.scale,
      cases: needed,
      limit: target.limit,
      unit: UNITS[target.kind],
      measured: null,
      status: 'not measured',
    };
    if (run.profile !== target.profile) {
      return { ...result, reason: `set for ${scopeOf(target)}; this run is of the ${run.profile} profile` };
    }
    const missing = needed.filter((id) => !byId.has(id));
    if (target.kind === 'rss' ? missing.length === needed.length : missing.length > 0) {
      return { ...result, reason: `needs the case${missing.length > 1 ? 's' : ''} ${missing.join(', ')}` };
    }
    const figure = figureOf(target, byId);
    if (figure === null) return { ...result, reason: 'its cases reported no figure for it' };
    if (target.scale !== null && run.scale !== target.scale) {
      return {
        ...result,
        reason: `set for ${scopeOf(target)}; this run is at scale ${run.scale}`,
        atThisScale: figure,
      };
    }
    return { ...result, measured: figure, status: figure <= target.limit ? 'met' : 'missed' };
  });
}
