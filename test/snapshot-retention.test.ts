// Retention (restic's forget semantics) on chosen timestamps with the clock injected: keep-last, calendar
// buckets by UTC counted newest first (days with no snapshot do not count), ISO weeks across year ends,
// restic's "oldest" keep, keep-within by calendar arithmetic from the newest snapshot, policy refusals.

import { afterEach, describe, expect, it } from 'vitest';
import {
  applyRetention,
  type DatedSnapshot,
  formatRetentionDuration,
  parseRetentionDuration,
  policyProblem,
  type RetentionDecision,
  type RetentionDuration,
  type RetentionPolicy,
} from '../dist/src/snapshot/retention.js';

const snap = (iso: string): DatedSnapshot => ({ id: iso, timeMs: Date.parse(iso) });
const NOW = { nowMs: Date.parse('2027-06-01T00:00:00Z') };

function duration(text: string): RetentionDuration {
  const parsed = parseRetentionDuration(text);
  if (!parsed.ok) throw new Error(`bad duration in test: ${parsed.problem}`);
  return parsed.duration;
}

function kept(decisions: RetentionDecision[]): string[] {
  return decisions.filter((decision) => decision.keep).map((decision) => decision.id);
}

function why(decisions: RetentionDecision[], id: string): string[] {
  const decision = decisions.find((candidate) => candidate.id === id)!;
  return decision.reasons.map((reason) => `${reason.oldest ? 'oldest ' : ''}${reason.rule} ${reason.bucket}`);
}

