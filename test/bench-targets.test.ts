// The benchmark's targets over made-up figures: which run measures which target (profile and scale), paired
// per-round medians, the CPU-per-file and start-up figures, peak RSS over the right cases, and how the report
// prints each target.

import { describe, expect, it } from 'vitest';
import { formatConsoleTable, formatMarkdown } from '../dist/bench/report.js';
import type { BenchResult, CaseResult, RoundFigures, TargetResult } from '../dist/bench/result.js';
import { evaluateTargets, TARGETS } from '../dist/bench/targets.js';
import { CASE_IDS } from '../dist/src/cli/bench-cases.js';
import { STORE_PROFILES } from '../dist/src/demo/generator.js';

interface MadeUpRound {
  ms: number;
  userMs?: number;
  rssKb?: number;
  filesCopied?: number;
}

function spreadOf(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  return { median: sorted[sorted.length >> 1]!, min: sorted[0]!, max: sorted[sorted.length - 1]! };
}

/** A case result with these rounds (wall ms, or the figures a statesnap child process reports). */
function caseResult(id: string, rounds: Array<number | MadeUpRound>): CaseResult {
  const figures: RoundFigures[] = rounds.map((round, index) => {
    const made = typeof round === 'number' ? { ms: round } : round;
    return { round: index + 1, position: 0, filesPerSec: 1, mbPerSec: 1, setupMs: 0, cleanupMs: 0, ...made };
  });
  const rss = figures.flatMap((r) => (r.rssKb === undefined ? [] : [(r.rssKb * 1024) / 1e6]));
  const user = figures.flatMap((r) => (r.userMs === undefined ? [] : [r.userMs]));
  return {
    id,
    label: id,
    kind: id === 'statesnap-one-file' ? 'start-up' : 'copy',
    subject: id.includes('statesnap') || id.startsWith('s3-'),
    wallMs: spreadOf(figures.map((r) => r.ms)),
    filesPerSec: spreadOf([1]),
    mbPerSec: spreadOf([1]),
    peakRssMb: rss.length > 0 ? spreadOf(rss) : null,
    operationMs: null,
    userMs: user.length > 0 ? spreadOf(user) : null,
    systemMs: null,
    ratios: {},
    rounds: figures,
  };
}

function target(results: TargetResult[], id: string): TargetResult {
  const found = results.find((r) => r.id === id);
  if (found === undefined) throw new Error(`no target ${id}`);
  return found;
}

const MB = 1e6 / 1024; // KiB per 10^6 bytes

