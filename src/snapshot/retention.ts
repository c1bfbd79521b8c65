// Which snapshots a retention policy keeps, with restic's `forget` semantics: keep-last, calendar buckets
// (hourly … yearly, by UTC, ISO weeks) counted newest first, and keep-within relative to the newest snapshot
// that is not in the future. Pure: the clock is an argument, and nothing here touches a repository.

/** How many snapshots a rule keeps: a count (0 turns the rule off) or every one it matches. */
export type KeepCount = number | 'unlimited';

/** restic's calendar duration (`1y2m3d4h`): applied as calendar arithmetic, not as a fixed span. */
export interface RetentionDuration {
  years: number;
  months: number;
  days: number;
  hours: number;
}

export interface RetentionPolicy {
  /** Keep the newest N snapshots. */
  last?: KeepCount;
  /** Keep the newest snapshot of each of the last N hours (UTC) that have one; likewise below. */
  hourly?: KeepCount;
  daily?: KeepCount;
  /** Weeks are ISO weeks (Monday to Sunday, UTC); a week's year is its ISO week-numbering year. */
  weekly?: KeepCount;
  monthly?: KeepCount;
  yearly?: KeepCount;
  /** Keep every snapshot made after the newest one's time minus this duration. */
  within?: RetentionDuration;
}

export type RetentionRule = 'within' | 'last' | 'hourly' | 'daily' | 'weekly' | 'monthly' | 'yearly';

const COUNTED_RULES = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
type CountedRule = (typeof COUNTED_RULES)[number];

export interface DatedSnapshot {
  id: string;
  /** When the snapshot started, milliseconds since the epoch. */
  timeMs: number;
}

export interface KeepReason {
  rule: RetentionRule;
  /**
   * The bucket the snapshot stands for: `#3` (third newest) for `last`, `2026-11-30T02` hourly, `2026-11-30`
   * daily, `2026-W48` weekly, `2026-11` monthly, `2026` yearly; the duration (`7d`) for `within`.
   */
  bucket: string;
  /**
   * Kept as the oldest snapshot while the rule still had counts left although a newer one already stands for
   * its bucket (restic keeps it so the history reaches as far back as the counts allow).
   */
  oldest: boolean;
}

export interface RetentionDecision extends DatedSnapshot {
  keep: boolean;
  /** Every rule that kept the snapshot, in the order restic reports them; empty when it goes. */
  reasons: KeepReason[];
}

export type DurationParse = { ok: true; duration: RetentionDuration } | { ok: false; problem: string };

const UNITS: Record<string, keyof RetentionDuration> = { y: 'years', m: 'months', d: 'days', h: 'hours' };

/**
 * Parses restic's duration syntax: numbers each followed by a unit, y(ears), m(onths), d(ays), h(ours), e.g.
 * `1y2m3d4h`, `14d`, `36h`. Stricter than restic: each unit at most once, no negative numbers, not empty.
 */
export function parseRetentionDuration(text: string): DurationParse {
  const duration: RetentionDuration = { years: 0, months: 0, days: 0, hours: 0 };
  const seen = new Set<string>();
  const trimmed = text.trim();
  if (trimmed === '') return { ok: false, problem: 'is empty' };
  const part = /(\d+)([a-zA-Z]?)/y;
  let position = 0;
  while (position < trimmed.length) {
    part.lastIndex = position;
    const match = part.exec(trimmed);
    if (!match)
      return { ok: false, problem: `expected a number at ${JSON.stringify(trimmed.slice(position))}` };
    const [whole, digits, unitLetter] = match as unknown as [string, string, string];
    const unit = UNITS[unitLetter];
    if (unitLetter === '') return { ok: false, problem: `no unit after ${digits} (use y, m, d or h)` };
    if (unit === undefined)
      return { ok: false, problem: `unknown unit ${JSON.stringify(unitLetter)} (use y, m, d or h)` };
    if (seen.has(unitLetter)) return { ok: false, problem: `unit ${unitLetter} appears twice` };
    const value = Number(digits);
    if (!Number.isSafeInteger(value)) return { ok: false, problem: `${digits} is too large` };
    seen.add(unitLetter);
    duration[unit] = value;
    position += whole.length;
  }
  return { ok: true, duration };
}

