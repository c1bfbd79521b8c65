// The progress objects of the library: one shape for backup, restore and verify (operation, phase, done and
// total counts, whether the totals are final or estimated, elapsed time), the old backup fields kept as
// aliases, totals estimated long before the walk has found everything; and an abort that keeps its reason.

import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateStore } from '../dist/src/demo/generator.js';
import {
  type BackupProgress,
  backup,
  inspect,
  type OperationProgress,
  type RestoreProgress,
  recover,
  restore,
  type VerifyProgress,
  verify,
} from '../dist/src/index.js';
import { cleanup, tempDir } from './helpers/tree.js';

afterEach(cleanup);
afterAll(() => rmSync(storeDir, { recursive: true, force: true }));

let store: { root: string; files: number; tempFiles: number };
let storeDir: string;
beforeAll(async () => {
  // Shared by every test of the file: made here, removed after all (`cleanup` runs after each test).
  storeDir = mkdtempSync(join(tmpdir(), 'statesnap-progress-'));
  // Many small files in few folders: the walk is held back by the copy for most of the run.
  store = await generateStore(join(storeDir, 'store'), { profile: 'tiny-files', scale: 0.003 });
});

/** The invariants of every operation's reports: the common fields, monotone counts within a phase. */
function expectCommonShape(
  reports: ReadonlyArray<OperationProgress<string, string>>,
  operation: string,
): void {
  expect(reports.length).toBeGreaterThan(1);
  for (const [i, report] of reports.entries()) {
    expect(report).toMatchObject({ operation });
    for (const key of ['filesDone', 'bytesDone', 'filesTotal', 'bytesTotal', 'elapsedMs'] as const) {
      expect(Number.isInteger(report[key]), key).toBe(true);
    }
    expect(typeof report.totalKnown).toBe('boolean');
    if (report.totalKnown) expect(report.estimate).toBeNull();
    expect(report.filesDone).toBeLessThanOrEqual(report.filesTotal);
    const previous = reports[i - 1];
    if (previous === undefined) continue;
    expect(report.elapsedMs).toBeGreaterThanOrEqual(previous.elapsedMs);
    if (previous.phase === report.phase) expect(report.filesDone).toBeGreaterThanOrEqual(previous.filesDone);
  }
}

/** A backup of the shared store with one thread (the walk held back longest), and every report it made. */
async function backupReporting(estimate?: { files: number; bytes: number }) {
  const reports: BackupProgress[] = [];
  const result = await backup({
    source: store.root,
    dest: join(tempDir(), 'out'),
    sync: false,
    threads: 1,
    estimate,
    onProgress: (p) => reports.push(p),
  });
  return { reports, result };
}

describe('backup progress', () => {
  it('has the common shape, keeps the old fields as aliases, and ends final at the totals', async () => {
    const { reports, result } = await backupReporting();
    expectCommonShape(reports, 'backup');
    for (const report of reports) {
      expect(report.planningDone).toBe(report.totalKnown);
      expect(report.filesPlanned).toBeLessThanOrEqual(report.filesTotal);
    }
    expect(reports.at(-1)).toMatchObject({
      phase: 'finishing',
      filesDone: result.files,
      filesTotal: result.files,
      bytesTotal: result.bytes,
      filesPlanned: result.files,
      bytesPlanned: result.bytes,
      totalKnown: true,
      planningDone: true,
      estimate: null,
    });
  });

  it('counts the source ahead of the copy: the total is right long before the walk has found everything', async () => {
    const { reports, result } = await backupReporting();
    const counted = reports.filter((p) => p.estimate === 'counted');
    expect(counted.length).toBeGreaterThan(0);
    for (const report of counted) {
      expect(report.totalKnown).toBe(false);
      expect(report.filesTotal).toBe(result.files);
      expect(report.filesPlanned).toBeLessThan(result.files);
    }
    // Most of the run had the estimate, not the lower bound the walk alone gives.
    const beforeFinal = reports.filter((p) => !p.totalKnown);
    expect(counted.length).toBeGreaterThan(beforeFinal.length / 2);
  });

  it("reports the caller's estimate (e.g. a previous backup's totals) until the walk has found everything", async () => {
    const estimate = { files: store.files * 2, bytes: 123_456_789 };
    const { reports } = await backupReporting(estimate);
    const early = reports.filter((p) => !p.totalKnown);
    expect(early.length).toBeGreaterThan(0);
    for (const report of early) {
      expect(report).toMatchObject({
        estimate: 'given',
        filesTotal: estimate.files,
        bytesTotal: estimate.bytes,
      });
    }
  });

  it('a bad estimate is refused before any I/O', async () => {
    const root = tempDir();
    await expect(
      backup({ source: store.root, dest: join(root, 'out'), estimate: { files: -1, bytes: 0 } }),
    ).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
    expect(readdirSync(root)).toEqual([]);
  });
});

