// `backup --dry-run --link-dest`: the change rule run over the source without reading or writing a file, so
// the plan says how many files a real run would link, copy, or read to decide, and the real run agrees.

import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { backup } from '../dist/src/index.js';
import { cleanup, runCli, tempDir } from './helpers/tree.js';

afterEach(cleanup);

// Files written less than this before the previous backup started are racy (read to decide).
const RACY_MARGIN_MS = 2_100;

describe('backup --dry-run --link-dest', () => {
  it('counts what would be linked, copied and read first; the real run then links and copies exactly that', async () => {
    const root = tempDir('statesnap-link-plan-');
    const store = join(root, 'store');
    mkdirSync(join(store, 'facts'), { recursive: true });
    for (let i = 0; i < 50; i++) writeFileSync(join(store, 'facts', `f${i}.json`), `{"n":${i}}`);
    await new Promise((wake) => setTimeout(wake, RACY_MARGIN_MS));
    const previous = join(root, 'previous');
    await backup({ source: store, dest: previous, sync: false });
    writeFileSync(join(store, 'facts/f0.json'), '{"n":"zero, longer"}'); // changed
    writeFileSync(join(store, 'facts/new.json'), '{"n":"new"}'); // added
    rmSync(join(store, 'facts/f1.json')); // removed

    const dest = join(root, 'next');
    const plan = await backup({ source: store, dest, linkDest: previous, dryRun: true });
    expect(plan.linkPlan).toEqual({ link: 48, hashThenLink: 0, copy: 2, removedSinceLinkSource: 1 });
    expect(readdirSync(root).sort()).toEqual(['previous', 'store']);
    const checksum = await backup({ source: store, dest, linkDest: previous, dryRun: true, checksum: true });
    expect(checksum.linkPlan).toEqual({ link: 0, hashThenLink: 48, copy: 2, removedSinceLinkSource: 1 });
    expect((await backup({ source: store, dest, dryRun: true })).linkPlan).toBeNull();

    const made = await backup({ source: store, dest, linkDest: previous, sync: false });
    expect(made.counts).toMatchObject({ linked: 48, copied: 2, removedSinceLinkSource: 1 });

    const text = await runCli(['backup', '--dry-run', '--link-dest', previous, store, join(root, 'again')]);
    expect(text.exitCode, text.stderr).toBe(0);
    expect(text.stdout).toContain('would link 48 unchanged, copy 2, and read 0 to link if unchanged');
  }, 60_000);
});
