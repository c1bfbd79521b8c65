// Renders a benchmark result for people: the console table and the markdown summary (table, targets with
// met/missed, skipped cases, machine and the command to reproduce it).

import type { ReferenceId } from './cases.js';
import type { BenchResult, CaseResult, Spread, TargetResult } from './result.js';

const REFERENCE_LABELS: Record<ReferenceId, string> = {
  'cp-a': '× cp -a',
  'cp-a-sync': '× cp -a + sync',
  'cp-a-parallel-sync': '× floor',
  'fs-cp': '× fs.cp',
  'du-sb': '× du -sb',
};

const REFERENCE_ORDER: readonly ReferenceId[] = ['cp-a', 'cp-a-sync', 'cp-a-parallel-sync', 'fs-cp', 'du-sb'];

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

function seconds(ms: number): string {
  return (ms / 1000).toFixed(ms < 10_000 ? 2 : 1);
}

function ratio(value: number | undefined): string {
  return value === undefined ? '–' : `${value.toFixed(2)}`;
}

function range(spread: Spread): string {
  return `${seconds(spread.min)}–${seconds(spread.max)}`;
}

/** Reference columns that hold at least one figure in this result. */
function referenceColumns(cases: readonly CaseResult[]): ReferenceId[] {
  return REFERENCE_ORDER.filter((reference) => cases.some((c) => c.ratios[reference] !== undefined));
}

function caseRow(c: CaseResult, references: readonly ReferenceId[]): string[] {
  return [
    c.label,
    seconds(c.wallMs.median),
    range(c.wallMs),
    integer.format(c.filesPerSec.median),
    c.mbPerSec.median.toFixed(1),
    ...references.map((reference) => ratio(c.ratios[reference]?.median)),
  ];
}

const PROCESS_HEADER = ['statesnap process', 'in-process s', 'CPU user s', 'CPU system s', 'peak RSS MB'];

/** Where a statesnap case's wall time went: start-up vs the operation, user vs kernel CPU, memory. */
function processRows(cases: readonly CaseResult[]): string[][] {
  const median = (spread: Spread | null) => (spread === null ? '–' : seconds(spread.median));
  return cases
    .filter((c) => c.peakRssMb !== null)
    .map((c) => [
      c.label,
      median(c.operationMs),
      median(c.userMs),
      median(c.systemMs),
      c.peakRssMb === null ? '–' : integer.format(c.peakRssMb.max),
    ]);
}

function tableHeader(references: readonly ReferenceId[]): string[] {
  return ['case', 'median s', 'min–max s', 'files/s', 'MB/s', ...references.map((r) => REFERENCE_LABELS[r])];
}

const TARGET_UNITS: Record<TargetResult['unit'], { suffix: string; digits: number }> = {
  ratio: { suffix: '×', digits: 2 },
  MB: { suffix: ' MB', digits: 0 },
  µs: { suffix: ' µs', digits: 1 },
  s: { suffix: ' s', digits: 3 },
};

interface ShownTarget {
  measured: string;
  limit: string;
  status: string;
}

function formatTarget(target: TargetResult): ShownTarget {
  const { suffix, digits } = TARGET_UNITS[target.unit];
  const show = (value: number) => (digits === 0 ? integer.format(value) : value.toFixed(digits)) + suffix;
  if (target.measured === null) {
    const figure = target.atThisScale === undefined ? '' : `${show(target.atThisScale)} at this scale; `;
    return {
      measured: '–',
      limit: show(target.limit),
      status: `not measured (${figure}${target.reason ?? 'no figure'})`,
    };
  }
  const over = target.measured / target.limit - 1;
  return {
    measured: show(target.measured),
    limit: show(target.limit),
    status: target.status === 'met' ? 'met' : `missed (by ${(over * 100).toFixed(over < 0.1 ? 1 : 0)} %)`,
  };
}

/** `#11 statesnap backup ≤ 0.4× …`: the issue that sets a target, when one does. */
function targetName(target: TargetResult): string {
  return `${target.issue === undefined ? 'README' : `#${target.issue}`} ${target.description}`;
}

function describeStore(result: BenchResult): string {
  const { store } = result;
  return `${result.profile} store at scale ${result.scale} (seed ${result.seed}): ${integer.format(store.files)} files, ${(store.bytes / 1e6).toFixed(1)} MB`;
}

function journalNote(journal: boolean | null | undefined): string {
  if (journal === true) return ' with a journal';
  if (journal === false)
    return ' without a journal (copies there can measure the inode-table scan, not the copier)';
  return '';
}

