// Long but legal names: a destination or target named with 200-255 bytes (the most a file name may hold) works
// through backup, --force, restore, its rollback copy, recover and a kill -9 at any point. The names statesnap
// makes beside it (partial, replaced, staging, journal, rollback copy) always fit, and are found again.

import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateStore } from '../dist/src/demo/generator.js';
import { sleep, waitFor } from './helpers/backup.js';
import { fingerprint } from './helpers/restore.js';
import { type CliRun, cleanup, createTree, file, runCli, startCli, tempDir } from './helpers/tree.js';

// With whether a run of each kind is also killed and recovered from (the slow part: two names suffice).
const NAMES: Array<[string, string, boolean]> = [
  ['200 bytes', 'n'.repeat(200), false],
  ['219 bytes', 'n'.repeat(219), false],
  ['236 bytes', 'n'.repeat(236), true],
  ['255 bytes', 'n'.repeat(255), false],
  ['255 bytes of 3-byte characters', '€'.repeat(85), true],
];

// 10,000 tiny files: a run takes long enough that a kill lands in the middle of it.
let bigStore: string;
beforeAll(async () => {
  bigStore = join(mkdtempSync(join(tmpdir(), 'statesnap-long-names-')), 'store');
  await generateStore(bigStore, { profile: 'tiny-files', scale: 0.01 });
}, 120_000);
afterAll(() => rmSync(join(bigStore, '..'), { recursive: true, force: true }), 120_000);
afterEach(cleanup, 120_000);

function expectOk(run: CliRun, what: string): void {
  expect(run.stderr, what).not.toMatch(/internal error|ERR_INTERNAL|ENAMETOOLONG/);
  expect(run.exitCode, `${what}: ${run.stderr}`).toBe(0);
}

/** What is in `root` besides `known`: the siblings statesnap left there. */
function leftovers(root: string, known: readonly string[]): string[] {
  return readdirSync(root).filter((name) => !known.includes(name));
}

async function smallStore(root: string): Promise<string> {
  const source = join(root, 'store');
  await createTree(source, {
    seeds: { 'a.json': file('{"a":1}') },
    memory: { facts: { 'f.json': file('f') } },
  });
  return source;
}

describe.each(NAMES)('a name of %s', (_label, name, killed) => {
  it(`as a backup destination: backup, backup --force${killed ? ', the next run after a kill -9' : ''}`, async () => {
    const root = tempDir();
    const source = await smallStore(root);
    const dest = join(root, name);
    expectOk(await runCli(['backup', '--no-sync', source, dest]), 'backup');
    const forced = await runCli(['backup', '--force', '--json', '--no-sync', source, dest]);
    expectOk(forced, 'backup --force');
    expect(JSON.parse(forced.stdout)).toMatchObject({ dest, replacedExisting: true });
    expect(leftovers(root, ['store', name])).toEqual([]);
    if (!killed) return;

    const running = startCli(['backup', '--force', '--threads', '1', '--no-sync', bigStore, dest]);
    await waitFor(() => leftovers(root, ['store', name]).length > 0, 20_000, 'the partial');
    await sleep(150);
    running.child.kill('SIGKILL');
    await running.done;
    const [partial] = leftovers(root, ['store', name]);
    expect(Buffer.byteLength(partial!)).toBeLessThanOrEqual(255);
    const next = await runCli(['backup', '--force', '--json', '--no-sync', source, dest]);
    expectOk(next, 'the run after the kill');
    expect(JSON.parse(next.stdout).warnings.count).toBe(0);
    expect(leftovers(root, ['store', name])).toEqual([]);
  }, 120_000);

  it(`as a restore target: restore, again (rollback copy), --no-keep, recover${killed ? ', recover after a kill -9' : ''}`, async () => {
    const root = tempDir();
    const small = join(root, 'small');
    expectOk(await runCli(['backup', '--no-sync', await smallStore(root), small]), 'backup');
    const big = join(root, 'big');
    if (killed) expectOk(await runCli(['backup', '--no-sync', bigStore, big]), 'backup of the big store');
    const target = join(root, name);
    const known = ['store', 'small', 'big', name];

    expectOk(await runCli(['restore', '--no-sync', small, target]), 'restore');
    const again = await runCli(['restore', '--json', '--no-sync', small, target]);
    expectOk(again, 'restore again');
    const { rollback } = JSON.parse(again.stdout) as { rollback: string };
    expect(leftovers(root, known)).toEqual([basename(rollback)]);
    expect(fingerprint(rollback)).toEqual(fingerprint(target));
    expectOk(await runCli(['restore', '--no-keep', '--no-sync', small, target]), 'restore --no-keep');
    expect(leftovers(root, known)).toEqual([basename(rollback)]);
    rmSync(rollback, { recursive: true });
    const nothing = await runCli(['recover', target]);
    expectOk(nothing, 'recover');
    expect(nothing.stdout).toContain('nothing to recover');
    if (!killed) return;

    const running = startCli(['restore', '--threads', '1', '--no-sync', big, target]);
    await waitFor(() => leftovers(root, known).length > 0, 20_000, 'the staging tree');
    await sleep(150);
    running.child.kill('SIGKILL');
    await running.done;
    for (const left of leftovers(root, known)) expect(Buffer.byteLength(left)).toBeLessThanOrEqual(255);
    const recovered = await runCli(['recover', '--json', target]);
    expectOk(recovered, 'recover after the kill');
    expect(JSON.parse(recovered.stdout).actions.length).toBeGreaterThan(0);
    expect(leftovers(root, known).filter((left) => !left.includes('.pre-restore-'))).toEqual([]);
    expectOk(await runCli(['restore', '--no-sync', big, target]), 'restore after recovering');
    expect(fingerprint(target, { mtimes: false })).toEqual(fingerprint(bigStore, { mtimes: false }));
  }, 180_000);
});
