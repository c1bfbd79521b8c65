// What the suite measures: every case (statesnap's operations and the baselines) and whether it can run on this
// machine. statesnap cases run the real CLI as child processes, so their peak RSS and CPU time are theirs.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, renameSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { DEFAULT_EXCLUDES, planSource } from '../src/backup/planner.js';
import { CASE_IDS, type CaseId } from '../src/cli/bench-cases.js';
import { DEFAULT_RACY_MARGIN_NS } from '../src/core/change-rule.js';
import { ExcludeRules } from '../src/core/excludes.js';
import {
  cpA,
  cpAl,
  cpAParallelSync,
  duSb,
  loadFsExtraCopy,
  nodeCp,
  rsyncA,
  rsyncLinkDest,
  sequentialCopy,
  syncFilesystemOf,
  tarPipe,
  which,
} from './baselines.js';
import type { ProcessUsage } from './usage-probe.js';

/** Cases other cases' ratios are taken against, per kind of case. */
export const COPY_REFERENCES = [
  'cp-a',
  'cp-a-sync',
  'cp-a-parallel-sync',
  'fs-cp',
] as const satisfies readonly CaseId[];
export const WALK_REFERENCES = ['du-sb'] as const satisfies readonly CaseId[];
export type ReferenceId = (typeof COPY_REFERENCES)[number] | (typeof WALK_REFERENCES)[number];

/** One timed run of a case. */
export interface Iteration {
  source: string;
  /** A fresh directory of this iteration alone, removed (untimed) right after it. */
  dir: string;
  /** Where the case writes (inside `dir`); does not exist yet. */
  dest: string;
  /** For a case that reads a backup: the one the `statesnap` case made this round, if it ran. */
  backup: string | undefined;
}

/** Extra figures a case reports about one run (statesnap cases: read from the child process). */
export interface CaseOutput {
  rssKb?: number;
  userMs?: number;
  systemMs?: number;
  /** The operation's own durationMs: the wall time minus process start-up and module loading. */
  innerMs?: number;
  /** Files the operation copied (a backup's or snapshot's `counts.copied`). */
  filesCopied?: number;
}

export interface BenchCase {
  id: CaseId;
  label: string;
  /** `copy` cases write a copy of the store; `walk` cases only list it; `start-up` copies a one-file store. */
  kind: 'copy' | 'walk' | 'start-up';
  /** statesnap's own code: only these ratios can fail `--compare`. */
  subject: boolean;
  /** This case's dest is a backup that a `readsBackup` case may read later in the same round. */
  makesBackup?: boolean;
  readsBackup?: boolean;
  /** Untimed, before the timed run: e.g. making the backup a restore reads when no backup case ran. */
  prepare?: (iteration: Iteration) => Promise<void>;
  /** Untimed, after it: removing what the case wrote outside `dir` (objects in S3). */
  cleanup?: (iteration: Iteration) => Promise<void>;
  run: (iteration: Iteration) => Promise<CaseOutput | undefined>;
}

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const USAGE_PROBE = new URL('./usage-probe.js', import.meta.url).href;

/** What a statesnap command run by the suite reports: its own `--json` result, and what the process cost. */
interface CommandReport extends ProcessUsage {
  result: Record<string, unknown>;
}

/**
 * Runs `statesnap <args> --json --quiet` in a child process, with the usage probe preloaded; its stderr is
 * kept for the error message. Exit 3 (completed with warnings) is a finished run too.
 */
function runStatesnap(args: readonly string[]): Promise<CommandReport> {
  return new Promise((resolveChild, rejectChild) => {
    const child = spawn(process.execPath, ['--import', USAGE_PROBE, CLI, ...args, '--json', '--quiet'], {
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    });
    const output = { stdout: '', stderr: '', usage: '' };
    for (const [stream, key] of [
      [child.stdout, 'stdout'],
      [child.stderr, 'stderr'],
      [child.stdio[3] as Readable, 'usage'],
    ] as const) {
      stream?.setEncoding('utf8').on('data', (chunk: string) => {
        output[key] += chunk;
      });
    }
    child.on('error', rejectChild);
    child.on('close', (code, signal) => {
      if (code !== 0 && code !== 3) {
        const why = signal ?? `exit ${code}`;
        rejectChild(new Error(`statesnap ${args.join(' ')} failed (${why}): ${output.stderr}`));
        return;
      }
      try {
        const usage = JSON.parse(output.usage) as ProcessUsage;
        resolveChild({ ...usage, result: JSON.parse(output.stdout) as Record<string, unknown> });
      } catch (error) {
        rejectChild(new Error(`statesnap ${args.join(' ')} printed no report: ${(error as Error).message}`));
      }
    });
  });
}