describe('applyRetention', () => {
  it('keep-last keeps the newest N, whatever order they are given in', () => {
    const snapshots = [
      '2026-11-26T01:00:00Z',
      '2026-11-30T08:00:00Z',
      '2026-11-27T12:00:00Z',
      '2026-11-29T23:59:00Z',
    ].map(snap);
    const decisions = applyRetention(snapshots, { last: 2 }, NOW);
    expect(decisions.map((decision) => decision.id)).toEqual([
      '2026-11-30T08:00:00Z',
      '2026-11-29T23:59:00Z',
      '2026-11-27T12:00:00Z',
      '2026-11-26T01:00:00Z',
    ]);
    expect(kept(decisions)).toEqual(['2026-11-30T08:00:00Z', '2026-11-29T23:59:00Z']);
    expect(why(decisions, '2026-11-29T23:59:00Z')).toEqual(['last #2']);
    expect(decisions[2]!.reasons).toEqual([]);
  });

  const DAYS = [
    '2026-11-30T23:30:00Z',
    '2026-11-30T08:00:00Z',
    '2026-11-29T23:59:00Z',
    '2026-11-27T12:00:00Z',
    '2026-11-26T01:00:00Z',
  ];

  it('keep-daily keeps the newest snapshot of each of the N newest days that have one, by UTC', () => {
    const decisions = applyRetention(DAYS.map(snap), { daily: 3 }, NOW);
    // The 28th has no snapshot and does not use up a count.
    expect(kept(decisions)).toEqual(['2026-11-30T23:30:00Z', '2026-11-29T23:59:00Z', '2026-11-27T12:00:00Z']);
    expect(why(decisions, '2026-11-27T12:00:00Z')).toEqual(['daily 2026-11-27']);
  });

  describe('in a process time zone far from UTC', () => {
    const saved = process.env.TZ;
    afterEach(() => {
      if (saved === undefined) delete process.env.TZ;
      else process.env.TZ = saved;
    });

    it('still buckets by UTC (23:30Z stays on its UTC day)', () => {
      process.env.TZ = 'Pacific/Kiritimati'; // UTC+14: 23:30Z on the 30th is the 1st there
      expect(new Date(Date.parse('2026-11-30T23:30:00Z')).getDate()).toBe(1);
      expect(kept(applyRetention(DAYS.map(snap), { daily: 3 }, NOW))).toEqual([
        '2026-11-30T23:30:00Z',
        '2026-11-29T23:59:00Z',
        '2026-11-27T12:00:00Z',
      ]);
    });
  });

  it('keeps the oldest snapshot too while a rule has counts left (restic’s "oldest" keep)', () => {
    const oneDay = ['2026-11-30T20:00:00Z', '2026-11-30T12:00:00Z', '2026-11-30T04:00:00Z'].map(snap);
    const decisions = applyRetention(oneDay, { daily: 5 }, NOW);
    expect(kept(decisions)).toEqual(['2026-11-30T20:00:00Z', '2026-11-30T04:00:00Z']);
    expect(why(decisions, '2026-11-30T04:00:00Z')).toEqual(['oldest daily 2026-11-30']);
    // With the counts used up before it, the oldest goes like any other.
    expect(kept(applyRetention(oneDay, { daily: 1 }, NOW))).toEqual(['2026-11-30T20:00:00Z']);
  });

  it('keep-weekly counts ISO weeks, whose year is not always the calendar year', () => {
    const snapshots = [
      '2027-01-02T10:00:00Z', // Saturday of 2026-W53 (2026 has 53 ISO weeks)
      '2026-12-28T10:00:00Z', // Monday of the same week
      '2026-12-27T10:00:00Z', // Sunday: 2026-W52
      '2025-12-29T10:00:00Z', // Monday: already 2026-W01
      '2025-12-28T10:00:00Z', // Sunday: 2025-W52
    ].map(snap);
    const decisions = applyRetention(snapshots, { weekly: 3 }, NOW);
    expect(kept(decisions)).toEqual(['2027-01-02T10:00:00Z', '2026-12-27T10:00:00Z', '2025-12-29T10:00:00Z']);
    expect(decisions.filter((d) => d.keep).map((d) => d.reasons[0]!.bucket)).toEqual([
      '2026-W53',
      '2026-W52',
      '2026-W01',
    ]);
  });

  it('applies every rule and reports each rule that kept a snapshot', () => {
    const snapshots = [
      '2026-11-30T10:00:00Z',
      '2026-11-01T10:00:00Z',
      '2026-10-15T10:00:00Z',
      '2025-12-31T10:00:00Z',
      '2025-06-01T10:00:00Z',
      '2024-01-01T10:00:00Z',
    ].map(snap);
    const decisions = applyRetention(snapshots, { monthly: 2, yearly: 2 }, NOW);
    expect(kept(decisions)).toEqual(['2026-11-30T10:00:00Z', '2026-10-15T10:00:00Z', '2025-12-31T10:00:00Z']);
    expect(why(decisions, '2026-11-30T10:00:00Z')).toEqual(['monthly 2026-11', 'yearly 2026']);
    expect(why(decisions, '2025-12-31T10:00:00Z')).toEqual(['yearly 2025']);
  });

  it('keep-hourly buckets by UTC hour', () => {
    const snapshots = [
      '2026-11-30T10:59:00Z',
      '2026-11-30T10:01:00Z',
      '2026-11-30T09:30:00Z',
      '2026-11-30T07:00:00Z',
    ].map(snap);
    const decisions = applyRetention(snapshots, { hourly: 2 }, NOW);
    expect(kept(decisions)).toEqual(['2026-11-30T10:59:00Z', '2026-11-30T09:30:00Z']);
    expect(why(decisions, '2026-11-30T09:30:00Z')).toEqual(['hourly 2026-11-30T09']);
  });

  it('"unlimited" keeps one snapshot per bucket for ever', () => {
    const snapshots = DAYS.map(snap);
    expect(kept(applyRetention(snapshots, { daily: 'unlimited' }, NOW))).toEqual([
      '2026-11-30T23:30:00Z',
      '2026-11-29T23:59:00Z',
      '2026-11-27T12:00:00Z',
      '2026-11-26T01:00:00Z',
    ]);
  });

  it('keep-within counts back from the newest snapshot, not from now, by calendar arithmetic', () => {
    const snapshots = [
      '2026-03-31T12:00:00Z',
      '2026-03-04T12:00:00Z',
      '2026-03-03T12:00:00Z',
      '2026-03-02T12:00:00Z',
    ].map(snap);
    // One month before March 31 is "February 31", which Go (and restic) normalise to March 3; the window is
    // open at its start: a snapshot exactly at March 3, 12:00 is outside.
    const decisions = applyRetention(snapshots, { within: duration('1m') }, NOW);
    expect(kept(decisions)).toEqual(['2026-03-31T12:00:00Z', '2026-03-04T12:00:00Z']);
    expect(why(decisions, '2026-03-04T12:00:00Z')).toEqual(['within 1m']);
    const hours = applyRetention(snapshots, { within: duration('27d12h') }, NOW);
    expect(kept(hours)).toEqual(['2026-03-31T12:00:00Z', '2026-03-04T12:00:00Z']);
  });

  it('keep-within ignores snapshots dated after now when it finds the newest (a wrong clock), but keeps them', () => {
    const snapshots = [
      '2030-01-01T00:00:00Z',
      '2026-11-30T00:00:00Z',
      '2026-11-28T00:00:00Z',
      '2026-11-20T00:00:00Z',
    ].map(snap);
    const decisions = applyRetention(snapshots, { within: duration('7d') }, NOW);
    expect(kept(decisions)).toEqual(['2030-01-01T00:00:00Z', '2026-11-30T00:00:00Z', '2026-11-28T00:00:00Z']);
    // With every snapshot in the future there is no newest to count from, and restic keeps them all.
    const early = { nowMs: Date.parse('2020-01-01T00:00:00Z') };
    expect(kept(applyRetention(snapshots, { within: duration('7d') }, early))).toHaveLength(4);
  });

  it('always keeps the newest snapshot, for any valid policy', () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    const rules = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
    for (let round = 0; round < 300; round++) {
      const count = 1 + Math.floor(random() * 30);
      const base = Date.parse('2020-01-01T00:00:00Z');
      const snapshots = Array.from({ length: count }, (_, i) => ({
        id: `s${i}`,
        timeMs: base + Math.floor(random() * 3 * 365 * 86_400_000),
      }));
      const policy: RetentionPolicy = {};
      for (const rule of rules) if (random() < 0.3) policy[rule] = Math.floor(random() * 4);
      if (random() < 0.3) policy.within = { years: 0, months: 0, days: Math.floor(random() * 40), hours: 0 };
      if (policyProblem(policy) !== null) continue;
      const decisions = applyRetention(snapshots, policy, NOW);
      expect(decisions[0]!.keep).toBe(true);
      for (const decision of decisions) expect(decision.keep).toBe(decision.reasons.length > 0);
    }
  });

  it('asserts on a policy that policyProblem refuses', () => {
    expect(() => applyRetention([snap('2026-11-30T00:00:00Z')], {}, NOW)).toThrow(/Assertion failed/);
  });
});