function describeMachine(result: BenchResult): string {
  const { machine } = result;
  const fs = machine.filesystem
    ? `${machine.filesystem.type}${machine.filesystem.options ? ` (${machine.filesystem.options})` : ''}` +
      journalNote(machine.filesystem.journal) +
      (machine.scratch ? ', made fresh for this run on a loop-mounted sparse image' : '')
    : 'unknown filesystem';
  return (
    `${machine.cpus} × ${machine.cpuModel}, ${(machine.memoryBytes / 2 ** 30).toFixed(1)} GiB RAM, ` +
    `${machine.platform} ${machine.release}, Node ${machine.node}, ${fs}, load average ${machine.loadAverage.join(' ')} at the start` +
    (machine.loadAverageEnd ? `, ${machine.loadAverageEnd.join(' ')} at the end` : '')
  );
}

function describeVersion(result: BenchResult): string {
  const commit =
    result.gitCommit === null
      ? 'not a git checkout'
      : `${result.gitCommit.slice(0, 12)}${result.gitDirty ? ' (uncommitted changes)' : ''}`;
  return `statesnap ${result.packageVersion}, ${commit}`;
}

/** Where the run's own wall time went: on a \`discard\` mount, deleting the copies can rival copying them. */
function describeDuration(result: BenchResult): string {
  let timed = 0;
  let untimed = 0;
  for (const c of result.cases) {
    for (const round of c.rounds) {
      timed += round.ms;
      untimed += round.setupMs + round.cleanupMs;
    }
  }
  return (
    `the run took ${seconds(result.durationMs)} s: ${seconds(timed)} s timed, ` +
    `${seconds(untimed)} s untimed setup and deleting of destinations`
  );
}

/** Plain-text columns, numbers right-aligned. */
function textTable(rows: readonly string[][]): string[] {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) =>
    row
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!)))
      .join('  '),
  );
}

export function formatConsoleTable(result: BenchResult): string {
  const references = referenceColumns(result.cases);
  const out = [
    `${describeStore(result)}; ${result.iterations} rounds; page cache ${result.pageCacheWarm ? 'warm' : 'cold'}`,
    ...textTable([tableHeader(references), ...result.cases.map((c) => caseRow(c, references))]),
  ];
  const processes = processRows(result.cases);
  if (processes.length > 0) out.push('', ...textTable([PROCESS_HEADER, ...processes]));
  out.push(
    '',
    'targets:',
    ...result.targets.map((target) => {
      const shown = formatTarget(target);
      return `  ${targetName(target)}: ${shown.measured} → ${shown.status}`;
    }),
  );
  for (const skipped of result.skipped) out.push(`skipped ${skipped.id}: ${skipped.reason}`);
  return out.join('\n');
}

function markdownTable(header: string[], rows: string[][], numericFrom = 1): string {
  const align = header.map((_, column) => (column >= numericFrom ? '---:' : '---'));
  const escapePipes = (cell: string) => cell.replace(/\|/g, '\\|');
  return [header, align, ...rows].map((row) => `| ${row.map(escapePipes).join(' | ')} |`).join('\n');
}

export interface MarkdownOptions {
  /** File name of the SVG chart, linked relative to the markdown file. */
  chartFile?: string;
}

export function formatMarkdown(result: BenchResult, options: MarkdownOptions = {}): string {
  const references = referenceColumns(result.cases);
  const targetRows = result.targets.map((target) => {
    const shown = formatTarget(target);
    return [targetName(target), target.id, shown.measured, shown.limit, shown.status];
  });
  const lines = [
    `## statesnap bench: ${result.profile} ×${result.scale}, ${result.iterations} rounds`,
    '',
    `- store: ${describeStore(result)}; page cache ${result.pageCacheWarm ? 'warm (read once before round 1)' : 'cold'}`,
    `- machine: ${describeMachine(result)}`,
    `- version: ${describeVersion(result)}; ${result.createdAt}`,
    `- reproduce: \`${result.command}\`; ${describeDuration(result)}`,
    '',
    markdownTable(
      tableHeader(references),
      result.cases.map((c) => caseRow(c, references)),
    ),
    '',
    'Wall times are medians over the rounds; each round runs every case once, starting at a different case ' +
      'each round. Ratios are wall-time ratios to the ' +
      'reference measured in the same round, then the median over rounds (< 1 is faster). Files/s and MB/s ' +
      'count the whole store. statesnap cases run as child processes: their wall time includes process ' +
      'start-up and module loading.',
  ];
  const processes = processRows(result.cases);
  if (processes.length > 0) {
    lines.push(
      '',
      markdownTable(PROCESS_HEADER, processes),
      '',
      '"in-process s" is the operation\'s own duration (wall time minus start-up); CPU times are the child ' +
        "process's, all threads; peak RSS is its maxRSS (worker threads included), highest over the rounds.",
    );
  }
  lines.push(
    '',
    '### Targets',
    '',
    markdownTable(['target', 'id', 'measured', 'limit', 'status'], targetRows, 2),
  );
  if (result.skipped.length > 0) {
    lines.push('', '### Not run', '', ...result.skipped.map((s) => `- \`${s.id}\`: ${s.reason}`));
  }
  if (options.chartFile !== undefined) {
    lines.push('', `![files/s per tool and thread count](${options.chartFile})`);
  }
  return `${lines.join('\n')}\n`;
}