function childOutput(report: CommandReport): CaseOutput {
  const innerMs = report.result.durationMs;
  const filesCopied = countOf(report, 'copied');
  return {
    rssKb: report.maxRssKb,
    userMs: report.userMs,
    systemMs: report.systemMs,
    ...(typeof innerMs === 'number' ? { innerMs } : {}),
    ...(filesCopied === undefined ? {} : { filesCopied }),
  };
}

function countOf(report: CommandReport, name: 'copied' | 'hashed'): number | undefined {
  const value = (report.result.counts as Record<string, unknown> | undefined)?.[name];
  return typeof value === 'number' ? value : undefined;
}

/**
 * The figures of a case that claims to snapshot an unchanged store, once its report shows it did: a run that
 * copied or hashed files measured other work than its name says.
 */
function noChangeOutput(id: CaseId, report: CommandReport): CaseOutput {
  const copied = countOf(report, 'copied') ?? 0;
  const hashed = countOf(report, 'hashed') ?? 0;
  if (copied + hashed > 0) {
    throw new Error(`${id} is not a no-change snapshot: it copied ${copied} and hashed ${hashed} files`);
  }
  return childOutput(report);
}

/** When the source was last written (ms since the epoch): generated, or files replaced by a case. */
let sourceChangedAt = 0;

/** Records that the source was just written (the suite calls it once the store is ready). */
export function markSourceChanged(): void {
  sourceChangedAt = Date.now();
}

/**
 * Waits until the source's newest files are older than the change rule's racy margin: a previous snapshot that
 * starts sooner records them as racy, and the no-change snapshot after it reads them again.
 */
async function waitOutRacyMargin(): Promise<void> {
  const settledAt = sourceChangedAt + Number(DEFAULT_RACY_MARGIN_NS / 1_000_000n) + 100;
  const wait = settledAt - Date.now();
  if (wait > 0) await sleep(wait);
}

/** What the one-file case backs up: the fixed cost of a backup, apart from its files. */
const ONE_FILE_CONTENT = '{"fact":"the one-file store"}\n';
export const ONE_FILE_STORE = { files: 1, bytes: Buffer.byteLength(ONE_FILE_CONTENT) };

function oneFileStoreOf(iteration: Iteration): string {
  return join(iteration.dir, 'one-file-store');
}

function statesnapBackup(id: CaseId, label: string, flags: string[], makesBackup = false): BenchCase {
  return {
    id,
    label,
    kind: 'copy',
    subject: true,
    makesBackup,
    run: async ({ source, dest }) => childOutput(await runStatesnap(['backup', source, dest, ...flags])),
  };
}

/** Where an incremental case finds the previous backup it links from: made untimed in `prepare`. */
function previousOf(iteration: Iteration): string {
  return join(iteration.dir, 'previous');
}

/**
 * Replaces every hundredth file of `root` (in sorted walk order) the way Oxios writes: the same bytes into a
 * new file, renamed over the old name. The content stays, the inode and ctime change: a change every
 * incremental tool must see, which leaves the store the same for the other cases of the round.
 */
async function replaceOnePercent(root: string): Promise<void> {
  let seen = 0;
  const visit = async (dir: string): Promise<void> => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
      a.name < b.name ? -1 : 1,
    )) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await visit(path);
      else if (entry.isFile() && seen++ % 100 === 0) {
        writeFileSync(`${path}.bench-replace`, await readFile(path));
        renameSync(`${path}.bench-replace`, path);
      }
    }
  };
  await visit(root);
  markSourceChanged();
}

/**
 * An incremental case: the previous backup made untimed (statesnap's own for statesnap, which needs its
 * index; `cp -a` for the baselines, which compare timestamps to the nanosecond), optionally 1% of the source
 * replaced after it, then `link` timed.
 */
