#!/usr/bin/env node
// The statesnap program: answers a version request itself (the parser and the commands would be most of its
// time) and hands every other command line to the command line proper (run.ts).

import { TOOL_VERSION } from '../core/options.js';
import { isVersionRequest } from './registry.js';

const args = process.argv.slice(2);
if (isVersionRequest(args)) process.stdout.write(`${TOOL_VERSION}\n`);
else await (await import('./run.js')).runCommandLine(args);
