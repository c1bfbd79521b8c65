import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, createTree, dir, file, runCli, symlink, tempDir } from './helpers/tree.js';

afterEach(cleanup);

describe('statesnap CLI', () => {
  it('prints help with examples for every command', async () => {
    for (const command of ['backup', 'restore', 'verify', 'recover', 'inspect', 'demo']) {
      const run = await runCli([command, '--help']);
      expect(run.exitCode).toBe(0);
      expect(run.stdout).toContain('Examples');
    }
  });

  it('exits 2 with the usage on stderr for a parse error, stdout empty', async () => {
    const run = await runCli(['backup', 'only-one-arg']);
    expect(run).toMatchObject({ exitCode: 2, stdout: '' });
    expect(run.stderr).toContain('Not enough positional arguments');
  });

  it('--json prints exactly one JSON document matching the manifest totals', async () => {
    const root = tempDir();
    await createTree(join(root, 'src'), {
      seeds: { 'a.json': file('{"a":1}'), 'b.md': file('# b'), 'link.json': symlink('a.json') },
      memory: { facts: { 'f.json': file('{}') }, empty: dir() },
    });
    const run = await runCli(['backup', '--json', join(root, 'src'), join(root, 'out')]);
    expect(run.exitCode).toBe(0);
    const result = JSON.parse(run.stdout);
    const manifest = JSON.parse(readFileSync(join(root, 'out', 'manifest.json'), 'utf8'));
    expect(result.files).toBe(3);
    expect(manifest.statesnap.totals).toEqual({
      files: result.files,
      dirs: result.dirs,
      bytes: result.bytes,
    });
    expect(manifest.sections).toEqual([
      { name: 'seeds', entry_count: 3 },
      { name: 'memory/facts', entry_count: 1 },
    ]);
    expect(result.skipped.symlink).toBe(1);
  });
});