describe('policyProblem', () => {
  it('refuses a policy with no rule, or only zero counts and durations', () => {
    expect(policyProblem({})).toMatchObject({ rule: null, problem: 'no-rule' });
    expect(policyProblem({ last: 0, daily: 0, within: duration('0d') })).toMatchObject({
      problem: 'no-rule',
    });
  });

  it('refuses counts that are not whole and non-negative, and bad durations', () => {
    expect(policyProblem({ daily: -1 })).toMatchObject({ rule: 'daily', problem: 'bad-count' });
    expect(policyProblem({ weekly: 1.5 })).toMatchObject({ rule: 'weekly', problem: 'bad-count' });
    expect(policyProblem({ within: { years: 0, months: -1, days: 0, hours: 0 } })).toMatchObject({
      rule: 'within',
      problem: 'bad-duration',
    });
  });

  it('accepts any one active rule', () => {
    expect(policyProblem({ last: 1 })).toBeNull();
    expect(policyProblem({ yearly: 'unlimited' })).toBeNull();
    expect(policyProblem({ within: duration('1h') })).toBeNull();
  });
});

describe('parseRetentionDuration', () => {
  it('reads restic’s y/m/d/h syntax', () => {
    expect(parseRetentionDuration('1y2m3d4h')).toEqual({
      ok: true,
      duration: { years: 1, months: 2, days: 3, hours: 4 },
    });
    expect(parseRetentionDuration(' 36h ')).toEqual({
      ok: true,
      duration: { years: 0, months: 0, days: 0, hours: 36 },
    });
    expect(formatRetentionDuration(duration('2d1y'))).toBe('1y2d');
  });

  it('refuses what restic would misread or reject', () => {
    for (const text of ['', '5', 'd', '1x', '1d1d', '-1d', '1.5d', '1D', '1 d']) {
      expect(parseRetentionDuration(text).ok, JSON.stringify(text)).toBe(false);
    }
  });
});
