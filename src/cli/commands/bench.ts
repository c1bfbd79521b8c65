// `statesnap bench` (also what `npm run bench` runs): argument parsing and output; the suite is bench/, loaded
// only when this command runs, so no other command (`statesnap backup`) loads it or tinybench.

import { Command } from 'clipanion';
import { STORE_PROFILES } from '../../demo/profiles.js';
import { BaseCommand } from '../base-command.js';
import { CASE_IDS } from '../bench-cases.js';
import { choiceOption, integerOption, pathOption, positiveNumberOption, textOption } from '../options.js';

/** The smallest run that still compares statesnap with a baseline: what the examples print. */
const QUICK_RUN = 'bench --profile demo --iterations 1 --cases statesnap-no-sync,cp-a --out ./bench-results';

export class BenchCommand extends BaseCommand {
  static override paths = [['bench']];
  static override usage = Command.Usage({
    description: 'Measure backup throughput against cp -a, rsync, tar, fs.cp and the original algorithm',
    details: `
      Where: run as root on Linux, on a fresh journaled ext4 made for the run (a sparse image sized for the
      profile, loop-mounted, unmounted and deleted after the run, also when it fails or is interrupted);
      otherwise, or with \`--dir\` or \`--store-dir\`, on the filesystem of that directory. The result records
      the filesystem's type, mount options and whether it has a journal: an ext4 without one scans its inode
      tables for every file created after a large deletion, which makes any copy look slow.

      Generates a deterministic store (cached for later runs outside a fresh ext4), reads it once to warm the page cache, then runs
      \`--iterations\` rounds; in each round every case runs once (starting at a different case each round)
      into a fresh destination, deleted untimed right after. Reports median and range of wall time, files/s,
      MB/s, peak RSS of statesnap, and the ratio of every case to \`cp -a\`, \`cp -a\` + \`sync\` and
      \`fs.promises.cp\` measured in the same round (medians of per-round ratios: absolute times on a busy
      machine swing, same-round ratios much less).

      Writes \`<profile>-<timestamp>.json\`, \`.md\` and \`.svg\` to \`--out\` (and the markdown to
      \`$GITHUB_STEP_SUMMARY\` when set). Cases: ${CASE_IDS.join(', ')}. Tools that are not installed are
      skipped with a note. The full run (\`--profile oxios\`, 3 rounds) takes about 15 minutes.

      With \`--compare <previous.json>\`, prints the change of every ratio and exits 1 if one of statesnap's
      ratios grew by more than \`--threshold\`. Exit codes: 0 ok, 1 failed or regressed, 2 usage error.
    `,
    examples: [
      ['A quick run: the demo store, statesnap against cp -a, one round', `$0 ${QUICK_RUN}`],
      ['The same, its result saved as JSON', `$0 ${QUICK_RUN} --json > before.json`],
      [
        'Compare with the saved run (exits 1 if a statesnap ratio grew by more than 50 %)',
        `$0 ${QUICK_RUN} --compare before.json --threshold 0.5`,
      ],
    ],
  });

  profile = choiceOption('--profile', STORE_PROFILES, 'oxios', 'The store to generate');
  scale = positiveNumberOption('--scale', 'Multiplies file counts (default 1; 0.1 for a CI smoke run)');
  iterations = integerOption('--iterations', 1, 'Rounds, each case once per round (default 3)');
  seed = integerOption('--seed', 0, 'Seed of the store generator (default 1)');
  cases = textOption(
    '--cases',
    'ids',
    'Comma-separated case ids to run (default: all)',
    'a comma-separated list of case ids',
  );
  dir = pathOption(
    '--dir',
    'dir',
    'Measure in this directory (default as root: a fresh ext4 made for the run, else the temporary directory)',
  );
  storeDir = pathOption('--store-dir', 'dir', 'Where the store is generated and reused');
  out = pathOption('--out', 'dir', 'Directory for the JSON, markdown and SVG results');
  compare = pathOption('--compare', 'file', 'A previous result JSON to compare the ratios with');
  threshold = positiveNumberOption(
    '--threshold',
    'Fraction a statesnap ratio may grow before --compare fails (default 0.15)',
    'fraction',
  );
  current = pathOption('--current', 'file', 'With --compare: compare this saved result instead of running');

  protected async run(): Promise<number> {
    const suite = await import('../../../bench/suite.js');
    const log = (line: string) => {
      if (!this.quiet) this.context.stderr.write(`${line}\n`);
    };
    let comparison: ReturnType<typeof suite.compareSavedResults> | undefined;
    if (this.current !== undefined) {
      const saved = suite.compareSavedResults(this.compare, this.current, this.threshold);
      comparison = saved;
      this.printOutcome(saved, comparison, () => suite.formatComparison(saved));
    } else {
      const run = await suite.runBench({
        profile: this.profile,
        scale: this.scale,
        iterations: this.iterations,
        seed: this.seed,
        cases: this.cases?.split(',').filter((id) => id !== ''),
        storeDir: this.storeDir,
        dir: this.dir,
        outDir: this.out,
        compare: this.compare,
        threshold: this.threshold,
        signal: this.interrupt.signal,
        onLog: log,
      });
      comparison = run.result.comparison;
      const compared = comparison;
      this.printOutcome(run.result, comparison, () =>
        compared === undefined
          ? suite.formatConsoleTable(run.result)
          : `${suite.formatConsoleTable(run.result)}\n\n${suite.formatComparison(compared)}`,
      );
      log(`wrote ${run.files.json}, ${run.files.markdown} and ${run.files.svg}`);
    }
    const regressed = suite.regressionError(comparison);
    if (regressed) throw regressed;
    return 0;
  }

  /** The one result document, carrying the exit code a regression gives (its error line follows on stderr). */
  private printOutcome(
    document: object,
    comparison: { regressions: unknown[] } | undefined,
    summary: () => string,
  ): void {
    const regressed = comparison !== undefined && comparison.regressions.length > 0;
    this.printResult({ ...document, exitCode: regressed ? 1 : 0 }, summary);
  }
}
