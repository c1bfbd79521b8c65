// `<repo>/latest` in the library: every function that opens a backup (restore, verify, inspect, diff, and
// backup's linkDest) takes it for the newest complete snapshot, found from the listing, never from the symlink.

import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { backup, diff, inspect, restore, snapshot, verify } from '../dist/src/index.js';
import { cleanup, createTree, dir, file, fingerprintTree, tempDir } from './helpers/tree.js';

afterEach(cleanup);

describe('<repo>/latest in the library', () => {
  it('names the newest complete snapshot for restore, verify, inspect, diff and linkDest, whatever the symlink says', async () => {
    const root = tempDir('statesnap-latest-');
    const store = join(root, 'store');
    await createTree(store, { memory: dir({ 'a.json': file('{"a":1}') }) });
    const repo = join(root, 'repo');
    const first = await snapshot({
      source: store,
      repository: repo,
      now: new Date('2026-11-29T02:00:00Z'),
      sync: false,
    });
    writeFileSync(join(store, 'memory/b.json'), '{"b":2}');
    const second = await snapshot({
      source: store,
      repository: repo,
      now: new Date('2026-11-30T02:00:00Z'),
      sync: false,
    });
    // A stale, hand-edited link: statesnap never follows it.
    rmSync(join(repo, 'latest'));
    symlinkSync(first.id, join(repo, 'latest'));
    const latest = join(repo, 'latest');
    const secondPath = join(repo, second.id);

    expect((await inspect({ backup: latest })).backup).toBe(secondPath);
    const checked = await verify({ backup: latest });
    expect(checked).toMatchObject({ ok: true, backup: secondPath, files: 2 });
    const target = join(root, 'restored');
    expect((await restore({ backup: latest, target, sync: false })).backup).toBe(secondPath);
    expect(Object.keys(fingerprintTree(target))).toEqual(['memory', 'memory/a.json', 'memory/b.json']);
    const changes = await diff({ a: join(repo, first.id), b: latest });
    expect(changes.entries.map((entry) => `${entry.change} ${entry.path}`)).toEqual(['added memory/b.json']);
    const linked = await backup({ source: store, dest: join(root, 'linked'), linkDest: latest, sync: false });
    expect(linked.linkSource?.path).toBe(secondPath);
  }, 60_000);

  it('refuses <repo>/latest of a repository without a complete snapshot, and leaves a plain folder named latest alone', async () => {
    const root = tempDir('statesnap-latest-');
    const repo = join(root, 'repo');
    mkdirSync(repo);
    writeFileSync(join(repo, '.statesnap-repository'), '{"statesnap_repository":1}\n');
    await expect(verify({ backup: join(repo, 'latest') })).rejects.toMatchObject({
      code: 'ERR_SNAPSHOT_NOT_FOUND',
    });
    await expect(restore({ backup: join(repo, 'latest'), target: join(root, 't') })).rejects.toMatchObject({
      code: 'ERR_SNAPSHOT_NOT_FOUND',
    });
    // Outside a repository, `latest` is just a name.
    const store = join(root, 'store');
    await createTree(store, { 'x.md': file('x') });
    mkdirSync(join(root, 'plain'));
    await backup({ source: store, dest: join(root, 'plain', 'latest'), sync: false });
    expect((await inspect({ backup: join(root, 'plain', 'latest') })).files).toBe(1);
  }, 60_000);
});
