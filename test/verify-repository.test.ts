// verify of a whole snapshot repository (each shared inode read once, a tampered shared file reported in every
// snapshot that has it) and verify --new-only (only what a snapshot copied is read); counts from the results.

import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { snapshot, verify, verifyRepository } from '../dist/src/index.js';
import { cleanup, runCli, tempDir } from './helpers/tree.js';

afterEach(cleanup);

const FILES = 20;

/** Three snapshots: all copied; one file renamed over (19 linked, 1 copied); nothing changed (20 linked). */
async function repositoryOfThree(): Promise<{ root: string; repo: string; ids: string[] }> {
  const root = tempDir('statesnap-verify-repo-');
  const store = join(root, 'store');
  const facts = join(store, 'facts');
  mkdirSync(facts, { recursive: true });
  for (let i = 0; i < FILES; i++)
    writeFileSync(join(facts, `f${String(i).padStart(2, '0')}.json`), `{"n":${i}}`);
  const repo = join(root, 'repo');
  const ids: string[] = [];
  const take = async (iso: string) =>
    ids.push((await snapshot({ source: store, repository: repo, now: new Date(iso), sync: false })).id);
  await take('2026-11-28T02:00:00Z');
  writeFileSync(join(facts, 'f00.json.new'), '{"n":"zero"}');
  renameSync(join(facts, 'f00.json.new'), join(facts, 'f00.json'));
  await take('2026-11-29T02:00:00Z');
  await take('2026-11-30T02:00:00Z');
  return { root, repo, ids };
}

