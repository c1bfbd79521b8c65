import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  binShims,
  type CliRun,
  cleanup,
  createTree,
  dir,
  file,
  fingerprintTree,
  runAsPrinted,
  runCli,
  symlink,
  tempDir,
} from './helpers/tree.js';

afterEach(cleanup);

const COMMANDS = ['backup', 'restore', 'verify', 'inspect', 'recover', 'demo', 'generate', 'bench'];
const VERSION = (
  JSON.parse(readFileSync(join(import.meta.dirname, '../package.json'), 'utf8')) as { version: string }
).version;

/** 3017 → '3,017', written out here rather than with the formatter under test. */
function withCommas(count: number): string {
  return String(count).replace(/\B(?=(\d{3})+$)/g, ',');
}

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line !== '');
}

/** The text of one section (`Options:`, `Examples:`) of a help page. */
function section(page: string, title: string): string {
  const start = page.indexOf(`\n${title}:\n`);
  expect(start, `${title} section`).toBeGreaterThan(-1);
  const rest = page.slice(start + title.length + 3);
  const end = rest.search(/\n\n\S/);
  return end === -1 ? rest : rest.slice(0, end);
}

async function store(root: string): Promise<string> {
  const source = join(root, 'store');
  await createTree(source, {
    seeds: { 'a.json': file('{"a":1}'), 'b.md': file('# b'), 'link.json': symlink('a.json') },
    memory: { facts: { 'f.json': file('{}') }, empty: dir() },
  });
  return source;
}