export function formatRetentionDuration(duration: RetentionDuration): string {
  const parts = [
    [duration.years, 'y'],
    [duration.months, 'm'],
    [duration.days, 'd'],
    [duration.hours, 'h'],
  ] as const;
  const text = parts
    .filter(([value]) => value !== 0)
    .map(([value, unit]) => `${value}${unit}`)
    .join('');
  return text === '' ? '0h' : text;
}

function isZero(duration: RetentionDuration): boolean {
  return duration.years === 0 && duration.months === 0 && duration.days === 0 && duration.hours === 0;
}

function isActive(count: KeepCount | undefined): boolean {
  return count === 'unlimited' || (count !== undefined && count > 0);
}

export interface PolicyProblem {
  /** The rule at fault; null when the policy as a whole is (no rule at all). */
  rule: RetentionRule | null;
  problem: 'no-rule' | 'bad-count' | 'bad-duration';
  message: string;
}

/**
 * What is wrong with a policy, or null. A policy that keeps nothing by any rule is refused rather than read as
 * "remove everything" (restic keeps everything for an empty policy; neither is what a user who forgot a flag
 * meant).
 */
export function policyProblem(policy: RetentionPolicy): PolicyProblem | null {
  for (const rule of COUNTED_RULES) {
    const count = policy[rule];
    if (count === undefined || count === 'unlimited') continue;
    if (!Number.isSafeInteger(count) || count < 0) {
      return {
        rule,
        problem: 'bad-count',
        message: `keep-${rule} must be an integer >= 0 or "unlimited", got ${JSON.stringify(count)}`,
      };
    }
  }
  const within = policy.within;
  if (within !== undefined) {
    const fields = [within.years, within.months, within.days, within.hours];
    if (!fields.every((value) => Number.isSafeInteger(value) && value >= 0)) {
      return {
        rule: 'within',
        problem: 'bad-duration',
        message: 'keep-within needs whole, non-negative years, months, days and hours',
      };
    }
  }
  const anyRule =
    COUNTED_RULES.some((rule) => isActive(policy[rule])) || (within !== undefined && !isZero(within));
  if (!anyRule) {
    return {
      rule: null,
      problem: 'no-rule',
      message:
        'the policy keeps nothing: give at least one of keep-last, keep-hourly, keep-daily, keep-weekly, keep-monthly, keep-yearly (> 0) or keep-within',
    };
  }
  return null;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** A UTC date from its parts, normalising overflow (month 13, day 0 …) the way Go's time.Date does. */
function utcDate(date: Date, year: number, month: number, day: number): number {
  const result = new Date(date.getTime());
  // setUTCFullYear, unlike Date.UTC, does not read years 0–99 as 1900–1999.
  result.setUTCFullYear(year, month, day);
  return result.getTime();
}

/** restic's `PastTime`: Go's AddDate(-y, -m, -d), then minus the hours. */
function pastTime(fromMs: number, duration: RetentionDuration): number {
  const from = new Date(fromMs);
  const shifted = utcDate(
    from,
    from.getUTCFullYear() - duration.years,
    from.getUTCMonth() - duration.months,
    from.getUTCDate() - duration.days,
  );
  return shifted - duration.hours * HOUR_MS;
}

function pad(value: number, width = 2): string {
  return String(value).padStart(width, '0');
}

/** ISO 8601 week-numbering year and week of a UTC time (Go's Time.ISOWeek). */
function isoWeek(timeMs: number): { year: number; week: number } {
  const date = new Date(timeMs);
  const weekday = (date.getUTCDay() + 6) % 7; // Monday = 0
  const thursday = utcDate(date, date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate() - weekday + 3);
  const year = new Date(thursday).getUTCFullYear();
  const januaryFirst = utcDate(new Date(thursday), year, 0, 1);
  return { year, week: 1 + Math.floor((thursday - januaryFirst) / (7 * DAY_MS)) };
}

function bucketOf(rule: CountedRule, timeMs: number, position: number): string {
  const date = new Date(timeMs);
  const year = pad(date.getUTCFullYear(), 4);
  const month = `${year}-${pad(date.getUTCMonth() + 1)}`;
  const day = `${month}-${pad(date.getUTCDate())}`;
  switch (rule) {
    case 'last':
      return `#${position + 1}`;
    case 'hourly':
      return `${day}T${pad(date.getUTCHours())}`;
    case 'daily':
      return day;
    case 'weekly': {
      const { year: weekYear, week } = isoWeek(timeMs);
      return `${pad(weekYear, 4)}-W${pad(week)}`;
    }
    case 'monthly':
      return month;
    case 'yearly':
      return year;
  }
}

/**
 * restic's "latest" for keep-within: the newest snapshot time that is before `nowMs`. Snapshots dated in the
 * future (a wrong clock) do not move the window; with none in the past, the window starts at the year 1, as
 * restic's zero time does, and keeps everything.
 */
function newestNotInFuture(snapshots: readonly DatedSnapshot[], nowMs: number): number {
  let latest = utcDate(new Date(0), 1, 0, 1);
  for (const snapshot of snapshots) {
    if (snapshot.timeMs > latest && snapshot.timeMs < nowMs) latest = snapshot.timeMs;
  }
  return latest;
}

/**
 * Decides keep or remove for every snapshot, newest first (ties by id, newest first). The policy must pass
 * `policyProblem`. A valid policy always keeps the newest snapshot: every active rule keeps the first
 * snapshot it sees, and keep-within keeps everything at or after the newest time that is not in the future.
 */
export function applyRetention(
  snapshots: readonly DatedSnapshot[],
  policy: RetentionPolicy,
  clock: { nowMs: number },
): RetentionDecision[] {
  const problem = policyProblem(policy);
  if (problem !== null) throw new Error(`Assertion failed: invalid retention policy: ${problem.message}`);
  const ordered = [...snapshots].sort(
    (a, b) => b.timeMs - a.timeMs || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0),
  );
  const buckets = COUNTED_RULES.filter((rule) => isActive(policy[rule])).map((rule) => ({
    rule,
    remaining: policy[rule] as KeepCount,
    last: null as string | null,
  }));
  const within = policy.within !== undefined && !isZero(policy.within) ? policy.within : undefined;
  const withinStart = within && pastTime(newestNotInFuture(ordered, clock.nowMs), within);
  return ordered.map((snapshot, position) => {
    const reasons: KeepReason[] = [];
    if (within !== undefined && snapshot.timeMs > withinStart!) {
      reasons.push({ rule: 'within', bucket: formatRetentionDuration(within), oldest: false });
    }
    const isOldest = position === ordered.length - 1;
    for (const bucket of buckets) {
      if (bucket.remaining === 0) continue;
      const value = bucketOf(bucket.rule, snapshot.timeMs, position);
      if (value === bucket.last && !isOldest) continue;
      reasons.push({ rule: bucket.rule, bucket: value, oldest: value === bucket.last });
      bucket.last = value;
      if (bucket.remaining !== 'unlimited') bucket.remaining--;
    }
    return { ...snapshot, keep: reasons.length > 0, reasons };
  });
}

export interface PruneDecision {
  id: string;
  /** When the snapshot started (its id's second), UTC. */
  time: string;
  keep: boolean;
  /** Every rule that kept it, with its bucket; empty when it goes. */
  reasons: KeepReason[];
}

/** The policy's decision for each snapshot, newest first: shared by the local and the S3 prune. */
export function decideRetention(
  snapshots: readonly DatedSnapshot[],
  policy: RetentionPolicy,
  nowMs: number,
): PruneDecision[] {
  const dated = snapshots.map(({ id, timeMs }) => ({ id, timeMs }));
  return applyRetention(dated, policy, { nowMs }).map(({ id, timeMs, keep, reasons }) => ({
    id,
    time: new Date(timeMs).toISOString().replace('.000Z', 'Z'),
    keep,
    reasons,
  }));
}
