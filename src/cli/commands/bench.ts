// `statesnap bench` (also what `npm run bench` runs): argument parsing and output; the suite is bench/, loaded
// only when this command runs, so no other command (`statesnap backup`) loads it or tinybench.

import { Command, Option } from 'clipanion';
import * as t from 'typanion';
import { STORE_PROFILES } from '../../demo/generator.js';
import { BaseCommand } from '../base-command.js';
import { CASE_IDS } from '../bench-cases.js';

export class BenchCommand extends BaseCommand {
  static override paths = [['bench']];
  static override usage = Command.Usage({
    description: 'Measure backup throughput against cp -a, rsync, tar, fs.cp and the original algorithm',
    details: `
      Generates a deterministic store (cached for later runs), reads it once to warm the page cache, then runs
      \`--iterations\` rounds; in each round every case runs once (starting at a different case each round)
      into a fresh destination, deleted untimed right after. Reports median and range of wall time, files/s, MB/s, peak RSS of statesnap, and the ratio
      of every case to \`cp -a\`, \`cp -a\` + \`sync\` and \`fs.promises.cp\` measured in the same round
      (medians of per-round ratios: absolute times on a busy machine swing, same-round ratios much less).

      Writes \`<profile>-<timestamp>.json\`, \`.md\` and \`.svg\` to \`--out\` (and the markdown to
      \`$GITHUB_STEP_SUMMARY\` when set). Cases: ${CASE_IDS.join(', ')}. Tools that are not installed are
      skipped with a note.

      With \`--compare <previous.json>\`, prints the change of every ratio and exits 1 if one of statesnap's
      ratios grew by more than \`--threshold\`. Exit codes: 0 ok, 1 failed or regressed, 2 usage error.
    `,
    examples: [
      ['CI smoke run (about 10k files)', '$0 bench --scale 0.1 --iterations 3'],
      ['Only statesnap against cp -a, as JSON', '$0 bench --cases statesnap-no-sync,cp-a --json'],
      ['Fail on a regression against the last run', '$0 bench --scale 0.1 --compare bench/results/last.json'],
    ],
  });

  profile = Option.String('--profile', 'oxios', {
    validator: t.isEnum(STORE_PROFILES),
    description: `Store to generate: ${STORE_PROFILES.join(', ')}`,
  });
  scale = Option.String('--scale', {
    validator: t.isNumber(),
    description: 'Multiplies file counts (default 1)',
  });
  iterations = Option.String('--iterations', {
    validator: t.isNumber(),
    description: 'Rounds, each case once per round (default 3)',
  });
  seed = Option.String('--seed', {
    validator: t.isNumber(),
    description: 'Seed of the store generator (default 1)',
  });
  cases = Option.String('--cases', { description: 'Comma-separated case ids to run (default: all)' });
  storeDir = Option.String('--store-dir', { description: 'Where the store is generated and reused' });
  out = Option.String('--out', { description: 'Directory for the JSON, markdown and SVG results' });
  compare = Option.String('--compare', { description: 'A previous result JSON to compare the ratios with' });
  threshold = Option.String('--threshold', {
    validator: t.isNumber(),
    description: 'Fraction a statesnap ratio may grow before --compare fails (default 0.15)',
  });
  current = Option.String('--current', {
    description: 'With --compare: compare this saved result instead of running the benchmark',
  });

  protected async run(): Promise<number> {
    const suite = await import('../../../bench/suite.js');
    const log = (line: string) => {
      if (!this.quiet) this.context.stderr.write(`${line}\n`);
    };
    if (this.current !== undefined) {
      const comparison = suite.compareSavedResults(this.compare, this.current, this.threshold);
      this.printResult(comparison, () => suite.formatComparison(comparison));
      const regressed = suite.regressionError(comparison);
      if (regressed) throw regressed;
      return 0;
    }
    const run = await suite.runBench({
      profile: this.profile,
      scale: this.scale,
      iterations: this.iterations,
      seed: this.seed,
      cases: this.cases?.split(',').filter((id) => id !== ''),
      storeDir: this.storeDir,
      outDir: this.out,
      compare: this.compare,
      threshold: this.threshold,
      signal: this.interrupt.signal,
      onLog: log,
    });
    const { comparison } = run.result;
    this.printResult(run.result, () =>
      comparison === undefined
        ? suite.formatConsoleTable(run.result)
        : `${suite.formatConsoleTable(run.result)}\n\n${suite.formatComparison(comparison)}`,
    );
    log(`wrote ${run.files.json}, ${run.files.markdown} and ${run.files.svg}`);
    const regressed = suite.regressionError(comparison);
    if (regressed) throw regressed;
    return 0;
  }
}
