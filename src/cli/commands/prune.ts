// `statesnap prune <repo>`: argument parsing and output only; the work is the library's prune().

import { Command } from 'clipanion';
import {
  type KeepCount,
  type KeepReason,
  type PruneResult,
  parseRetentionDuration,
  prune,
  type RetentionPolicy,
  type S3PruneResult,
} from '../../index.js';
import { BaseCommand } from '../base-command.js';
import {
  flag,
  givenS3Options,
  integerOption,
  invalidValue,
  lockWaitOption,
  repositoryArgument,
  S3_OPTIONS,
  textOption,
} from '../options.js';
import { formatBytes } from '../progress-line.js';
import { countOf } from '../text.js';

function describeReason(reason: KeepReason): string {
  return `${reason.oldest ? 'oldest ' : ''}${reason.rule} ${reason.bucket}`;
}

export function describePrune(result: PruneResult): string {
  const verb = result.dryRun ? 'would remove' : 'removed';
  const freed = result.bytesFreed === null ? '' : `, ${formatBytes(result.bytesFreed)} freed`;
  const lines = [
    `${result.dryRun ? 'dry run: ' : ''}repository ${result.repository}: kept ${countOf(result.kept.length, 'snapshot')}, ` +
      `${verb} ${result.removed.length}${freed}`,
  ];
  for (const decision of result.snapshots) {
    const why = decision.reasons.map(describeReason).join(', ');
    lines.push(`  ${decision.keep ? 'keep  ' : 'remove'}  ${decision.id}${why ? `  ${why}` : ''}`);
  }
  if (result.removedLeftovers.length > 0) {
    lines.push(`removed what killed runs left: ${result.removedLeftovers.join(', ')}`);
  }
  return lines.join('\n');
}

export function describeS3Prune(result: S3PruneResult): string {
  const { garbage } = result;
  const verb = result.dryRun ? 'would delete' : 'deleted';
  const lines = [
    describePrune(result),
    `${verb} ${countOf(garbage.objects, 'object')} no remaining snapshot references (${formatBytes(garbage.bytes)})`,
  ];
  if (result.repack !== null && result.repack.repacked.length > 0) {
    const { repacked, written, rewritten } = result.repack;
    lines.push(
      `repacked ${countOf(repacked.length, 'data object')} into ${countOf(written.length, 'pack')}, ` +
        `rewrote the index of ${countOf(rewritten.length, 'snapshot')}`,
    );
  }
  if (garbage.finishedPlans.length > 0) {
    lines.push(`finished what interrupted prunes left: ${garbage.finishedPlans.join(', ')}`);
  }
  return lines.join('\n');
}

function countOption(name: string, what: string) {
  const expects = 'an integer >= 0 or unlimited';
  const option = textOption(name, 'n', `Keep ${what}`, expects);
  return {
    option,
    parse: (text: string | undefined): KeepCount | undefined => {
      if (text === undefined) return undefined;
      if (text === 'unlimited') return 'unlimited';
      if (!/^\d+$/.test(text)) throw invalidValue(name, expects, text);
      return Number(text);
    },
  };
}

const KEEP_LAST = countOption('--keep-last', 'the newest n snapshots');
const KEEP_HOURLY = countOption(
  '--keep-hourly',
  'the newest snapshot of each of the last n hours that have one',
);
const KEEP_DAILY = countOption(
  '--keep-daily',
  'the newest snapshot of each of the last n days that have one',
);
const KEEP_WEEKLY = countOption(
  '--keep-weekly',
  'the newest snapshot of each of the last n ISO weeks that have one',
);
const KEEP_MONTHLY = countOption(
  '--keep-monthly',
  'the newest snapshot of each of the last n months that have one',
);
const KEEP_YEARLY = countOption(
  '--keep-yearly',
  'the newest snapshot of each of the last n years that have one',
);