describe('verify a repository', () => {
  it('reads each distinct inode once across the snapshots that share it', async () => {
    const { repo, ids } = await repositoryOfThree();
    const result = await verifyRepository({ repository: repo });
    expect(result.ok).toBe(true);
    expect(result.snapshots.map((s) => [s.id, s.ok, s.files, s.filesNotRead])).toEqual([
      [ids[0], true, FILES, 0],
      [ids[1], true, 1, FILES - 1],
      [ids[2], true, 0, FILES],
    ]);
    // 20 inodes of the first snapshot and the one copy the second made: 21 reads for 60 names.
    expect(result.filesRead).toBe(FILES + 1);
    expect(result.filesShared).toBe(2 * FILES - 1);
    // Each snapshot alone still reads all of its files.
    expect((await verify({ backup: join(repo, ids[2]!) })).files).toBe(FILES);
  }, 60_000);

  it('reports a tampered shared file in every snapshot that has it, still reading it once', async () => {
    const { repo, ids } = await repositoryOfThree();
    // Same size, other bytes, written through the one inode all three snapshots share.
    writeFileSync(join(repo, ids[1]!, 'facts/f05.json'), '{"n":9}');
    // A file of the second snapshot only (copied there, linked into the third): its size changed.
    truncateSync(join(repo, ids[1]!, 'facts/f00.json'), 3);
    const result = await verifyRepository({ repository: repo });
    expect(result.ok).toBe(false);
    expect(result.exitCode).toBe(1);
    const problems = result.snapshots.map((s) =>
      s.problems.list.map((p) => `${p.problem} ${p.path.slice(repo.length + 1)}`).sort(),
    );
    expect(problems).toEqual([
      [`corrupt ${ids[0]}/facts/f05.json`],
      [`corrupt ${ids[1]}/facts/f00.json`, `corrupt ${ids[1]}/facts/f05.json`],
      [`corrupt ${ids[2]}/facts/f00.json`, `corrupt ${ids[2]}/facts/f05.json`],
    ]);
    expect(result.filesRead).toBe(FILES + 1);
  }, 60_000);

  it('--new-only reads only what a snapshot copied; a linked file is checked by lstat', async () => {
    const { repo, ids } = await repositoryOfThree();
    expect(await verify({ backup: join(repo, ids[1]!), newOnly: true })).toMatchObject({
      ok: true,
      files: 1,
      filesNotRead: FILES - 1,
    });
    expect(await verify({ backup: join(repo, 'latest'), newOnly: true })).toMatchObject({
      ok: true,
      files: 0,
      filesNotRead: FILES,
    });
    // What an lstat shows is still caught in a linked file; content is the full verify's.
    truncateSync(join(repo, ids[2]!, 'facts/f07.json'), 1);
    const checked = await verify({ backup: join(repo, ids[2]!), newOnly: true });
    expect(checked.ok).toBe(false);
    expect(checked.problems.list.map((p) => p.problem)).toEqual(['corrupt']);
  }, 60_000);

  it('--new-only still reads a linked file whose index records another hash than the read of its inode', async () => {
    const { repo, ids } = await repositoryOfThree();
    // The last snapshot's index lies about a file it linked (the same inode the older ones read), and its
    // manifest is resealed over the lie, so only the shared inode's read can tell.
    const snap = join(repo, ids[2]!);
    const indexPath = join(snap, '.statesnap/index.jsonl');
    const lines = readFileSync(indexPath, 'utf8').split('\n');
    const at = lines.findIndex((line) => line.includes('"facts/f07.json"'));
    const entry = JSON.parse(lines[at]!) as { sha256: string; linked?: boolean };
    expect(entry.linked).toBe(true);
    entry.sha256 = createHash('sha256').update('not the content').digest('hex');
    lines[at] = JSON.stringify(entry);
    writeFileSync(indexPath, lines.join('\n'));
    const manifestPath = join(snap, 'manifest.json');
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
    manifest.statesnap.index.sha256 = createHash('sha256').update(readFileSync(indexPath)).digest('hex');
    writeFileSync(manifestPath, JSON.stringify(manifest));
    for (const newOnly of [false, true]) {
      const result = await verifyRepository({ repository: repo, newOnly });
      expect(result.ok, `newOnly ${newOnly}`).toBe(false);
      expect(result.snapshots.map((s) => s.problems.list.map((p) => p.problem))).toEqual([
        [],
        [],
        ['corrupt'],
      ]);
    }
  }, 60_000);

  it('reports a snapshot whose manifest is damaged, never leaving it out of the verdict', async () => {
    const { repo, ids } = await repositoryOfThree();
    truncateSync(join(repo, ids[1]!, 'manifest.json'), 100);
    const result = await verifyRepository({ repository: repo });
    expect(result.ok).toBe(false);
    expect(result.exitCode).toBe(1);
    expect(result.snapshots.map((s) => [s.id, s.ok, s.problems.list.map((p) => p.problem)])).toEqual([
      [ids[0], true, []],
      [ids[1], false, ['manifest']],
      [ids[2], true, []],
    ]);
    const run = await runCli(['verify', repo]);
    expect(run.exitCode).toBe(1);
    expect(run.stdout).toContain(`${ids[1]} FAILED: 1 problem`);
    expect(run.stdout).toContain(join(repo, ids[1]!));
  }, 60_000);

  it('prints a problem whose path holds a newline on its one line, escaped, in both verify forms', async () => {
    const { root, repo } = await repositoryOfThree();
    const store = join(root, 'store');
    writeFileSync(join(store, 'facts', 'z\n  2026 OK'), 'one');
    const id = (await snapshot({ source: store, repository: repo, sync: false })).id;
    writeFileSync(join(repo, id, 'facts', 'z\n  2026 OK'), 'two');
    for (const path of [repo, join(repo, id)]) {
      const run = await runCli(['verify', path]);
      expect(run.exitCode).toBe(1);
      const problems = run.stdout.split('\n').filter((line) => line.includes('content hash'));
      expect(problems).toHaveLength(1);
      expect(problems[0]).toContain('z\\n  2026 OK: content hash');
      expect(run.stdout).not.toMatch(/^ {2}2026 OK/m);
    }
  }, 60_000);

  it('from the CLI: a repository path verifies every snapshot; --json carries each verdict', async () => {
    const { repo, ids } = await repositoryOfThree();
    const text = await runCli(['verify', repo]);
    expect(text.exitCode, text.stderr).toBe(0);
    expect(text.stdout).toContain(`repository ${repo} OK: 3 snapshots; ${FILES + 1} files read`);
    writeFileSync(join(repo, ids[0]!, 'facts/f03.json'), '{"n":8}');
    const json = await runCli(['verify', '--json', repo]);
    expect(json.exitCode).toBe(1);
    const result = JSON.parse(json.stdout);
    expect(result.snapshots.map((s: { ok: boolean }) => s.ok)).toEqual([false, false, false]);
    expect(
      readdirSync(repo)
        .filter((name) => name.startsWith('2026'))
        .sort(),
    ).toEqual(ids);
  }, 60_000);
});
