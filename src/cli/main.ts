#!/usr/bin/env node
// The statesnap command line: registers the commands and turns parse errors into exit code 2 on stderr.

import { Builtins, Cli } from 'clipanion';
import { TOOL_VERSION } from '../core/options.js';
import { ExitCode } from '../index.js';
import { BackupCommand } from './commands/backup.js';
import { BenchCommand } from './commands/bench.js';
import { DemoCommand } from './commands/demo.js';
import { InspectCommand } from './commands/inspect.js';
import { RecoverCommand } from './commands/recover.js';
import { RestoreCommand } from './commands/restore.js';
import { VerifyCommand } from './commands/verify.js';

const cli = new Cli({
  binaryLabel: 'statesnap',
  binaryName: 'statesnap',
  binaryVersion: TOOL_VERSION,
  enableColors: process.stdout.isTTY === true,
});
for (const command of [
  BackupCommand,
  RestoreCommand,
  VerifyCommand,
  RecoverCommand,
  InspectCommand,
  DemoCommand,
  BenchCommand,
]) {
  cli.register(command);
}
cli.register(Builtins.HelpCommand);
cli.register(Builtins.VersionCommand);

const args = process.argv.slice(2);
let command: ReturnType<Cli['process']>;
try {
  command = cli.process(args);
} catch (error) {
  process.stderr.write(cli.error(error, { colored: false }));
  process.exit(ExitCode.usage);
}
process.exitCode = await cli.run(command, {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
});