function linkCase(
  id: CaseId,
  label: string,
  options: { subject: boolean; changeOnePercent: boolean },
  link: (iteration: Iteration) => Promise<CaseOutput | undefined>,
): BenchCase {
  return {
    id,
    label,
    kind: 'copy',
    subject: options.subject,
    prepare: async (iteration) => {
      const previous = previousOf(iteration);
      await waitOutRacyMargin();
      if (options.subject) await runStatesnap(['backup', iteration.source, previous, '--no-sync']);
      else await cpA(iteration.source, previous);
      if (options.changeOnePercent) await replaceOnePercent(iteration.source);
      await syncFilesystemOf(iteration.source);
    },
    run: link,
  };
}

/** A case whose work reports no figures of its own: a baseline tool, or the planner walk. */
function plainCase(
  id: CaseId,
  label: string,
  kind: BenchCase['kind'],
  work: (source: string, dest: string) => Promise<void>,
  subject = false,
): BenchCase {
  return {
    id,
    label,
    kind,
    subject,
    run: async ({ source, dest }) => {
      await work(source, dest);
      return undefined;
    },
  };
}

/**
 * The planner's walk exactly as a backup without `--link-dest` drives it (default excludes, lstat per directory,
 * files planned by name), with a counting sink.
 */
async function plannerWalk(source: string): Promise<void> {
  let files = 0;
  await planSource(source, {
    excludes: new ExcludeRules({ exclude: [], include: [], defaults: DEFAULT_EXCLUDES }),
    changedRetries: 0,
    statFiles: false,
  }).entries(
    {
      dir: () => {},
      file: () => {
        files++;
        return undefined;
      },
      skip: () => {},
      problem: (rel, problem, message) => {
        throw new Error(`planner walk: ${rel}: ${problem}: ${message}`);
      },
    },
    new AbortController().signal,
  );
  if (files === 0) throw new Error(`planner walk found no files in ${source}`);
}

/** The bucket the S3 cases write to (`STATESNAP_BENCH_S3_BUCKET`, default `statesnap-bench`); it must exist. */
const S3_BUCKET = process.env.STATESNAP_BENCH_S3_BUCKET || 'statesnap-bench';

/** Names this run's prefixes apart from earlier runs' in the same bucket. */
const RUN_TOKEN = randomBytes(6).toString('hex');

/** A repository prefix of this iteration alone, so every iteration starts from an empty repository. */
function s3RepositoryOf(iteration: Iteration): string {
  return `s3://${S3_BUCKET}/bench-${RUN_TOKEN}/${basename(iteration.dir)}`;
}

/** Deletes every object (and unfinished upload) under this iteration's prefix: a run leaves the bucket as it was. */
async function removeS3Repository(iteration: Iteration): Promise<void> {
  const [{ S3Storage }, { parseS3Location }] = await Promise.all([
    import('../src/s3/client.js'),
    import('../src/s3/location.js'),
  ]);
  const storage = await S3Storage.open(parseS3Location(s3RepositoryOf(iteration)));
  const keys: string[] = [];
  for await (const object of storage.listObjects('')) keys.push(object.key);
  await storage.deleteObjects(keys);
  await storage.abortUnfinishedUploads('');
}

function needsS3(): string | undefined {
  return process.env.AWS_ENDPOINT_URL ? undefined : 'no S3 endpoint (AWS_ENDPOINT_URL is not set)';
}

/**
 * `statesnap snapshot` into `repositoryOf(iteration)`, timed; with `noChange`, a first snapshot of the same
 * store is made untimed before it, and the timed one must copy nothing.
 */
function snapshotCase(
  id: CaseId,
  label: string,
  repositoryOf: (iteration: Iteration) => string,
  noChange: boolean,
  cleanup?: (iteration: Iteration) => Promise<void>,
): BenchCase {
  return {
    id,
    label,
    kind: 'copy',
    subject: true,
    prepare: noChange
      ? async (iteration) => {
          await waitOutRacyMargin();
          await runStatesnap(['snapshot', iteration.source, repositoryOf(iteration)]);
        }
      : undefined,
    run: async (iteration) => {
      const report = await runStatesnap(['snapshot', iteration.source, repositoryOf(iteration)]);
      return noChange ? noChangeOutput(id, report) : childOutput(report);
    },
    ...(cleanup === undefined ? {} : { cleanup }),
  };
}

/**
 * restic's backup into a repository of this iteration alone (`restic init` untimed); with `noChange`, a first
 * backup is made untimed before it.
 */
