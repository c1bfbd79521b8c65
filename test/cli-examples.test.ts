// Every example the README's shell blocks and the help pages print runs as printed, in a fresh working
// directory, in the order printed, and exits as documented. `statesnap` and `npx statesnap` resolve to the
// built binary (binShims); nothing is rewritten.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { binShims, cleanup, runAsPrinted, runCli, tempDir } from './helpers/tree.js';

/** Commands that cannot run in a test, each with the reason. Every entry must still appear in the README. */
const SKIPPED = new Map<string, string>([
  ['npm install', 'installs the clone itself; the test runs the binary that install built'],
  ['npm test', 'the test suite itself'],
  ['npm run build', 'development script of the clone (run by npm test and CI)'],
  ['npm run typecheck', 'development script of the clone (run by CI)'],
  ['npm run lint', 'development script of the clone (run by CI)'],
  ['npm ci', 'installs the clone itself; the test runs the binary that install built'],
  ['npm run check:package', 'development script of the clone (run by CI): packs and installs the package'],
  ['npm run test:unprivileged', 'development script of the clone (run by CI): the safety suites again'],
  ['scripts/with-node.sh 26.12.1 npm test', 'the test suite itself, under another Node release'],
  ['npm run bench', 'the full benchmark: about 15 minutes'],
  ['npm run bench:ci', 'the CI benchmark: about 3 minutes'],
  [
    'npm run bench:ci -- --out bench-results --compare bench/results/ci-baseline.summary.json --threshold 0.25',
    'the CI benchmark (about 3 minutes), as the bench workflow runs it',
  ],
  [
    'npx statesnap bench --profile tiny-files --iterations 2 --cases statesnap,statesnap-one-file,statesnap-restore,statesnap-link-dest,s3-snapshot,s3-snapshot-no-change',
    'generates and copies 1M files, also to an S3 server',
  ],
  [
    'npx statesnap bench --compare bench/results/oxios-2026-11-30.summary.json --threshold 0.15',
    'runs the full benchmark before comparing',
  ],
  [
    'npx statesnap bench --profile oxios --iterations 3 --cases cp-a,statesnap-no-sync,cp-a-sync,cp-a-parallel-sync,statesnap,statesnap-one-file,statesnap-restore,fs-cp,statesnap-link-dest,statesnap-link-dest-1pct,snapshot-no-change,rsync-link-dest,cp-al,restic-no-change,s3-snapshot,s3-snapshot-no-change,s3-restore,restic-s3,du-sb,planner-walk',
    'the full oxios benchmark against every baseline, also to an S3 server: most of an hour',
  ],
  [
    'npx statesnap bench --profile oxios --scale 0.05 --iterations 2',
    'a check of the whole suite: about 3 minutes, with restic and S3 cases',
  ],
  [
    'npx statesnap bench --profile oxios-small --iterations 5 --cases cp-a,statesnap-no-sync,cp-a-sync,cp-a-parallel-sync,statesnap,statesnap-one-file,fs-cp',
    'generates a 30k-file store and benchmarks it: minutes',
  ],
  [
    'npx statesnap bench --profile oxios --dir /mnt/ssd/bench',
    'the full benchmark, in a directory of that machine',
  ],
]);

/** Examples whose documented outcome is not only exit 0. */
const EXIT_CODES = new Map<string, readonly number[]>([
  // Its label says so: a timing comparison of two one-round runs on a shared machine may regress.
  [
    'statesnap bench --profile demo --iterations 1 --cases statesnap-no-sync,cp-a --out ./bench-results --compare before.json --threshold 0.5',
    [0, 1],
  ],
]);

/** The commands of a printed line: trailing `# comment` removed, `a && b` as two commands (run in order). */
function commandsOf(line: string): string[] {
  return line
    .replace(/\s+#.*$/, '')
    .split(' && ')
    .map((command) => command.trim())
    .filter((command) => command !== '');
}

function readmeExamples(): string[] {
  const readme = readFileSync(join(import.meta.dirname, '../README.md'), 'utf8');
  const blocks = [...readme.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((match) => match[1]!);
  return blocks.flatMap((block) => block.split('\n').flatMap(commandsOf));
}

/** The `$ ` lines of a help page's Examples section, and whether the page says to run the demo first. */
function helpExamples(page: string): { commands: string[]; needsDemo: boolean } {
  const examples = page.slice(page.indexOf('\nExamples:\n'));
  return {
    commands: [...examples.matchAll(/^ {4}\$ (.+)$/gm)].map((match) => match[1]!),
    needsDemo: /which 'statesnap demo \.\/demo' creates/.test(examples),
  };
}

afterEach(cleanup);

/** Runs the commands in order in a fresh directory; TMPDIR inside it, so `demo` without a dir stays there. */
async function runInOrder(commands: readonly string[]): Promise<void> {
  const bin = binShims();
  const cwd = tempDir('statesnap-examples-');
  for (const command of commands) {
    if (SKIPPED.has(command)) continue;
    const run = await runAsPrinted(command, { bin, cwd, env: { TMPDIR: cwd }, timeoutMs: 120_000 });
    const expected = EXIT_CODES.get(command) ?? [0];
    expect(expected, `${command}\nexit ${run.exitCode}\n${run.stdout}\n${run.stderr}`).toContain(
      run.exitCode,
    );
    if (command.includes('--json') && !command.includes('>'))
      expect(() => JSON.parse(run.stdout), command).not.toThrow();
  }
}

describe('README examples', () => {
  const examples = readmeExamples();

  it('skips only what is listed, and every listed skip is still in the README', () => {
    expect(examples.length).toBeGreaterThan(10);
    for (const skipped of SKIPPED.keys()) expect(examples, `stale skip: ${skipped}`).toContain(skipped);
    for (const example of examples) {
      if (!SKIPPED.has(example))
        expect(example, 'a README command that is not statesnap').toMatch(/^npx statesnap /);
    }
  });

  it('run as printed, in order', async () => {
    await runInOrder(examples);
  }, 300_000);
});

describe('help examples', () => {
  for (const page of [
    'overview',
    'backup',
    'restore',
    'verify',
    'inspect',
    'recover',
    'snapshot',
    'list',
    'prune',
    'diff',
    'demo',
    'generate',
    'bench',
    'help',
    'completion',
  ]) {
    it(`${page}: run as printed, in order`, async () => {
      const help = await runCli(page === 'overview' ? ['--help'] : ['help', page]);
      const { commands, needsDemo } = helpExamples(help.stdout);
      expect(commands.length).toBeGreaterThan(0);
      await runInOrder(needsDemo ? ['statesnap demo ./demo', ...commands] : commands);
    }, 300_000);
  }
});
