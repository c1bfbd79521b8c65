// verify: every file re-read and compared with the index (size and sha256), the tree walked for what the
// index does not list, manifest problems reported; exit 0 only when everything matches, else 1 with the list.

import {
  mkdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { backup, verify } from '../dist/src/index.js';
import { writeOxiosManifest } from './helpers/restore.js';
import { cleanup, createTree, dir, file, runCli, symlink, tempDir } from './helpers/tree.js';

afterEach(cleanup);

async function madeBackup(): Promise<string> {
  const root = tempDir();
  await createTree(join(root, 'store'), {
    seeds: { 'a.json': file('{"a":1}'), 'b.md': file('# b'), 'c.json': file('{"c":3}') },
    memory: {
      facts: { 'f.json': file('{"f":1}'), 'big.json': file(Buffer.alloc(2 * 1024 * 1024 + 3, 'x')) },
      empty: dir(),
    },
    'link.json': symlink('seeds/a.json'),
  });
  const backupDir = join(root, 'backup');
  await backup({ source: join(root, 'store'), dest: backupDir });
  return backupDir;
}

describe('verify', () => {
  it('a backup as it was made: OK, exit 0, every file counted', async () => {
    const backupDir = await madeBackup();
    const seen: number[] = [];
    const result = await verify({ backup: backupDir, onProgress: (p) => seen.push(p.filesDone) });
    expect(result).toMatchObject({
      command: 'verify',
      kind: 'statesnap',
      hashesChecked: true,
      hashAlgorithm: 'sha256',
      files: 5,
      dirs: 4,
      bytes: 2 * 1024 * 1024 + 3 + 7 + 3 + 7 + 7,
      skipped: 1,
      ok: true,
      problems: { count: 0 },
      exitCode: 0,
    });
    expect(seen.at(-1)).toBe(5);
    const run = await runCli(['verify', backupDir]);
    expect(run).toMatchObject({ exitCode: 0, stderr: '' });
    expect(run.stdout).toContain('OK');
  });

  it('reports every problem, not only the first: corrupt, truncated, missing, extra; exit 1 with the list', async () => {
    const backupDir = await madeBackup();
    const at = (rel: string) => join(backupDir, rel);
    const big = readFileSync(at('memory/facts/big.json'));
    big[big.length - 1]! ^= 0x20;
    writeFileSync(at('memory/facts/big.json'), big);
    truncateSync(at('seeds/b.md'), 1);
    unlinkSync(at('seeds/c.json'));
    rmSync(at('memory/empty'), { recursive: true });
    unlinkSync(at('memory/facts/f.json'));
    mkdirSync(at('memory/facts/f.json'));
    writeFileSync(at('memory/facts/planted.json'), 'planted');
    symlinkSync('/etc/passwd', at('seeds/evil.json'));
    const run = await runCli(['verify', '--json', backupDir]);
    expect(run.exitCode).toBe(1);
    const result = JSON.parse(run.stdout);
    expect(result.ok).toBe(false);
    expect(
      result.problems.list.map((p: { problem: string; path: string }) => `${p.problem} ${p.path}`).sort(),
    ).toEqual(
      [
        `corrupt ${at('memory/facts/big.json')}`,
        `corrupt ${at('memory/facts/f.json')}`,
        `corrupt ${at('seeds/b.md')}`,
        `extra ${at('memory/facts/planted.json')}`,
        `extra ${at('seeds/evil.json')}`,
        `missing ${at('memory/empty')}`,
        `missing ${at('seeds/c.json')}`,
      ].sort(),
    );
    expect(result.problems.byProblem).toEqual({ corrupt: 3, extra: 2, missing: 2 });
    const human = await runCli(['verify', backupDir]);
    expect(human.exitCode).toBe(1);
    expect(human.stdout).toContain('FAILED: 7 problems');
    expect(human.stdout).toContain(`corrupt    ${at('memory/facts/big.json')}: content hash`);
  });

  it('an edited index is a manifest problem (its sha256 no longer matches)', async () => {
    const backupDir = await madeBackup();
    const path = join(backupDir, '.statesnap', 'index.jsonl');
    writeFileSync(path, readFileSync(path, 'utf8').replace('"mode":420', '"mode":438'));
    const result = await verify({ backup: backupDir });
    expect(result.exitCode).toBe(1);
    expect(result.problems.list).toEqual([
      expect.objectContaining({ problem: 'manifest', path, message: expect.stringContaining('sha256') }),
    ]);
  });

  it('an unreadable manifest (version 2, truncated JSON, missing) is reported with exit 1, not thrown', async () => {
    const backupDir = await madeBackup();
    const path = join(backupDir, 'manifest.json');
    const original = readFileSync(path, 'utf8');
    const cases: Array<[string, () => void]> = [
      ['version', () => writeFileSync(path, original.replace('"version": 1', '"version": 2'))],
      ['JSON', () => writeFileSync(path, original.slice(0, 40))],
      ['cannot read', () => unlinkSync(path)],
    ];
    for (const [words, damage] of cases) {
      damage();
      const run = await runCli(['verify', '--json', backupDir]);
      expect(run.exitCode).toBe(1);
      const result = JSON.parse(run.stdout);
      expect(result).toMatchObject({
        ok: false,
        kind: null,
        problems: { count: 1, byProblem: { manifest: 1 } },
      });
      expect(result.problems.list[0].message).toContain(words);
    }
  });

  it('an Oxios backup missing section entries: a note, not a problem (Oxios restores it); hashes unavailable', async () => {
    const root = tempDir();
    const backupDir = join(root, 'oxios');
    await createTree(backupDir, { seeds: { 'a.json': file('a'), 'b.json': file('b') } });
    writeOxiosManifest(backupDir, [{ name: 'seeds', entry_count: 3 }]);
    const result = await verify({ backup: backupDir });
    expect(result).toMatchObject({ kind: 'oxios', hashesChecked: false, files: 2, ok: true, exitCode: 0 });
    expect(result.notes).toEqual([
      expect.objectContaining({ note: 'section-count', path: join(backupDir, 'seeds') }),
    ]);
  });
});