describe('help', () => {
  it('shows the same overview for --help, -h, help and no command: commands, common options, examples', async () => {
    const runs = await Promise.all([['--help'], ['-h'], ['help'], []].map((args) => runCli(args)));
    for (const run of runs) expect(run).toEqual({ ...runs[0], exitCode: 0, stderr: '' });
    const page = runs[0]!.stdout;
    expect(page).toContain(`statesnap ${VERSION}`);
    expect(page).toContain('Usage: statesnap <command> [options] [arguments]');
    for (const command of COMMANDS)
      expect(section(page, 'Commands')).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    expect(section(page, 'Commands')).toMatch(/^ {2}help \[command]/m);
    expect(section(page, 'Options of every command')).toContain('--json');
    expect(section(page, 'Examples')).toContain('$ statesnap demo ./demo');
  });

  it('shows each command the same way through `help <command>` and `<command> --help`, with examples', async () => {
    for (const command of COMMANDS) {
      const [viaHelp, viaFlag, viaShort] = await Promise.all([
        runCli(['help', command]),
        runCli([command, '--help']),
        runCli([command, '-h']),
      ]);
      expect(viaHelp).toMatchObject({ exitCode: 0, stderr: '' });
      expect(viaFlag).toEqual(viaHelp);
      expect(viaShort).toEqual(viaHelp);
      const page = viaHelp.stdout;
      expect(page).toMatch(new RegExp(`^Usage: statesnap ${command} \\[options]`, 'm'));
      expect(section(page, 'Options')).toContain('-h, --help');
      expect(section(page, 'Examples')).toContain(`$ statesnap ${command}`);
      expect(page, 'clipanion placeholders').not.toMatch(/#\d/);
    }
  });

  it('names every value placeholder and shows on-by-default flags as the --no- form that turns them off', async () => {
    const options = async (command: string) => section((await runCli(['help', command])).stdout, 'Options');
    const backup = await options('backup');
    for (const label of [
      '--exclude <pattern>',
      '--category <path>',
      '--app-version <version>',
      '--threads <n>',
      '--on-file-error <warn|abort>',
      '--no-default-excludes',
      '--no-sync',
      '--force',
      '-q, --quiet',
    ]) {
      expect(backup).toMatch(new RegExp(`^  ${label.replace(/[|]/g, '\\|')}\\s`, 'm'));
    }
    expect(backup).not.toMatch(/^ {2}--(sync|default-excludes)\s/m);
    const restore = await options('restore');
    for (const label of [
      '--mode <replace|merge>',
      '--no-verify',
      '--no-keep',
      '--no-sync',
      '--threads <n>',
    ]) {
      expect(restore).toContain(label);
    }
    expect(restore).not.toMatch(/^ {2}--(verify|keep|sync)\s/m);
    expect(await options('recover')).toContain('--no-sync');
    expect(await options('bench')).toContain('--profile <oxios|oxios-small|tiny-files|large-files|demo>');
  });

  it('prints commands as `npx statesnap` when started through npx, so they run as printed', async () => {
    const run = await runCli(['help', 'verify'], { env: { npm_lifecycle_event: 'npx' } });
    expect(run.stdout).toContain('Usage: npx statesnap verify [options] <backup>');
    expect(run.stdout).toContain('$ npx statesnap verify ./demo/backup');
    expect(run.stdout).not.toMatch(/(^|[^x] )statesnap verify/m);
  });

  it('`help <unknown>` exits 2 with a suggestion, stdout empty', async () => {
    const run = await runCli(['help', 'restor']);
    expect(run).toMatchObject({ exitCode: 2, stdout: '' });
    expect(lines(run.stderr)[0]).toBe(
      'statesnap: error: unknown command "restor"; did you mean restore? [ERR_USAGE]',
    );
  });

  it('--version prints the version', async () => {
    expect(await runCli(['--version'])).toMatchObject({ exitCode: 0, stdout: `${VERSION}\n`, stderr: '' });
  });

  it('the positive forms of negatable flags still parse', async () => {
    const root = tempDir();
    const source = await store(root);
    const positive = await runCli([
      'backup',
      '--json',
      '--sync',
      '--default-excludes',
      source,
      join(root, 'a'),
    ]);
    expect(positive.exitCode).toBe(0);
    expect(JSON.parse(positive.stdout).synced).toBe(true);
    const negative = await runCli(['backup', '--json', '--no-sync', source, join(root, 'b')]);
    expect(JSON.parse(negative.stdout).synced).toBe(false);
    const restored = await runCli([
      'restore',
      '--json',
      '--verify',
      '--keep',
      '--sync',
      join(root, 'a'),
      join(root, 'r'),
    ]);
    expect(restored.exitCode, restored.stderr).toBe(0);
    expect(JSON.parse(restored.stdout)).toMatchObject({ verified: true, synced: true });
    expect((await runCli(['recover', '--json', '--sync', join(root, 'r')])).exitCode).toBe(0);
  });
});

describe('usage errors: exit 2, one line saying what was expected, a hint to --help, stdout empty', () => {
  const USAGE = 'ERR_USAGE';
  const VALUE = 'ERR_INVALID_OPTION';
  // [command line, code, message]; the hint names the command's help, or the overview's without one.
  const cases: Array<[string[], string, string]> = [
    [['backup', '--exlude', 'x', 'a', 'b'], USAGE, 'unknown option --exlude; did you mean --exclude?'],
    [['backup', '--thread', '2', 'a', 'b'], USAGE, 'unknown option --thread; did you mean --threads?'],
    [['backup', '--no-synk', 'a', 'b'], USAGE, 'unknown option --no-synk; did you mean --no-sync?'],
    [['backup', '-x', 'a', 'b'], USAGE, 'unknown option -x'],
    [['bakup', 'a', 'b'], USAGE, 'unknown command "bakup"; did you mean backup?'],
    [['resotre'], USAGE, 'unknown command "resotre"; did you mean restore?'],
    [['--bogus'], USAGE, 'unknown option --bogus'],
    [['verify', '--threads', '-1', 'x'], VALUE, '--threads expects an integer >= 1, got -1'],
    [['verify', '--threads', '0', 'x'], VALUE, '--threads expects an integer >= 1, got 0'],
    [['verify', '--threads=2.5', 'x'], VALUE, '--threads expects an integer >= 1, got 2.5'],
    [['verify', 'x', '--threads'], VALUE, '--threads expects an integer >= 1, got nothing'],
    [['verify', '--json=true', 'x'], USAGE, '--json takes no value, got --json=true'],
    [
      ['backup', '--sync=false', 'a', 'b'],
      USAGE,
      '--sync takes no value, got --sync=false (use --sync or --no-sync)',
    ],
    [['backup', 'a'], USAGE, 'missing argument <dest> (usage: statesnap backup [options] <source> <dest>)'],
    [['verify'], USAGE, 'missing argument <backup> (usage: statesnap verify [options] <backup>)'],
    [['inspect', 'a', 'b'], USAGE, 'unexpected argument "b" (usage: statesnap inspect [options] <backup>)'],
    [['backup', '', 'b'], VALUE, '<source> expects a path, got ""'],
    [['backup', '--exclude', '', 'a', 'b'], VALUE, '--exclude expects a pattern, got ""'],
    [['restore', '--mode', 'swap', 'a', 'b'], VALUE, '--mode expects replace or merge, got swap'],
    [
      ['backup', '--on-file-error', 'ignore', 'a', 'b'],
      VALUE,
      '--on-file-error expects warn or abort, got ignore',
    ],
    [
      ['bench', '--profile', 'huge'],
      VALUE,
      '--profile expects one of oxios, oxios-small, tiny-files, large-files, demo, got huge',
    ],
    [['bench', '--scale', '0'], VALUE, '--scale expects a number > 0, got 0'],
    [['bench', '--seed', '-3'], VALUE, '--seed expects an integer >= 0, got -3'],
  ];

  for (const [args, code, message] of cases) {
    it(`statesnap ${args.join(' ')}`, async () => {
      const run = await runCli(args);
      const named = COMMANDS.includes(args[0]!) ? ` ${args[0]}` : '';
      expect(run).toMatchObject({ exitCode: 2, stdout: '' });
      expect(lines(run.stderr)).toEqual([
        `statesnap: error: ${message} [${code}]`,
        `statesnap: run 'statesnap${named} --help' for usage`,
      ]);
    });
  }

  it('with --json, prints the failure document on stdout too (command null when none was named)', async () => {
    const missing = await runCli(['backup', '--json', 'a']);
    expect(missing.exitCode).toBe(2);
    expect(JSON.parse(missing.stdout)).toEqual({
      command: 'backup',
      error: {
        code: 'ERR_USAGE',
        message: 'missing argument <dest> (usage: statesnap backup [options] <source> <dest>)',
        path: null,
      },
      exitCode: 2,
    });
    const unknown = await runCli(['--json', 'bakup']);
    expect(unknown.exitCode).toBe(2);
    expect(JSON.parse(unknown.stdout)).toMatchObject({
      command: null,
      error: { code: 'ERR_USAGE' },
      exitCode: 2,
    });
    expect(lines(unknown.stderr)).toHaveLength(2);
  });
});

/** Asserts the one failure document on stdout, the error line on stderr, and the exit code. */
function expectFailure(run: CliRun, command: string, code: string, exitCode: number): void {
  expect(run.exitCode).toBe(exitCode);
  const document = JSON.parse(run.stdout);
  expect(Object.keys(document)).toEqual(['command', 'error', 'exitCode']);
  expect(document).toMatchObject({ command, error: { code }, exitCode });
  expect(Object.keys(document.error)).toEqual(['code', 'message', 'path']);
  if (document.error.path !== null) expect(isAbsolute(document.error.path)).toBe(true);
  expect(run.stderr).toContain(`statesnap: error: `);
  expect(run.stderr).toContain(`[${code}]`);
}

describe('--json prints exactly one JSON document when a command fails or is refused', () => {
  it('backup: missing source, existing dest', async () => {
    const root = tempDir();
    const source = await store(root);
    expectFailure(
      await runCli(['backup', '--json', 'nope', 'out'], { cwd: root }),
      'backup',
      'ERR_SOURCE_UNREADABLE',
      1,
    );
    const exists = await runCli(['backup', '--json', source, root]);
    expectFailure(exists, 'backup', 'ERR_DEST_OVERLAPS_SOURCE', 2);
    await runCli(['backup', '--no-sync', source, join(root, 'b')]);
    const refused = await runCli(['backup', '--json', 'store', 'b'], { cwd: root });
    expectFailure(refused, 'backup', 'ERR_DEST_EXISTS', 1);
    expect(JSON.parse(refused.stdout).error.path).toBe(join(root, 'b'));
  });

  it('restore: no manifest (the target is left alone)', async () => {
    const root = tempDir();
    await createTree(join(root, 'target'), { 'keep.json': file('mine') });
    const run = await runCli(['restore', '--json', 'nope', 'target'], { cwd: root });
    expectFailure(run, 'restore', 'ERR_MANIFEST_MISSING', 1);
    expect(readFileSync(join(root, 'target', 'keep.json'), 'utf8')).toBe('mine');
  });

  it('verify: refused options are failures; problems found are its normal result', async () => {
    const root = tempDir();
    expectFailure(
      await runCli(['verify', '--json', '--threads', '1000', root]),
      'verify',
      'ERR_INVALID_OPTION',
      2,
    );
    const problems = await runCli(['verify', '--json', 'nope'], { cwd: root });
    expect(problems.exitCode).toBe(1);
    expect(JSON.parse(problems.stdout)).toMatchObject({
      command: 'verify',
      backup: join(root, 'nope'),
      ok: false,
      problems: { count: 1, byProblem: { manifest: 1 } },
      exitCode: 1,
    });
  });

  it('inspect: no manifest', async () => {
    const root = tempDir();
    expectFailure(
      await runCli(['inspect', '--json', 'nope'], { cwd: root }),
      'inspect',
      'ERR_MANIFEST_MISSING',
      1,
    );
  });

  it('recover: an unreadable journal', async () => {
    const root = tempDir();
    writeFileSync(join(root, 'target.restore-journal'), 'not json');
    expectFailure(
      await runCli(['recover', '--json', 'target'], { cwd: root }),
      'recover',
      'ERR_RECOVERY_NEEDED',
      1,
    );
  });

  it('demo: a directory that is not empty', async () => {
    const root = tempDir();
    writeFileSync(join(root, 'x'), '');
    expectFailure(await runCli(['demo', '--json', root]), 'demo', 'ERR_INVALID_OPTION', 2);
  });

  it('bench: --current without --compare; a regression prints one document with exitCode 1', async () => {
    const root = tempDir();
    expectFailure(await runCli(['bench', '--json', '--current', 'x.json']), 'bench', 'ERR_INVALID_OPTION', 2);
    const result = (ratio: number) => ({
      schemaVersion: 1,
      createdAt: '2026-11-24T00:00:00.000Z',
      gitCommit: null,
      profile: 'demo',
      scale: 1,
      cases: [
        {
          id: 'statesnap-no-sync',
          label: 'statesnap --no-sync',
          subject: true,
          ratios: { 'cp-a': { median: ratio, min: ratio, max: ratio } },
        },
      ],
    });
    writeFileSync(join(root, 'before.json'), JSON.stringify(result(0.5)));
    writeFileSync(join(root, 'after.json'), JSON.stringify(result(1)));
    const run = await runCli(['bench', '--json', '--compare', 'before.json', '--current', 'after.json'], {
      cwd: root,
    });
    expect(run.exitCode).toBe(1);
    expect(JSON.parse(run.stdout)).toMatchObject({
      previous: { file: join(root, 'before.json') },
      exitCode: 1,
    });
    expect(run.stderr).toContain('[ERR_BENCH_REGRESSION]');
  });
});

/** Every string under a key that names a path of the filesystem (paths inside a backup are relative to it). */
function machinePaths(value: unknown, key = ''): string[] {
  if (typeof value === 'string')
    return ['source', 'dest', 'backup', 'target', 'root', 'dir', 'rollback', 'path', 'file'].includes(key)
      ? [value]
      : [];
  if (Array.isArray(value)) return value.flatMap((item) => machinePaths(item, key));
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value).flatMap(([name, item]) => (name === 'index' ? [] : machinePaths(item, name)));
}

