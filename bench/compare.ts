// `--compare <previous.json>`: the change of every ratio against an earlier run. Only statesnap's own ratios
// can fail it: a baseline's ratio to another baseline moving is the machine, not a regression of ours.

import { readFileSync } from 'node:fs';
import { describeCause, StatesnapError } from '../src/core/errors.js';
import { type ComparableResult, ComparableResultSchema } from './result.js';

export interface RatioChange {
  caseId: string;
  label: string;
  reference: string;
  previous: number;
  current: number;
  /** current / previous - 1: positive means slower relative to the reference. */
  change: number;
  subject: boolean;
  regressed: boolean;
}

export interface Comparison {
  previous: { file: string; createdAt: string; gitCommit: string | null; profile: string; scale: number };
  threshold: number;
  changes: RatioChange[];
  regressions: RatioChange[];
  /** Why the comparison may mean less than it seems (another profile or scale, cases on one side only). */
  notes: string[];
}

/** Reads and validates a result file written by this suite (any later version keeps these fields). */
export function readResultFile(file: string): ComparableResult {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new StatesnapError(
      'ERR_INVALID_OPTION',
      `cannot read benchmark result ${file}: ${describeCause(error)}`,
      {
        path: file,
        cause: error,
      },
    );
  }
  const parsed = ComparableResultSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new StatesnapError(
      'ERR_INVALID_OPTION',
      `${file} is not a statesnap benchmark result: ${issue?.path.join('.') || '(root)'}: ${issue?.message}`,
      { path: file },
    );
  }
  return parsed.data;
}

export function compareResults(
  previous: ComparableResult,
  previousFile: string,
  current: ComparableResult,
  threshold: number,
): Comparison {
  const notes: string[] = [];
  if (previous.profile !== current.profile || previous.scale !== current.scale) {
    notes.push(
      `the previous run used profile ${previous.profile} at scale ${previous.scale}, this one ${current.profile} at ` +
        `scale ${current.scale}: ratios change with the store`,
    );
  }
  const before = new Map(previous.cases.map((c) => [c.id, c]));
  const changes: RatioChange[] = [];
  for (const c of current.cases) {
    const old = before.get(c.id);
    if (old === undefined) {
      notes.push(`${c.id} is new in this run`);
      continue;
    }
    for (const [reference, figures] of Object.entries(c.ratios)) {
      const oldRatio = old.ratios[reference]?.median;
      if (oldRatio === undefined || oldRatio <= 0) continue;
      const change = figures.median / oldRatio - 1;
      changes.push({
        caseId: c.id,
        label: c.label,
        reference,
        previous: oldRatio,
        current: figures.median,
        change,
        subject: c.subject,
        regressed: c.subject && change > threshold,
      });
    }
  }
  const currentIds = new Set(current.cases.map((c) => c.id));
  for (const id of before.keys()) if (!currentIds.has(id)) notes.push(`${id} did not run this time`);
  return {
    previous: {
      file: previousFile,
      createdAt: previous.createdAt,
      gitCommit: previous.gitCommit,
      profile: previous.profile,
      scale: previous.scale,
    },
    threshold,
    changes,
    regressions: changes.filter((change) => change.regressed),
    notes,
  };
}

export function formatComparison(comparison: Comparison): string {
  const { previous } = comparison;
  const percent = (value: number) => `${value >= 0 ? '+' : ''}${(value * 100).toFixed(1)} %`;
  const lines = [
    `compared with ${previous.file} (${previous.createdAt}, ${previous.gitCommit?.slice(0, 12) ?? 'no commit'}); ` +
      `regression threshold ${percent(comparison.threshold)} on statesnap's ratios:`,
  ];
  const width = Math.max(0, ...comparison.changes.map((c) => `${c.label} vs ${c.reference}`.length));
  for (const change of comparison.changes) {
    const name = `${change.label} vs ${change.reference}`.padEnd(width);
    const flag = change.regressed ? '  REGRESSED' : change.subject ? '' : '  (baseline, informational)';
    lines.push(
      `  ${name}  ${change.previous.toFixed(3)} → ${change.current.toFixed(3)}  ${percent(change.change).padStart(8)}${flag}`,
    );
  }
  for (const note of comparison.notes) lines.push(`  note: ${note}`);
  lines.push(
    comparison.regressions.length === 0
      ? 'no ratio regressed beyond the threshold'
      : `${comparison.regressions.length} ratio(s) regressed beyond the threshold`,
  );
  return lines.join('\n');
}