describe('bench targets', () => {
  it('lists every target of the three issues once, each over cases the suite has, for a profile it has', () => {
    const ids = TARGETS.map((t) => t.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(
      TARGETS.filter((t) => t.issue !== undefined)
        .map((t) => `${t.issue} ${t.id}`)
        .sort(),
    ).toEqual(
      [
        '10 no-change-vs-rsync-link-dest',
        '10 no-change-vs-cp-al',
        '10 one-pct-vs-no-change',
        '10 no-change-vs-restic',
        '10 no-change-peak-rss',
        '11 durable-vs-cp-sync',
        // The floor the issue asks to measure, and statesnap against it.
        '11 floor-vs-cp-sync',
        '11 floor-vs-cp-sync-small',
        '11 durable-vs-floor',
        '11 restore-vs-floor',
        '11 durable-vs-cp-sync-small',
        '11 durable-vs-fs-cp',
        '11 restore-vs-cp-sync',
        '11 walk-vs-du',
        '11 user-cpu-per-file',
        '11 start-up',
        '11 peak-rss',
        '12 s3-vs-durable-backup',
        '12 s3-vs-restic-s3',
        '12 s3-no-change-vs-local',
        '12 s3-restore-vs-local',
        '12 s3-peak-rss',
      ].sort(),
    );
    const everyCase = evaluateTargets([], { profile: 'oxios', scale: 1 }).flatMap((t) => t.cases ?? []);
    for (const id of everyCase) expect(CASE_IDS).toContain(id);
    for (const t of TARGETS) expect(STORE_PROFILES).toContain(t.profile);
  });

  it('takes a ratio per round, then the median over rounds (not the ratio of the medians)', () => {
    const results = evaluateTargets(
      [caseResult('statesnap-link-dest', [1, 9, 5]), caseResult('cp-al', [10, 10, 4])],
      { profile: 'oxios', scale: 1 },
    );
    // Per round 0.1, 0.9, 1.25: median 0.9 (the medians' ratio would be 5 / 10 = 0.5).
    expect(target(results, 'no-change-vs-cp-al')).toMatchObject({
      measured: 0.9,
      status: 'met',
      limit: 1,
      unit: 'ratio',
      issue: 10,
      cases: ['statesnap-link-dest', 'cp-al'],
    });
    const missed = evaluateTargets(
      [caseResult('statesnap-link-dest', [3, 3, 3]), caseResult('rsync-link-dest', [10, 10, 10])],
      { profile: 'oxios', scale: 1 },
    );
    expect(target(missed, 'no-change-vs-rsync-link-dest')).toMatchObject({ measured: 0.3, status: 'missed' });
  });

  it("measures a target only in a run of its profile: never with another store's figures", () => {
    const cases = [
      caseResult('statesnap', [{ ms: 50, rssKb: 500 * MB }]),
      caseResult('cp-a-sync', [100]),
      caseResult('statesnap-link-dest', [{ ms: 10, rssKb: 900 * MB }]),
    ];
    const small = evaluateTargets(cases, { profile: 'oxios-small', scale: 1 });
    expect(target(small, 'durable-vs-cp-sync-small')).toMatchObject({ measured: 0.5, status: 'met' });
    for (const id of ['durable-vs-cp-sync', 'peak-rss', 'no-change-peak-rss']) {
      const notMeasured = target(small, id);
      expect(notMeasured).toMatchObject({ measured: null, status: 'not measured' });
      expect(notMeasured.reason).toMatch(/this run is of the oxios-small profile/);
      expect(notMeasured.atThisScale).toBeUndefined();
    }
    const tiny = evaluateTargets(cases, { profile: 'tiny-files', scale: 1 });
    expect(target(tiny, 'durable-vs-cp-sync')).toMatchObject({ measured: null, status: 'not measured' });
    expect(target(tiny, 'peak-rss')).toMatchObject({ measured: 500, status: 'missed', unit: 'MB' });
  });

  it('measures a full-store target only at scale 1, giving the small run its figure apart', () => {
    const cases = [
      caseResult('statesnap', [40, 40]),
      caseResult('cp-a-sync', [100, 100]),
      caseResult('statesnap-one-file', [{ ms: 100 }, { ms: 300 }]),
    ];
    const small = evaluateTargets(cases, { profile: 'oxios', scale: 0.05 });
    expect(target(small, 'durable-vs-cp-sync')).toMatchObject({
      measured: null,
      status: 'not measured',
      atThisScale: 0.4,
      reason: 'set for the oxios profile at scale 1; this run is at scale 0.05',
    });
    // Start-up does not depend on the store's size: measured at any scale of its profile.
    expect(target(small, 'start-up')).toMatchObject({ measured: 0.2, status: 'missed', unit: 's' });
    const full = evaluateTargets(cases, { profile: 'oxios', scale: 1 });
    expect(target(full, 'durable-vs-cp-sync')).toMatchObject({ measured: 0.4, status: 'met' });
  });

  it('says which case is missing when a target cannot be measured', () => {
    const results = evaluateTargets([caseResult('s3-snapshot', [10])], { profile: 'oxios', scale: 1 });
    expect(target(results, 's3-vs-restic-s3')).toMatchObject({
      status: 'not measured',
      reason: 'needs the case restic-s3',
    });
    expect(target(results, 'one-pct-vs-no-change').reason).toBe(
      'needs the cases statesnap-link-dest-1pct, statesnap-link-dest',
    );
  });

  it('takes user CPU per copied file as (backup − one-file backup) ÷ files copied, paired per round', () => {
    const results = evaluateTargets(
      [
        caseResult('statesnap', [
          { ms: 1, userMs: 1_200, filesCopied: 100_000 },
          { ms: 1, userMs: 2_200, filesCopied: 100_000 },
          { ms: 1, userMs: 1_300, filesCopied: 100_000 },
        ]),
        caseResult('statesnap-one-file', [
          { ms: 1, userMs: 200 },
          { ms: 1, userMs: 1_000 },
          { ms: 1, userMs: 100 },
        ]),
      ],
      { profile: 'tiny-files', scale: 0.1 },
    );
    // Per round 10, 12 and 12 µs; measured at any scale of its profile.
    expect(target(results, 'user-cpu-per-file')).toMatchObject({
      measured: 12,
      status: 'missed',
      unit: 'µs',
    });
    const withoutCounts = evaluateTargets(
      [
        caseResult('statesnap', [{ ms: 1, userMs: 1_000 }]),
        caseResult('statesnap-one-file', [{ ms: 1, userMs: 1 }]),
      ],
      { profile: 'tiny-files', scale: 1 },
    );
    expect(target(withoutCounts, 'user-cpu-per-file')).toMatchObject({
      status: 'not measured',
      reason: 'its cases reported no figure for it',
    });
  });

  it("takes each RSS target's highest peak over its own cases only", () => {
    const results = evaluateTargets(
      [
        caseResult('statesnap', [{ ms: 1, rssKb: 180 * MB }]),
        caseResult('statesnap-restore', [{ ms: 1, rssKb: 250 * MB }]),
        caseResult('statesnap-link-dest', [{ ms: 1, rssKb: 120 * MB }]),
        caseResult('s3-snapshot', [
          { ms: 1, rssKb: 390 * MB },
          { ms: 1, rssKb: 410 * MB },
        ]),
      ],
      { profile: 'tiny-files', scale: 1 },
    );
    expect(target(results, 'peak-rss').measured).toBeCloseTo(250, 6);
    expect(target(results, 'no-change-peak-rss').measured).toBeCloseTo(120, 6);
    expect(target(results, 's3-peak-rss')).toMatchObject({ status: 'missed' });
    expect(target(results, 's3-peak-rss').measured).toBeCloseTo(410, 6);
  });

  it('prints every target with its figure and status, in the console table and the markdown', () => {
    const cases = [caseResult('statesnap-link-dest', [2, 2]), caseResult('cp-al', [4, 4])];
    const result = {
      schemaVersion: 1,
      createdAt: '2026-11-30T00:00:00.000Z',
      durationMs: 1,
      packageVersion: '0.0.0',
      gitCommit: null,
      gitDirty: null,
      command: 'npx statesnap bench --profile oxios --scale 1 --iterations 2',
      machine: {
        platform: 'linux',
        arch: 'x64',
        release: '6',
        cpus: 2,
        cpuModel: 'cpu',
        memoryBytes: 2 ** 30,
        node: 'v20',
        filesystem: null,
        loadAverage: [1, 1, 1],
      },
      profile: 'oxios',
      scale: 1,
      seed: 1,
      iterations: 2,
      store: { path: '/s', files: 10, bytes: 10, dirs: 1, symlinks: 0, tempFiles: 0, generated: true },
      pageCacheWarm: true,
      cases,
      skipped: [],
      targets: evaluateTargets(cases, { profile: 'oxios', scale: 1 }),
    } satisfies BenchResult;
    const consoleLines = formatConsoleTable(result).split('\n');
    const markdown = formatMarkdown(result);
    for (const t of result.targets) {
      const line = consoleLines.find((l) => l.includes(t.description));
      expect(line, t.id).toBeDefined();
      expect(markdown).toContain(`| ${t.id} |`);
    }
    expect(consoleLines).toContain('  #10 no-change snapshot ≤ 1.0× (cp -al + sync): 0.50× → met');
    expect(consoleLines).toContain(
      '  #12 snapshot to S3 ≤ 2× durable local backup: – → not measured (needs the cases s3-snapshot, statesnap)',
    );
    expect(markdown).toMatch(
      /\| #10 no-change snapshot ≤ 1\.0× \(cp -al \+ sync\) \| no-change-vs-cp-al \| 0\.50× \| 1\.00× \| met \|/,
    );
  });
});
