// The stores the suite copies: generated once per profile+scale+seed into a cache directory and reused while
// its marker file says it is complete and was made by this generator; and the read pass that warms the page
// cache before round 1.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join, resolve } from 'node:path';
import { StatesnapError } from '../src/core/errors.js';
import { type GeneratedStore, generateStore, type StoreProfile } from '../src/demo/generator.js';
import { removeTree } from './baselines.js';

export interface FixtureOptions {
  profile: StoreProfile;
  scale: number;
  seed: number;
  /** The store's directory, named by the user: it must be new, empty or a store this suite generated. */
  storeDir?: string;
  /** Without `storeDir`, the store is `<baseDir>/statesnap-bench/<profile>-<scale>-<seed>/store`. */
  baseDir: string;
}

export interface Fixture {
  store: GeneratedStore;
  /** False when a complete store from an earlier run was reused. */
  generated: boolean;
  /** Beside the store, on the same filesystem: destinations are made in here. */
  workDir: string;
}

interface Marker {
  profile: StoreProfile;
  scale: number;
  seed: number;
  /** sha256 of the generator's code: a changed generator makes every cached store stale. */
  generator: string;
  store: GeneratedStore;
}

function defaultStoreDir(baseDir: string, profile: StoreProfile, scale: number, seed: number): string {
  return join(baseDir, 'statesnap-bench', `${profile}-${scale}-${seed}`, 'store');
}

function generatorFingerprint(): string {
  const code = fs.readFileSync(new URL('../src/demo/generator.js', import.meta.url));
  return createHash('sha256').update(code).digest('hex');
}

function readMarker(path: string): Marker | null {
  try {
    return JSON.parse(fs.readFileSync(path, 'utf8')) as Marker;
  } catch {
    return null;
  }
}

function isNonEmptyDir(path: string): boolean {
  try {
    return fs.readdirSync(path).length > 0;
  } catch {
    return false;
  }
}

/** The store for these options: reused when complete, otherwise (re)generated. */
export async function prepareStore(options: FixtureOptions, onLog: (line: string) => void): Promise<Fixture> {
  const { profile, scale, seed } = options;
  const root = resolve(options.storeDir ?? defaultStoreDir(options.baseDir, profile, scale, seed));
  const markerPath = `${root}.complete.json`;
  const workDir = `${root}.runs`;
  const generator = generatorFingerprint();

  // A run killed mid-round leaves destinations behind.
  if (fs.existsSync(workDir)) await removeTree(workDir);
  fs.mkdirSync(workDir, { recursive: true });

  const marker = readMarker(markerPath);
  if (
    marker !== null &&
    marker.profile === profile &&
    marker.scale === scale &&
    marker.seed === seed &&
    marker.generator === generator &&
    fs.existsSync(root)
  ) {
    return { store: { ...marker.store, root }, generated: false, workDir };
  }
  if (marker === null && options.storeDir !== undefined && isNonEmptyDir(root)) {
    throw new StatesnapError(
      'ERR_INVALID_OPTION',
      `\`storeDir\` must be a new or empty directory (or a store this suite generated), got \`${root}\``,
      { path: root },
    );
  }
  fs.rmSync(markerPath, { force: true });
  if (fs.existsSync(root)) await removeTree(root);
  onLog(`generating the ${profile} store (scale ${scale}, seed ${seed}) in ${root}`);
  const store = await generateStore(root, { profile, scale, seed });
  const next: Marker = { profile, scale, seed, generator, store };
  fs.writeFileSync(`${markerPath}.tmp`, `${JSON.stringify(next, null, 2)}\n`);
  fs.renameSync(`${markerPath}.tmp`, markerPath);
  return { store, generated: true, workDir };
}

/**
 * Reads every regular file of the store once, so every case starts from the same warm page cache instead of
 * the first one paying for the disk reads of all (synchronous reads: this runs once, before any timing).
 */
export function warmPageCache(root: string): { files: number; bytes: number } {
  const buffer = Buffer.allocUnsafe(1024 * 1024);
  let files = 0;
  let bytes = 0;
  const pending = [root];
  while (pending.length > 0) {
    const dir = pending.pop()!;
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        pending.push(path);
      } else if (entry.isFile()) {
        const fd = fs.openSync(path, 'r');
        try {
          for (let read = fs.readSync(fd, buffer); read > 0; read = fs.readSync(fd, buffer)) bytes += read;
        } finally {
          fs.closeSync(fd);
        }
        files++;
      }
    }
  }
  return { files, bytes };
}
