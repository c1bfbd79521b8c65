// The progress display as people see it: drawn through a real pseudo-terminal (util-linux `script`), with
// percent, ETA, elapsed time and files/s, erased before the summary and before the error of a Ctrl-C (sent as
// the terminal's ^C); clean output when stderr is not a terminal; --progress / --no-progress either way.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateStore } from '../dist/src/demo/generator.js';
import { requireDependency } from './helpers/dependencies.js';
import { isStopped } from './helpers/pause.js';
import { CLI, cliEnv, runCli } from './helpers/tree.js';

// util-linux `script` gives the command a real pseudo-terminal.
const NO_PTY =
  spawnSync('script', ['--version']).status === 0 ? null : 'util-linux `script` is not installed';
const ERASE = '\r\x1b[K';

interface PtyRun {
  exitCode: number | null;
  /** Everything the terminal received: stdout and stderr of the command, interleaved as written. */
  screen: string;
  /** Files done when the run was interrupted (from its pause point). */
  filesAtInterrupt?: number;
}

function quote(arg: string): string {
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/**
 * Runs the built CLI with a pseudo-terminal as its stdin, stdout and stderr (80 columns). `hold` stops the run
 * at a pause point (docs/test-hooks.md) for `ms`, so a copy lasts long enough to show an ETA however fast the
 * machine is, and then either resumes it or interrupts it as Ctrl-C does (SIGINT to the foreground process).
 * Typing ^C into the terminal cannot do this: `script` stops itself while its command is stopped and would
 * forward the keystroke only after the run went on.
 */
function runInPty(
  args: readonly string[],
  hold?: { pauseAt: string; ms: number; after: 'resume' | 'interrupt' },
): Promise<PtyRun> {
  const command = [process.execPath, CLI, ...args].map(quote).join(' ');
  const pauseFile = join(root, `pause-${Math.random().toString(36).slice(2)}`);
  const child: ChildProcess = spawn(
    'script',
    ['-q', '-e', '-c', `stty cols 80; exec ${command}`, '/dev/null'],
    {
      env: cliEnv(hold && { STATESNAP_TEST_PAUSE_AT: hold.pauseAt, STATESNAP_TEST_PAUSE_FILE: pauseFile }),
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let screen = '';
  let filesAtInterrupt: number | undefined;
  child.stdout!.on('data', (chunk: Buffer) => {
    screen += chunk.toString();
  });
  let closed = false;
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  if (hold) {
    void (async () => {
      for (;;) {
        if (closed) return;
        const pid = existsSync(pauseFile) ? Number(readFileSync(pauseFile, 'utf8').split(' ')[2]) : 0;
        if (pid > 0 && isStopped(pid)) {
          await new Promise((resolveHold) => setTimeout(resolveHold, hold.ms));
          if (hold.after === 'interrupt') {
            filesAtInterrupt = Number(readFileSync(pauseFile, 'utf8').split(' ')[1]);
            // Pending while the run is stopped, so it is the first thing the run sees when it goes on.
            process.kill(pid, 'SIGINT');
          }
          process.kill(pid, 'SIGCONT');
          child.kill('SIGCONT');
          return;
        }
        await new Promise((resolveTick) => setTimeout(resolveTick, 2));
      }
    })();
  }
  return new Promise((resolveRun, rejectRun) => {
    child.on('error', rejectRun);
    child.on('close', (exitCode) => {
      closed = true;
      clearTimeout(timer);
      resolveRun({ exitCode, screen, filesAtInterrupt });
    });
  });
}

/** The progress frames drawn on the terminal: every text that follows an erase and is not the final output. */
function frames(screen: string): string[] {
  return screen
    .split(ERASE)
    .slice(1)
    .map((frame) => frame.replace(/\^C$/, ''))
    .filter((frame) => /^\[[\d:]+] (checking|verifying|copying|finishing)\b/.test(frame));
}

let root: string;
let source: string;
let small: string;
beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'statesnap-progress-cli-'));
  // Big enough to take a few seconds with one thread: many frames, an ETA, a rate.
  source = (await generateStore(join(root, 'store'), { profile: 'tiny-files', scale: 0.01 })).root;
  // Enough for a frame or two: where the test is that nothing is drawn.
  small = (await generateStore(join(root, 'small'), { profile: 'tiny-files', scale: 0.002 })).root;
});
afterAll(() => rmSync(root, { recursive: true, force: true }), 300_000);

