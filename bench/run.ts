// `node dist/bench/run.js [--profile oxios] [--scale 1] [--iterations 3] [--seed 1] [--cases a,b]
// [--store-dir dir] [--out dir] [--json] [--quiet] [--compare previous.json [--threshold 0.15] [--current x.json]]`:
// the npm scripts' entry point, an argv wrapper around the same benchCommand() as `statesnap bench`.

import { parseArgs } from 'node:util';
import { ExitCode, isStatesnapError } from '../src/errors.js';
import type { StoreProfile } from './generator.js';
import { benchCommand } from './suite.js';

function numberOrUndefined(value: string | undefined): number | undefined {
  return value === undefined ? undefined : Number(value);
}

async function main(args: string[]): Promise<number> {
  const interrupt = new AbortController();
  process.once('SIGINT', () => interrupt.abort(new Error('SIGINT')));
  try {
    const { values } = parseArgs({
      args,
      options: {
        profile: { type: 'string' },
        scale: { type: 'string' },
        iterations: { type: 'string' },
        seed: { type: 'string' },
        cases: { type: 'string' },
        'store-dir': { type: 'string' },
        out: { type: 'string' },
        compare: { type: 'string' },
        threshold: { type: 'string' },
        current: { type: 'string' },
        json: { type: 'boolean', default: false },
        quiet: { type: 'boolean', default: false },
      },
    });
    return await benchCommand({
      profile: values.profile as StoreProfile | undefined,
      scale: numberOrUndefined(values.scale),
      iterations: numberOrUndefined(values.iterations),
      seed: numberOrUndefined(values.seed),
      cases: values.cases?.split(',').filter((id) => id !== ''),
      storeDir: values['store-dir'],
      outDir: values.out,
      compare: values.compare,
      threshold: numberOrUndefined(values.threshold),
      current: values.current,
      signal: interrupt.signal,
      onLog: values.quiet ? undefined : (line) => process.stderr.write(`${line}\n`),
      print: (document, summary) => {
        if (values.json) process.stdout.write(`${JSON.stringify(document, null, 2)}\n`);
        else if (!values.quiet) process.stdout.write(`${summary()}\n`);
      },
    });
  } catch (error) {
    if (isStatesnapError(error)) {
      process.stderr.write(`statesnap bench: error: ${error.message} [${error.code}]\n`);
      return error.exitCode;
    }
    if ((error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`statesnap bench: error: ${(error as Error).message}\n`);
      return ExitCode.usage;
    }
    process.stderr.write(`statesnap bench: internal error: ${(error as Error)?.stack ?? String(error)}\n`);
    return ExitCode.failed;
  }
}

process.exitCode = await main(process.argv.slice(2));
