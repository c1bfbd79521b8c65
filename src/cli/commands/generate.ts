// `statesnap generate <dir>`: writes a deterministic test store (the generator behind the demo and the
// benchmark) of a chosen profile and size, for trying statesnap on a store as large as the user's.

import { Command } from 'clipanion';
import { describeCause, isSystemErrorUnder, outOfResourcesAt, StatesnapError } from '../../core/errors.js';
import type { GeneratedStore } from '../../demo/generator.js';
import { STORE_PROFILES } from '../../demo/profiles.js';
import { BaseCommand } from '../base-command.js';
import { choiceOption, integerOption, pathArgument, positiveNumberOption } from '../options.js';
import { formatBytes } from '../progress-line.js';
import { countOf, formatNumber } from '../text.js';
import { prepareEmptyDir } from './demo.js';

export interface GenerateResult extends GeneratedStore {
  command: 'generate';
  profile: string;
  scale: number;
  seed: number;
  durationMs: number;
  exitCode: 0;
}

export class GenerateCommand extends BaseCommand {
  static override paths = [['generate']];
  static override usage = Command.Usage({
    description: 'Generate a deterministic test store of a chosen profile and size',
    details: `
      Writes a store into \`dir\` (which must be empty or missing): the same generator the demo, the benchmark
      and the tests use, byte-identical for the same profile, size and seed. At scale 1, \`oxios\` holds about
      100,000 JSON/Markdown files in the Oxios layout (1.6 GB, with ten 16-64 MiB index files, symlinks and
      in-flight temp files), \`tiny-files\` 1,000,000 files of 64 B-1 KiB, \`large-files\` sixteen 128 MiB
      files, \`demo\` about 3,000 files. \`--files\` picks the scale that gives about that many files.

      Exit codes: 0 ok, 1 failed, 2 usage error (\`dir\` not empty), 130 interrupted.
    `,
    examples: [
      ['A 2,000-file Oxios-like store', '$0 generate --files 2000 ./stores/small'],
      ['Back it up', '$0 backup ./stores/small ./stores/small-backup'],
      [
        'Tiny files at a five-hundredth of the full million (2,000 files)',
        '$0 generate --profile tiny-files --scale 0.002 ./stores/tiny',
      ],
    ],
  });

  dir = pathArgument('dir');
  profile = choiceOption('--profile', STORE_PROFILES, 'oxios', 'The kind of store');
  scale = positiveNumberOption('--scale', 'Multiplies file counts (default 1)');
  files = integerOption('--files', 1, 'About how many files (sets the scale; not with --scale)');
  seed = integerOption('--seed', 0, 'Seed of the generator (default 1)');

  protected async run(): Promise<number> {
    if (this.scale !== undefined && this.files !== undefined) {
      throw new StatesnapError(
        'ERR_INVALID_OPTION',
        '--scale and --files set the same thing: give one of them',
      );
    }
    const started = performance.now();
    const { generateStore, scaleForFiles } = await import('../../demo/generator.js');
    const scale = this.files === undefined ? (this.scale ?? 1) : scaleForFiles(this.profile, this.files);
    const seed = this.seed ?? 1;
    const root = prepareEmptyDir(this.dir);
    let store: Awaited<ReturnType<typeof generateStore>>;
    try {
      store = await generateStore(root, { profile: this.profile, scale, seed });
    } catch (error) {
      throw writeFailure(root, error);
    }
    const result: GenerateResult = {
      command: 'generate',
      ...store,
      profile: this.profile,
      scale,
      seed,
      durationMs: Math.round(performance.now() - started),
      exitCode: 0,
    };
    return this.printResult(
      result,
      () =>
        `generated ${store.root}: ${countOf(store.files, 'file')} (${formatNumber(store.tempFiles)} of them ` +
        `in-flight temp files), ${formatBytes(store.bytes)}, ${countOf(store.symlinks, 'symlink')}, ` +
        `${countOf(store.dirs, 'dir')} (profile ${this.profile}, scale ${Number(scale.toPrecision(4))}, seed ${seed})`,
    );
  }
}

/**
 * A store that could not be written (a full disk, a read-only filesystem) is the destination's problem,
 * reported on one line with the path the system named (a write by descriptor names none: then the store's
 * folder) and its cause. What was written so far stays, incomplete.
 */
function writeFailure(root: string, error: unknown): unknown {
  if (!isSystemErrorUnder(error, [root])) return error;
  const named = (error as { path?: unknown }).path;
  const path = typeof named === 'string' ? named : root;
  return (
    outOfResourcesAt(path, error) ??
    new StatesnapError(
      'ERR_DEST_WRITE',
      `cannot write ${path === root ? `the store in ${root}` : path}: ${describeCause(error)} (the store is incomplete)`,
      { path, cause: error },
    )
  );
}
