// `statesnap completion bash`: the script, loaded into a real bash, completes commands, options and option
// values from the same declarations the parser reads.

import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { runCli } from './helpers/tree.js';

/** What the completion function offers for the words typed so far (the last one is being completed). */
function complete(script: string, words: readonly string[]): string[] {
  const quoted = words.map((word) => `'${word}'`).join(' ');
  const run = spawnSync(
    'bash',
    [
      '-c',
      `${script}\nCOMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; _statesnap; printf '%s\\n' "\${COMPREPLY[@]}"`,
    ],
    { encoding: 'utf8' },
  );
  expect(run.status, run.stderr).toBe(0);
  return run.stdout.split('\n').filter((line) => line !== '');
}

describe('completion bash', () => {
  it('completes commands, the options of each command, and option values that are one of a few words', async () => {
    const run = await runCli(['completion', 'bash']);
    expect(run).toMatchObject({ exitCode: 0, stderr: '' });
    const script = run.stdout;
    expect(complete(script, ['statesnap', 're'])).toEqual(['restore', 'recover']);
    expect(complete(script, ['statesnap', 'backup', '--ex'])).toEqual(['--exclude', '--exclude-from']);
    expect(complete(script, ['statesnap', 'restore', '--no-'])).toEqual([
      '--no-verify',
      '--no-keep',
      '--no-sync',
      '--no-progress',
    ]);
    expect(complete(script, ['statesnap', 'restore', '--mode', ''])).toEqual(['replace', 'merge']);
    expect(complete(script, ['statesnap', 'generate', '--profile', 't'])).toEqual(['tiny-files']);
    expect(complete(script, ['statesnap', 'help', 'ver'])).toEqual(['verify']);
  });

  it('refuses a shell it has no script for (exit 2)', async () => {
    const run = await runCli(['completion', 'fish']);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain('[ERR_USAGE]');
  });
});