function resticCase(
  id: CaseId,
  label: string,
  repositoryOf: (iteration: Iteration) => string,
  options: { noChange: boolean; cleanup?: (iteration: Iteration) => Promise<void> },
): BenchCase {
  const envOf = (iteration: Iteration) => ({
    ...process.env,
    RESTIC_REPOSITORY: repositoryOf(iteration),
    RESTIC_PASSWORD: 'statesnap-bench',
    // Its cache goes with the iteration, not into the home directory, one per repository.
    RESTIC_CACHE_DIR: join(iteration.dir, 'restic-cache'),
  });
  return {
    id,
    label,
    kind: 'copy',
    subject: false,
    prepare: async (iteration) => {
      await runTool('restic', ['init', '--quiet'], envOf(iteration));
      if (options.noChange)
        await runTool('restic', ['backup', '--quiet', iteration.source], envOf(iteration));
    },
    run: async (iteration) => {
      await runTool('restic', ['backup', '--quiet', iteration.source], envOf(iteration));
      // A local repository is on the measured filesystem: flushed, as the durable cases are.
      if (options.noChange) await syncFilesystemOf(iteration.dir);
      return undefined;
    },
    ...(options.cleanup === undefined ? {} : { cleanup: options.cleanup }),
  };
}

function runTool(command: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolveTool, rejectTool) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', rejectTool);
    child.on('close', (code) =>
      code === 0
        ? resolveTool()
        : rejectTool(new Error(`${command} ${args[0]} failed (exit ${code}): ${stderr}`)),
    );
  });
}

function needs(commands: readonly string[]): string | undefined {
  const missing = commands.filter((command) => which(command) === null);
  return missing.length === 0 ? undefined : `${missing.join(', ')} not installed`;
}

