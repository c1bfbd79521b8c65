// The shape of a benchmark result (the JSON file, `--json` output and what `--compare` reads back). Fields are
// added, never renamed: CI jobs keep old result files to compare against.

import { z } from 'zod';
import type { StoreProfile } from '../src/demo/generator.js';
import type { ReferenceId } from './cases.js';

export const RESULT_SCHEMA_VERSION = 1;

/** Median and range over the rounds. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

export interface RoundFigures {
  /** 1-based. */
  round: number;
  /** 0-based place of the case in this round's order (the order rotates from round to round). */
  position: number;
  /** Wall time of the timed window (for statesnap cases: the whole child process, start-up included). */
  ms: number;
  filesPerSec: number;
  mbPerSec: number;
  /** statesnap cases: peak RSS of the child process (workers included), KiB. */
  rssKb?: number;
  userMs?: number;
  systemMs?: number;
  /** statesnap cases: the operation's own durationMs, without process start-up. */
  innerMs?: number;
  /** statesnap backups and snapshots: the files they copied (`counts.copied` of their report). */
  filesCopied?: number;
  /** Untimed work around this iteration: its setup (fresh directory, input, `sync`) and removing its output. */
  setupMs: number;
  cleanupMs: number;
}

/** This case's wall time divided by the reference's wall time in the same round; < 1 is faster. */
export interface RatioFigures extends Spread {
  perRound: number[];
}

export interface CaseResult {
  id: string;
  label: string;
  /** `start-up`: a backup of a one-file store; its files/s and MB/s count that one file. */
  kind: 'copy' | 'walk' | 'start-up';
  subject: boolean;
  wallMs: Spread;
  /** The store's files (or, for walks, entries listed) per second of wall time. */
  filesPerSec: Spread;
  /** The store's bytes per second of wall time, in 10^6 bytes. */
  mbPerSec: Spread;
  /** statesnap cases only, in 10^6 bytes. */
  peakRssMb: Spread | null;
  /** statesnap cases only: the operation's own durationMs, i.e. wall time without process start-up. */
  operationMs: Spread | null;
  /** statesnap cases only: CPU time of the child process (all threads), user and kernel. */
  userMs: Spread | null;
  systemMs: Spread | null;
  ratios: Partial<Record<ReferenceId, RatioFigures>>;
  rounds: RoundFigures[];
}

export interface TargetResult {
  id: string;
  /** The issue that sets the target (10 snapshots, 11 full-copy speed, 12 object storage); absent for a README goal. */
  issue?: number;
  description: string;
  /** The run the target is set for: its profile, and its scale (null: any scale). Other runs do not measure it. */
  profile: StoreProfile;
  scale?: number | null;
  /** The cases the figure comes from. */
  cases?: string[];
  limit: number;
  unit: 'ratio' | 'MB' | 'µs' | 's';
  measured: number | null;
  status: 'met' | 'missed' | 'not measured';
  /** Why it is `not measured`. */
  reason?: string;
  /**
   * Not measured only because the run's scale is not the target's: what this run's figures give, for checking
   * the suite at a small scale, never for the target.
   */
  atThisScale?: number;
}

export interface MachineInfo {
  platform: string;
  arch: string;
  release: string;
  cpus: number;
  cpuModel: string;
  memoryBytes: number;
  node: string;
  /** Filesystem of the directory holding the store and destinations (findmnt / df -T), when found. */
  filesystem: {
    type: string;
    options: string | null;
    /** Whether it keeps a journal; null when that does not apply or could not be told. */
    journal?: boolean | null;
  } | null;
  /** The fresh filesystem the suite made for this run, or null when it ran in a directory it was given. */
  scratch?: ScratchInfo | null;
  /** 1, 5 and 15 minute load averages when the run started, and when it ended: how busy the machine was. */
  loadAverage: number[];
  loadAverageEnd?: number[];
}

export interface ScratchInfo {
  /** A sparse image of this size, made with `mkfs.ext4 -N inodes`, loop-mounted, removed after the run. */
  sizeBytes: number;
  inodes: number;
  /** The loop device used O_DIRECT on the image (its blocks were not cached twice). */
  directIo: boolean;
}

export interface BenchResult {
  schemaVersion: typeof RESULT_SCHEMA_VERSION;
  createdAt: string;
  durationMs: number;
  packageVersion: string;
  gitCommit: string | null;
  gitDirty: boolean | null;
  /** How to run this benchmark again. */
  command: string;
  machine: MachineInfo;
  profile: StoreProfile;
  scale: number;
  seed: number;
  iterations: number;
  store: {
    path: string;
    files: number;
    bytes: number;
    dirs: number;
    symlinks: number;
    tempFiles: number;
    /** False when a complete store from an earlier run was reused. */
    generated: boolean;
  };
  /** The whole store was read once before round 1. */
  pageCacheWarm: boolean;
  cases: CaseResult[];
  skipped: Array<{ id: string; reason: string }>;
  targets: TargetResult[];
}

const spread = z.object({ median: z.number(), min: z.number(), max: z.number() });

/** What `--compare` needs from a result file, checked on read (extra fields are ignored). */
export const ComparableResultSchema = z.object({
  schemaVersion: z.literal(RESULT_SCHEMA_VERSION),
  createdAt: z.string(),
  profile: z.string(),
  scale: z.number(),
  gitCommit: z.string().nullable(),
  cases: z.array(
    z.object({
      id: z.string(),
      label: z.string(),
      subject: z.boolean(),
      ratios: z.record(z.string(), spread),
    }),
  ),
});

export type ComparableResult = z.infer<typeof ComparableResultSchema>;