describe('results', () => {
  it('every command run with relative paths prints absolute paths and its exit code in --json', async () => {
    const root = tempDir();
    const run = async (args: string[]) => {
      const result = await runCli(['--json', ...args], { cwd: root });
      const document = JSON.parse(result.stdout);
      expect(document.exitCode, args.join(' ')).toBe(result.exitCode);
      expect(document.command).toBe(args[0]);
      const paths = machinePaths(document);
      expect(paths.length, args.join(' ')).toBeGreaterThan(0);
      for (const path of paths) expect(isAbsolute(path), `${args.join(' ')}: ${path}`).toBe(true);
      return document;
    };
    await run(['demo', 'd']);
    rmSync(join(root, 'd', 'backup', 'seeds'), { recursive: true });
    const verified = await run(['verify', 'd/backup']);
    expect(verified.problems.list.length).toBeGreaterThan(0);
    await run(['backup', '--no-sync', 'd/store', 'b']);
    await run(['inspect', 'b']);
    await run(['restore', '--no-sync', 'b', 'r']);
    const replaced = await run(['restore', '--no-sync', 'b', 'r']);
    expect(replaced.rollback).toMatch(/\/r\.pre-restore-/);
    await run(['recover', '--no-sync', 'r']);
  });
});

describe('text output', () => {
  it('writes every count with thousands separators, the same way everywhere, and never a wrong plural', async () => {
    const root = tempDir();
    const run = await runCli(['demo', join(root, 'demo')]);
    expect(run).toMatchObject({ exitCode: 0, stderr: '' });
    // The counts, taken from the store the demo generated.
    const store = Object.entries(fingerprintTree(join(root, 'demo', 'store'), { mtimes: false }));
    const count = (keep: (rel: string, kind: string) => boolean) =>
      store.filter(([rel, entry]) => keep(rel, entry.kind)).length;
    const files = count((_rel, kind) => kind === 'file');
    const temps = count((rel, kind) => kind === 'file' && rel.endsWith('.tmp'));
    const dirs = count((_rel, kind) => kind === 'dir');
    const symlinks = count((_rel, kind) => kind === 'symlink');
    const facts = count((rel) => /^memory\/facts\/[^/]+\.(json|md)$/.test(rel));
    expect(Math.min(files, facts), 'counts large enough to need a separator').toBeGreaterThan(999);
    expect(symlinks).toBeGreaterThan(1);
    expect(run.stdout).toContain(`${withCommas(files)} files`);
    expect(run.stdout).toContain(`${symlinks} symlinks`);
    expect(run.stdout).toContain(`memory/facts ${withCommas(facts)}`);
    // The index lists every copied file, every directory and every skipped symlink.
    expect(run.stdout).toContain(`(${withCommas(files - temps + dirs + symlinks)} index entries)`);
    const withoutDatesAndPaths = run.stdout.replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, '').replace(/\/\S+/g, '');
    expect(withoutDatesAndPaths, 'a number of 4+ digits without a separator').not.toMatch(/\d{4}/);
    expect(run.stdout).not.toMatch(/\b1 (files|dirs|symlinks|warnings|problems|threads|entries)\b/);
  });

  it('says "1 file, 1 dir, 1 thread", "1 warning" and "1 problem"', async () => {
    const root = tempDir();
    await createTree(join(root, 'src'), { seeds: { 'a.json': file('{}'), 'odd\\name.json': file('x') } });
    const backup = await runCli([
      'backup',
      '--threads',
      '1',
      '--no-sync',
      join(root, 'src'),
      join(root, 'out'),
    ]);
    expect(backup.exitCode).toBe(3);
    expect(backup.stdout).toContain(': 1 file, 1 dir, ');
    expect(backup.stdout).toContain('(1 thread, sha256');
    expect(backup.stdout).toContain('completed with 1 warning: 1 unsupported-name');
    rmSync(join(root, 'out', 'seeds', 'a.json'));
    const verify = await runCli(['verify', join(root, 'out')]);
    expect(verify.exitCode).toBe(1);
    expect(verify.stdout).toContain(`backup ${join(root, 'out')} FAILED: 1 problem (1 missing)`);
    expect(verify.stdout).toContain(`${join(root, 'out', 'seeds', 'a.json')}: missing from the backup`);
  });

  it('backup --force says that it replaced the previous backup', async () => {
    const root = tempDir();
    const source = await store(root);
    const dest = join(root, 'out');
    const first = await runCli(['backup', '--no-sync', source, dest]);
    expect(first.stdout).not.toContain('replaced');
    const again = await runCli(['backup', '--force', '--no-sync', source, dest]);
    expect(again.exitCode).toBe(0);
    expect(again.stdout).toContain(`replaced the previous backup at ${dest}`);
  });

  it('-q keeps exactly one line on stderr about warnings (with or without --json), and about verify problems', async () => {
    const root = tempDir();
    const source = await store(root);
    writeFileSync(join(source, 'seeds', 'odd\\name.json'), 'x');
    const summary = 'statesnap: warning: completed with 1 warning: 1 unsupported-name\n';
    const quiet = await runCli(['backup', '-q', '--no-sync', source, join(root, 'a')]);
    expect(quiet).toMatchObject({ exitCode: 3, stdout: '', stderr: summary });
    const json = await runCli(['backup', '-q', '--json', '--no-sync', source, join(root, 'b')]);
    expect(json).toMatchObject({ exitCode: 3, stderr: summary });
    expect(JSON.parse(json.stdout).warnings.count).toBe(1);
    const clean = await runCli(['verify', '-q', join(root, 'a')]);
    expect(clean).toMatchObject({ exitCode: 0, stdout: '', stderr: '' });
    rmSync(join(root, 'a', 'seeds', 'a.json'));
    const failed = await runCli(['verify', '-q', join(root, 'a')]);
    expect(failed).toMatchObject({
      exitCode: 1,
      stdout: '',
      stderr: `statesnap: error: backup ${join(root, 'a')} FAILED: 1 problem (1 missing)\n`,
    });
  });

  it("the demo's next steps run as printed", async () => {
    const root = tempDir();
    const run = await runCli(['demo', join(root, 'my demo')]);
    const printed = run.stdout
      .slice(run.stdout.indexOf('\nnext '))
      .split('\n')
      .slice(2)
      .filter((line) => line !== '');
    expect(printed).toEqual([
      `  statesnap verify '${join(root, 'my demo', 'backup')}'`,
      `  statesnap restore '${join(root, 'my demo', 'backup')}' '${join(root, 'my demo', 'restored')}'`,
    ]);
    const bin = binShims();
    for (const line of printed) expect((await runAsPrinted(line, { bin })).exitCode, line).toBe(0);
  });
});