export class PruneCommand extends BaseCommand {
  static override paths = [['prune']];
  static override usage = Command.Usage({
    description: 'Remove the snapshots a retention policy does not keep',
    details: `
      restic's \`forget\` rules, with its names. Snapshots are taken newest first; \`--keep-last n\` keeps the n
      newest; \`--keep-hourly/daily/weekly/monthly/yearly n\` keep the newest snapshot of each of the n newest
      hours, days, ISO weeks, months or years that have a snapshot (a day without one uses no count), counted
      by the snapshot's UTC time, whatever the local time zone; while a rule has counts left, the oldest
      snapshot is kept too. \`--keep-within 1y2m3d4h\` keeps every snapshot made after the newest one's time
      minus that duration. \`unlimited\` is accepted as a count. A snapshot is kept when any rule keeps it.

      The newest snapshot is never removed, nor anything that is not a complete snapshot (unfinished or
      foreign entries). A prune without any rule is refused. \`--dry-run\` prints every snapshot with keep or
      remove and the rules that keep it, and changes nothing.

      Removal is crash-safe: each snapshot to go is first renamed to \`.deleting-<id>\` (out of the listing),
      then removed; a killed prune leaves only those, which the next snapshot or prune removes. Prune and
      snapshot take the repository's lock (\`--wait\` to queue behind another run).

      An \`s3://bucket/prefix\` repository gets the same rules, then garbage collection: under the writer lock
      the forgotten snapshots' manifests are deleted (then their indexes), and every object no remaining
      snapshot references is written to a deletion plan in \`gc/\`; after the lock is released the plan is
      swept. A snapshot may commit during the sweep and loses nothing; an interrupted sweep is finished by the
      next prune. \`--max-unused <percent>\` (restic's) also repacks, under the lock, every data object more than
      that share of which no remaining snapshot uses: its live files are copied into new packs, each snapshot
      using it gets a new index and its manifest replaced, and the old object is swept with the rest; this
      reads the indexes of all remaining snapshots. \`--endpoint\` (or AWS_ENDPOINT_URL) names the server.

      Exit codes: 0 ok, 1 failed (ERR_REPO_BUSY, ERR_REPO_INVALID, ERR_S3_*), 2 usage error (no rule, bad
      count or duration, bad location).
    `,
    examples: [
      [
        'Take two snapshots of the demo store',
        '$0 snapshot ./demo/store ./demo/snapshots && $0 snapshot ./demo/store ./demo/snapshots',
      ],
      [
        'See what keeping the last 7 daily snapshots would remove',
        '$0 prune --dry-run --keep-daily 7 ./demo/snapshots',
      ],
      [
        'Keep everything from the last 2 days and one snapshot a week for 8 weeks',
        '$0 prune --keep-within 2d --keep-weekly 8 ./demo/snapshots',
      ],
    ],
  });

  repository = repositoryArgument('repo');
  keepLast = KEEP_LAST.option;
  keepHourly = KEEP_HOURLY.option;
  keepDaily = KEEP_DAILY.option;
  keepWeekly = KEEP_WEEKLY.option;
  keepMonthly = KEEP_MONTHLY.option;
  keepYearly = KEEP_YEARLY.option;
  keepWithin = textOption(
    '--keep-within',
    'duration',
    'Keep every snapshot made within this duration of the newest one (y, m, d, h: 1y2m3d4h)',
  );
  dryRun = flag('--dry-run,-n', 'Print what would be kept (and by which rule) and removed; change nothing');
  wait = lockWaitOption();
  maxUnused = integerOption(
    '--max-unused',
    0,
    'With an s3:// repository: repack data objects more than this share of which no snapshot uses (0-100)',
    'percent',
  );
  endpoint = S3_OPTIONS.endpoint();
  region = S3_OPTIONS.region();
  profile = S3_OPTIONS.profile();

  policy(): RetentionPolicy {
    const policy: RetentionPolicy = {
      last: KEEP_LAST.parse(this.keepLast),
      hourly: KEEP_HOURLY.parse(this.keepHourly),
      daily: KEEP_DAILY.parse(this.keepDaily),
      weekly: KEEP_WEEKLY.parse(this.keepWeekly),
      monthly: KEEP_MONTHLY.parse(this.keepMonthly),
      yearly: KEEP_YEARLY.parse(this.keepYearly),
    };
    if (this.keepWithin !== undefined) {
      const parsed = parseRetentionDuration(this.keepWithin);
      if (!parsed.ok)
        throw invalidValue(
          '--keep-within',
          `a duration such as 7d or 1y2m (${parsed.problem})`,
          this.keepWithin,
        );
      policy.within = parsed.duration;
    }
    return policy;
  }

  protected async run(): Promise<number> {
    const s3 = givenS3Options(this);
    const result = await prune({
      repository: this.repository,
      ...(s3 && { s3 }),
      ...(this.maxUnused !== undefined && { maxUnused: this.maxUnused }),
      policy: this.policy(),
      dryRun: this.dryRun,
      waitForLockMs: this.wait,
      signal: this.interrupt.signal,
    });
    return this.printResult(result, () =>
      'garbage' in result ? describeS3Prune(result as S3PruneResult) : describePrune(result),
    );
  }
}