/** Every case, or the reason it cannot run here. */
async function buildCase(id: CaseId): Promise<BenchCase | string> {
  switch (id) {
    case 'statesnap':
      return statesnapBackup(id, 'statesnap backup', [], true);
    case 'statesnap-one-file':
      return {
        id,
        label: 'statesnap backup of one file',
        kind: 'start-up',
        subject: true,
        prepare: async (iteration) => {
          await mkdir(oneFileStoreOf(iteration));
          await writeFile(join(oneFileStoreOf(iteration), 'fact.json'), ONE_FILE_CONTENT);
        },
        run: async (iteration) =>
          childOutput(await runStatesnap(['backup', oneFileStoreOf(iteration), iteration.dest])),
      };
    case 'statesnap-no-sync':
      return statesnapBackup(id, 'statesnap --no-sync', ['--no-sync']);
    case 'statesnap-threads-1':
    case 'statesnap-threads-2':
    case 'statesnap-threads-4':
    case 'statesnap-threads-8': {
      const threads = id.slice('statesnap-threads-'.length);
      return statesnapBackup(id, `statesnap --threads ${threads} --no-sync`, [
        '--no-sync',
        '--threads',
        threads,
      ]);
    }
    case 'statesnap-restore':
      return {
        id,
        label: 'statesnap restore',
        kind: 'copy',
        subject: true,
        readsBackup: true,
        // Without the statesnap case in the selection, the round's backup is made here, untimed.
        prepare: async (iteration) => {
          if (iteration.backup !== undefined) return;
          iteration.backup = join(iteration.dir, 'backup');
          await runStatesnap(['backup', iteration.source, iteration.backup, '--no-sync']);
        },
        run: async ({ dest, backup }) => childOutput(await runStatesnap(['restore', backup!, dest])),
      };
    case 'planner-walk':
      return plainCase(id, 'planner walk', 'walk', plannerWalk, true);
    case 'du-sb':
      return needs(['du']) ?? plainCase(id, 'du -sb', 'walk', duSb);
    case 'sequential':
      return plainCase(id, 'sequential (original)', 'copy', sequentialCopy);
    case 'fs-cp':
      return plainCase(id, 'fs.promises.cp', 'copy', nodeCp);
    case 'fs-extra': {
      const copy = await loadFsExtraCopy();
      return typeof copy === 'string' ? copy : plainCase(id, 'fs-extra copy', 'copy', copy);
    }
    case 'cp-a':
      return needs(['cp']) ?? plainCase(id, 'cp -a', 'copy', cpA);
    case 'cp-a-sync':
      return (
        needs(['cp', 'sync']) ??
        plainCase(id, 'cp -a + sync', 'copy', async (source, dest) => {
          await cpA(source, dest);
          await syncFilesystemOf(dest);
        })
      );
    case 'cp-a-parallel-sync':
      return (
        needs(['cp', 'sync']) ?? plainCase(id, 'cp -a per core + sync meanwhile', 'copy', cpAParallelSync)
      );
    case 'rsync-a':
      return needs(['rsync']) ?? plainCase(id, 'rsync -a', 'copy', rsyncA);
    case 'statesnap-link-dest':
    case 'statesnap-link-dest-1pct': {
      const changed = id === 'statesnap-link-dest-1pct';
      return linkCase(
        id,
        `statesnap --link-dest${changed ? ', 1% replaced' : ''}`,
        { subject: true, changeOnePercent: changed },
        async (iteration) => {
          const report = await runStatesnap([
            'backup',
            '--link-dest',
            previousOf(iteration),
            iteration.source,
            iteration.dest,
          ]);
          return changed ? childOutput(report) : noChangeOutput(id, report);
        },
      );
    }
    case 'snapshot-no-change':
      return snapshotCase(id, 'statesnap snapshot, no change', (iteration) => iteration.dest, true);
    case 'rsync-link-dest':
      return (
        needs(['rsync', 'sync']) ??
        linkCase(
          id,
          'rsync -a --link-dest + sync',
          { subject: false, changeOnePercent: false },
          async (iteration) => {
            await rsyncLinkDest(previousOf(iteration), iteration.source, iteration.dest);
            await syncFilesystemOf(iteration.dest);
            return undefined;
          },
        )
      );
    case 'cp-al':
      return (
        needs(['cp', 'sync']) ??
        linkCase(id, 'cp -al + sync', { subject: false, changeOnePercent: false }, async (iteration) => {
          await cpAl(previousOf(iteration), iteration.dest);
          await syncFilesystemOf(iteration.dest);
          return undefined;
        })
      );
    case 'tar-pipe':
      return needs(['tar']) ?? plainCase(id, 'tar | tar', 'copy', tarPipe);
    case 'restic-no-change':
      return (
        needs(['restic', 'sync']) ??
        resticCase(id, 'restic backup, no change + sync', (iteration) => join(iteration.dir, 'restic'), {
          noChange: true,
        })
      );
    case 's3-snapshot':
      return (
        needsS3() ?? snapshotCase(id, 'statesnap snapshot to S3', s3RepositoryOf, false, removeS3Repository)
      );
    case 's3-snapshot-no-change':
      return (
        needsS3() ??
        snapshotCase(id, 'statesnap snapshot to S3, no change', s3RepositoryOf, true, removeS3Repository)
      );
    case 's3-restore':
      return (
        needsS3() ?? {
          id,
          label: 'statesnap restore from S3',
          kind: 'copy',
          subject: true,
          prepare: async (iteration) => {
            await runStatesnap(['snapshot', iteration.source, s3RepositoryOf(iteration)]);
          },
          run: async (iteration) =>
            childOutput(
              await runStatesnap(['restore', `${s3RepositoryOf(iteration)}/latest`, iteration.dest]),
            ),
          cleanup: removeS3Repository,
        }
      );
    case 'restic-s3':
      return (
        needsS3() ??
        needs(['restic']) ??
        resticCase(
          id,
          'restic backup to S3',
          (iteration) =>
            `s3:${process.env.AWS_ENDPOINT_URL}/${S3_BUCKET}/bench-${RUN_TOKEN}/${basename(iteration.dir)}`,
          { noChange: false, cleanup: removeS3Repository },
        )
      );
  }
}

export interface SelectedCases {
  /** In run order. */
  cases: BenchCase[];
  skipped: Array<{ id: CaseId; reason: string }>;
}

export function isCaseId(value: string): value is CaseId {
  return (CASE_IDS as readonly string[]).includes(value);
}

/** The selected cases in the suite's order (references next to what they are compared with). */
export async function selectCases(ids: readonly CaseId[]): Promise<SelectedCases> {
  const selected: SelectedCases = { cases: [], skipped: [] };
  for (const id of CASE_IDS) {
    if (!ids.includes(id)) continue;
    const built = await buildCase(id);
    if (typeof built === 'string') selected.skipped.push({ id, reason: built });
    else selected.cases.push(built);
  }
  return selected;
}