describe('restore and verify progress', () => {
  let backupDir: string;
  beforeAll(async () => {
    backupDir = join(storeDir, 'backup');
    await backup({ source: store.root, dest: backupDir, sync: false });
  });

  it('restore: checking, copying, finishing, with final totals from the index', async () => {
    const reports: RestoreProgress[] = [];
    const result = await restore({
      backup: backupDir,
      target: join(tempDir(), 'restored'),
      sync: false,
      onProgress: (p) => reports.push(p),
    });
    expectCommonShape(reports, 'restore');
    expect([...new Set(reports.map((p) => p.phase))]).toEqual(['checking', 'copying', 'finishing']);
    for (const report of reports) {
      expect(report).toMatchObject({ totalKnown: true, filesTotal: result.files, bytesTotal: result.bytes });
    }
  });

  it('verify: checking (the tree listed), then verifying, with final totals from the manifest', async () => {
    const reports: VerifyProgress[] = [];
    const result = await verify({ backup: backupDir, onProgress: (p) => reports.push(p) });
    expectCommonShape(reports, 'verify');
    expect([...new Set(reports.map((p) => p.phase))]).toEqual(['checking', 'verifying']);
    expect(reports.at(-1)).toMatchObject({ phase: 'verifying', filesDone: result.files, totalKnown: true });
  });
});

describe('an abort keeps the caller’s reason', () => {
  it('error.cause is the signal’s reason, for every operation, before and during the run', async () => {
    const root = tempDir();
    const backupDir = join(root, 'backup');
    await backup({ source: store.root, dest: backupDir, sync: false });
    const operations: Record<string, (signal: AbortSignal) => Promise<unknown>> = {
      backup: (signal) => backup({ source: store.root, dest: join(root, 'b2'), sync: false, signal }),
      restore: (signal) => restore({ backup: backupDir, target: join(root, 'r'), sync: false, signal }),
      verify: (signal) => verify({ backup: backupDir, signal }),
      inspect: (signal) => inspect({ backup: backupDir, signal }),
      recover: (signal) => recover({ target: join(root, 'r'), signal }),
    };
    for (const [name, run] of Object.entries(operations)) {
      const reason = new Error(`stop ${name}`);
      await expect(run(AbortSignal.abort(reason)), name).rejects.toMatchObject({
        code: 'ERR_ABORTED',
        cause: reason,
      });
    }
    // Midway: aborted from the first progress report, while files are being copied or read.
    const midway: Record<string, (signal: AbortSignal, onProgress: () => void) => Promise<unknown>> = {
      backup: (signal, onProgress) =>
        backup({ source: store.root, dest: join(root, 'b3'), sync: false, signal, onProgress }),
      restore: (signal, onProgress) =>
        restore({ backup: backupDir, target: join(root, 'r2'), sync: false, signal, onProgress }),
      verify: (signal, onProgress) => verify({ backup: backupDir, signal, onProgress }),
    };
    for (const [name, run] of Object.entries(midway)) {
      const controller = new AbortController();
      const reason = new Error(`stop ${name} midway`);
      const error = await run(controller.signal, () => controller.abort(reason)).then(
        () => null,
        (caught: unknown) => caught,
      );
      expect(error, name).toMatchObject({ code: 'ERR_ABORTED' });
      expect((error as Error).cause, name).toBe(reason);
    }
  });
});
