// Command-line front of the store generator:
// `node dist/bench/generate.js <dir> [--profile oxios] [--scale 1] [--seed 1]` prints one JSON line.

import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { generateStore, STORE_PROFILES, type StoreProfile } from '../src/demo/generator.js';

const USAGE = `usage: node dist/bench/generate.js <dir> [--profile ${STORE_PROFILES.join('|')}] [--scale 1] [--seed 1]`;

function isStoreProfile(value: string): value is StoreProfile {
  return (STORE_PROFILES as readonly string[]).includes(value);
}

function isNonEmptyDirOrFile(dir: string): boolean {
  try {
    return !fs.statSync(dir).isDirectory() || fs.readdirSync(dir).length > 0;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

async function main(args: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(args);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const { dir, profile, scale, seed } = parsed;
  if (isNonEmptyDirOrFile(dir)) {
    process.stderr.write(`cannot generate a store at ${dir}: it exists and is not an empty directory\n`);
    return 1;
  }
  try {
    const result = await generateStore(dir, { profile, scale, seed });
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`cannot generate a store at ${dir}: ${(error as Error).message}\n`);
    return error instanceof RangeError ? 2 : 1;
  }
}

function parse(args: string[]): { dir: string; profile: StoreProfile; scale: number; seed: number } {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      profile: { type: 'string', default: 'oxios' },
      scale: { type: 'string', default: '1' },
      seed: { type: 'string', default: '1' },
    },
  });
  if (positionals.length !== 1) throw new Error(`expected exactly one <dir>, got ${positionals.length}`);
  if (!isStoreProfile(values.profile)) throw new Error(`unknown --profile \`${values.profile}\``);
  return {
    dir: positionals[0]!,
    profile: values.profile,
    scale: Number(values.scale),
    seed: Number(values.seed),
  };
}

process.exitCode = await main(process.argv.slice(2));