describe('on a terminal', () => {
  beforeEach((ctx) => requireDependency(ctx, NO_PTY));

  it('backup draws percent, ETA, elapsed and files/s on one line, then erases it before the summary', async () => {
    const dest = join(root, 'tty-backup');
    const run = await runInPty(['backup', '--no-sync', '--threads', '1', source, dest], {
      pauseAt: 'copying:1000',
      ms: 1000,
      after: 'resume',
    });
    expect(run.exitCode, run.screen).toBe(0);
    const drawn = frames(run.screen);
    expect(drawn.length).toBeGreaterThan(3);
    for (const frame of drawn) expect(frame.length).toBeLessThan(80);
    const copying = drawn.filter((frame) => / copying /.test(frame));
    // Elapsed time, a percentage, an ETA, an estimated total (~) and a rate, well before the copy ends.
    const full = copying.filter((frame) =>
      /^\[0:\d\d] copying \d+% {2}ETA 0:\d\d {2}[\d,]+\/~[\d,]+ files {2}[\d.]+ [KM]?i?B {2}[\d,]+ files\/s$/.test(
        frame,
      ),
    );
    expect(full.length, drawn.join('\n')).toBeGreaterThan(0);
    const firstWithEta = copying.findIndex((frame) => frame.includes('ETA'));
    expect(Number(/(\d+)%/.exec(copying[firstWithEta]!)?.[1])).toBeLessThan(60);
    // The summary starts on an erased line: no frame text is left in front of it.
    expect(run.screen).toContain(`${ERASE}backup ${dest}: 10,000 files`);
  });

  it('restore and verify draw their phases too', async () => {
    const backupDir = join(root, 'tty-backup');
    const restored = await runInPty([
      'restore',
      '--no-sync',
      '--threads',
      '1',
      backupDir,
      join(root, 'tty-restored'),
    ]);
    expect(restored.exitCode, restored.screen).toBe(0);
    expect(frames(restored.screen).some((frame) => / copying \d+%/.test(frame))).toBe(true);
    const verified = await runInPty(['verify', '--threads', '1', backupDir]);
    expect(verified.exitCode, verified.screen).toBe(0);
    expect(frames(verified.screen).some((frame) => / verifying \d+%/.test(frame))).toBe(true);
    expect(verified.screen).toContain(`${ERASE}backup ${backupDir} OK`);
  });

  it('Ctrl-C erases the progress line before the error, and the run exits 130 leaving no backup', async () => {
    const dest = join(root, 'interrupted');
    const run = await runInPty(['backup', '--no-sync', '--threads', '1', source, dest], {
      pauseAt: 'copying:5000',
      ms: 0,
      after: 'interrupt',
    });
    expect(run.exitCode, run.screen).toBe(130);
    expect(run.screen).toMatch(/\r\x1b\[Kstatesnap: error: operation interrupted \[ERR_ABORTED]\r\n$/);
    // Frames drawn before the stop may reach the screen after it (the terminal holds them while the run is
    // stopped), so what is checked is their content: none counts a file copied after the interrupt.
    expect(run.filesAtInterrupt).toBeGreaterThan(0);
    for (const frame of frames(run.screen)) {
      const done = Number(/ ([\d,]+)\/~?[\d,]+ files/.exec(frame)?.[1]?.replaceAll(',', ''));
      expect(done, frame).toBeLessThanOrEqual(run.filesAtInterrupt!);
    }
    expect(spawnSync('ls', [root]).stdout.toString()).not.toContain('interrupted');
  });

  it('--no-progress, --quiet and --json draw nothing (the same run without them draws)', async () => {
    for (const [i, flags] of [
      [],
      ['--no-progress'],
      ['--quiet'],
      ['--json'],
      ['--json', '--progress'],
    ].entries()) {
      const run = await runInPty([
        'backup',
        '--no-sync',
        '--threads',
        '1',
        ...flags,
        small,
        join(root, `flags-${i}`),
      ]);
      expect(run.exitCode, run.screen).toBe(0);
      const drawn = frames(run.screen).length;
      if (flags.length === 0 || flags.includes('--progress'))
        expect(drawn, flags.join(' ')).toBeGreaterThan(0);
      else expect(drawn, flags.join(' ')).toBe(0);
    }
  });
});

describe('when stderr is not a terminal', () => {
  it('nothing but the summary by default', async () => {
    const run = await runCli(['backup', '--no-sync', small, join(root, 'plain-0')]);
    expect(run.exitCode).toBe(0);
    expect(run.stderr).toBe('');
  });

  it('--progress writes plain lines (a CI log): one per phase and one every few seconds, no escapes', async () => {
    const run = await runCli(['backup', '--no-sync', '--progress', '--json', small, join(root, 'plain-1')]);
    expect(run.exitCode).toBe(0);
    JSON.parse(run.stdout);
    const lines = run.stderr.split('\n').filter((line) => line !== '');
    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const line of lines)
      expect(line).toMatch(/^statesnap: progress: \[[\d:]+] (copying|finishing) [ -~]+$/);
    expect(lines.at(-1)).toMatch(/^statesnap: progress: \[[\d:]+] finishing 100% /);
  });
});
