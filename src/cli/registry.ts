// The commands of the statesnap command line, in the order the overview lists them, each loaded only when
// needed: a run loads the one command it names (so `backup` builds no parser for the others and loads none of
// their code); help, completion and a line naming no command load them all.

import type { CommandClass } from 'clipanion';

const LOADERS: ReadonlyArray<readonly [name: string, load: () => Promise<CommandClass>]> = [
  ['backup', async () => (await import('./commands/backup.js')).BackupCommand],
  ['restore', async () => (await import('./commands/restore.js')).RestoreCommand],
  ['verify', async () => (await import('./commands/verify.js')).VerifyCommand],
  ['inspect', async () => (await import('./commands/inspect.js')).InspectCommand],
  ['recover', async () => (await import('./commands/recover.js')).RecoverCommand],
  ['snapshot', async () => (await import('./commands/snapshot.js')).SnapshotCommand],
  ['list', async () => (await import('./commands/list.js')).ListCommand],
  ['prune', async () => (await import('./commands/prune.js')).PruneCommand],
  ['diff', async () => (await import('./commands/diff.js')).DiffCommand],
  ['demo', async () => (await import('./commands/demo.js')).DemoCommand],
  ['generate', async () => (await import('./commands/generate.js')).GenerateCommand],
  ['bench', async () => (await import('./commands/bench.js')).BenchCommand],
];

/** Every command, in the overview's order. */
export function loadCommands(): Promise<CommandClass[]> {
  return Promise.all(LOADERS.map(([, load]) => load()));
}

/** The command lines that ask clipanion's built-in version command, which needs none of ours. */
const VERSION_FLAGS: readonly string[] = ['--version', '-v'];

/** Whether `args` only asks for the version (`--version` or `-v`, alone). */
export function isVersionRequest(args: readonly string[]): boolean {
  return args.length === 1 && VERSION_FLAGS.includes(args[0]!);
}

/**
 * The command a command line names as its first word, alone; none for a version request; every command when
 * it names none.
 */
export async function loadCommandsFor(args: readonly string[]): Promise<CommandClass[]> {
  if (isVersionRequest(args)) return [];
  const named = LOADERS.find(([name]) => name === args[0]);
  return named === undefined ? loadCommands() : [await named[1]()];
}
