// The performance goals the README's Performance section states, evaluated against each run's figures
// (reported, never asserted: a goal that is missed is information, not a failure).

import type { CaseId } from '../src/cli/bench-cases.js';
import type { StoreProfile } from '../src/demo/generator.js';
import type { CaseResult, TargetResult } from './result.js';
import { median } from './runner.js';

interface RatioTarget {
  id: string;
  description: string;
  profile: StoreProfile;
  caseId: CaseId;
  /** Any case of the run: the ratio is taken per round, then the median over rounds. */
  reference: CaseId;
  limit: number;
}

interface RssTarget {
  id: string;
  description: string;
  profile: StoreProfile;
  /** The highest peak RSS of these cases, over every round. */
  caseIds: readonly CaseId[];
  limitMb: number;
}

const RATIO_TARGETS: readonly RatioTarget[] = [
  {
    id: 'durable-vs-cp-sync',
    description: 'statesnap backup ≤ 0.4× (cp -a + sync)',
    profile: 'oxios',
    caseId: 'statesnap',
    reference: 'cp-a-sync',
    limit: 0.4,
  },
  {
    // Where start-up and the final flush weigh most.
    id: 'durable-vs-cp-sync-small',
    description: 'statesnap backup ≤ 0.6× (cp -a + sync)',
    profile: 'oxios-small',
    caseId: 'statesnap',
    reference: 'cp-a-sync',
    limit: 0.6,
  },
  {
    id: 'durable-vs-fs-cp',
    description: 'statesnap backup ≤ 0.15× fs.promises.cp',
    profile: 'oxios',
    caseId: 'statesnap',
    reference: 'fs-cp',
    limit: 0.15,
  },
  {
    id: 'no-sync-vs-cp',
    description: 'statesnap --no-sync ≤ 0.5× cp -a',
    profile: 'oxios',
    caseId: 'statesnap-no-sync',
    reference: 'cp-a',
    limit: 0.5,
  },
  {
    id: 'walk-vs-du',
    description: 'planner walk ≤ 2× du -sb',
    profile: 'oxios',
    caseId: 'planner-walk',
    reference: 'du-sb',
    limit: 2,
  },
  {
    id: 'restore-vs-cp-sync',
    description: 'statesnap restore ≤ 0.5× (cp -a + sync)',
    profile: 'oxios',
    caseId: 'statesnap-restore',
    reference: 'cp-a-sync',
    limit: 0.5,
  },
];

const RSS_TARGET: RssTarget = {
  id: 'peak-rss',
  description: 'statesnap peak RSS ≤ 300 MB',
  profile: 'tiny-files',
  caseIds: [
    'statesnap',
    'statesnap-no-sync',
    'statesnap-restore',
    'statesnap-threads-1',
    'statesnap-threads-2',
    'statesnap-threads-4',
    'statesnap-threads-8',
  ],
  limitMb: 300,
};

function status(measured: number | null, limit: number): TargetResult['status'] {
  if (measured === null) return 'not measured';
  return measured <= limit ? 'met' : 'missed';
}

function pairedRatio(subject: CaseResult | undefined, reference: CaseResult | undefined): number | null {
  if (subject === undefined || reference === undefined) return null;
  return median(subject.rounds.map((round, index) => round.ms / reference.rounds[index]!.ms));
}

/** Each target against the figures of this run; a target whose cases did not run is `not measured`. */
export function evaluateTargets(cases: readonly CaseResult[]): TargetResult[] {
  const byId = new Map(cases.map((c) => [c.id, c]));
  const results: TargetResult[] = RATIO_TARGETS.map((target) => {
    const measured = pairedRatio(byId.get(target.caseId), byId.get(target.reference));
    return {
      id: target.id,
      description: target.description,
      profile: target.profile,
      limit: target.limit,
      unit: 'ratio',
      measured,
      status: status(measured, target.limit),
    };
  });
  const peaks = RSS_TARGET.caseIds.flatMap((id) => {
    const peak = byId.get(id)?.peakRssMb?.max;
    return peak === undefined ? [] : [peak];
  });
  const measured = peaks.length > 0 ? Math.max(...peaks) : null;
  results.push({
    id: RSS_TARGET.id,
    description: RSS_TARGET.description,
    profile: RSS_TARGET.profile,
    limit: RSS_TARGET.limitMb,
    unit: 'MB',
    measured,
    status: status(measured, RSS_TARGET.limitMb),
  });
  return results;
}
