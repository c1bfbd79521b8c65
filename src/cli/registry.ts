// The commands of the statesnap command line, in the order the overview lists them.

import type { CommandClass } from 'clipanion';
import { BackupCommand } from './commands/backup.js';
import { BenchCommand } from './commands/bench.js';
import { DemoCommand } from './commands/demo.js';
import { GenerateCommand } from './commands/generate.js';
import { InspectCommand } from './commands/inspect.js';
import { RecoverCommand } from './commands/recover.js';
import { RestoreCommand } from './commands/restore.js';
import { VerifyCommand } from './commands/verify.js';

export const COMMANDS: readonly CommandClass[] = [
  BackupCommand,
  RestoreCommand,
  VerifyCommand,
  InspectCommand,
  RecoverCommand,
  DemoCommand,
  GenerateCommand,
  BenchCommand,
];
