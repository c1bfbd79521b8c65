// What a command loads before it does its work (start-up is most of a small backup's time): the real built CLI
// run with a module hook that lists every file it loads, never a timing.

import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, cleanup, createTree, file, tempDir } from './helpers/tree.js';

afterEach(cleanup);

/** Runs the CLI with `args` and returns its exit code and every file: URL it loaded (the hook's lines). */
function loadedBy(args: readonly string[]): { exitCode: number | null; loaded: string[]; stderr: string } {
  const dir = tempDir('statesnap-startup-');
  const log = join(dir, 'loaded.txt');
  writeFileSync(
    join(dir, 'hooks.mjs'),
    `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  if (url.startsWith('file:')) appendFileSync(${JSON.stringify(log)}, url + '\\n');
  return next(url, context);
}
`,
  );
  writeFileSync(
    join(dir, 'register.mjs'),
    `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)});\n`,
  );
  writeFileSync(log, '');
  const run = spawnSync(process.execPath, ['--import', join(dir, 'register.mjs'), CLI, ...args], {
    encoding: 'utf8',
  });
  const loaded = spawnSync('cat', [log], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter((line) => line !== '');
  return { exitCode: run.status, loaded, stderr: run.stderr };
}

/** Loaded files that match any of `patterns`. */
function loadedMatching(loaded: readonly string[], patterns: readonly RegExp[]): string[] {
  return loaded.filter((url) => patterns.some((pattern) => pattern.test(url)));
}

const OTHER_COMMANDS =
  /\/dist\/src\/cli\/commands\/(restore|verify|inspect|recover|demo|generate|bench)\.js$/;

describe('start-up: a command loads what it uses', () => {
  it('backup loads no other command, no restore/read/demo code, no bench suite and no zod', async () => {
    const root = tempDir();
    await createTree(join(root, 'src'), { 'fact.json': file('{"a":1}') });
    const run = loadedBy(['backup', join(root, 'src'), join(root, 'dest'), '--quiet']);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(
      loadedMatching(run.loaded, [/\/dist\/src\/backup\/backup\.js$/, /\/workers\/file-worker\.js$/]),
    ).toHaveLength(2);
    expect(
      loadedMatching(run.loaded, [
        OTHER_COMMANDS,
        /\/dist\/src\/(restore|read|demo|snapshot)\//,
        /\/dist\/bench\//,
        /\/node_modules\/(zod|tinybench)\//,
      ]),
    ).toEqual([]);
  });

  it('--version loads no command, no operation and no command-line parser', () => {
    const run = loadedBy(['--version']);
    expect(run.exitCode).toBe(0);
    expect(
      loadedMatching(run.loaded, [
        /\/dist\/src\/cli\/commands\/(backup|restore|verify|inspect|recover|demo|generate|bench)\.js$/,
        /\/dist\/src\/(backup|restore|read|demo|format)\//,
        /\/node_modules\/(zod|piscina|clipanion)\//,
      ]),
    ).toEqual([]);
  });

  it('the overview still lists every command (it loads them all)', () => {
    const run = spawnSync(process.execPath, [CLI, '--help'], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    for (const name of ['backup', 'restore', 'verify', 'inspect', 'recover', 'demo', 'generate', 'bench']) {
      expect(run.stdout).toMatch(new RegExp(`^\\s+${name}\\b`, 'm'));
    }
  });
});
