// Shared by the restore and verify tests: backups built by hand (consistent manifest + index around whatever
// hostile entries a test wants), the Oxios seed's own restore algorithm as a reference, and the names a restore
// leaves beside its target.

import { spawnSync } from 'node:child_process';
import { copyFileSync, lstatSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fingerprintTree, sha256 } from './tree.js';

export { sha256 } from './tree.js';

/**
 * One entry of a hand-built backup, written to the tree (unless `onDisk: false`) and to the index. A path
 * given as bytes (a name that is not UTF-8) is recorded as `path_b64`, which only format 2 has; `uid` and
 * `gid` go to format-2 lines only (default: the running user's).
 */
export type HandEntry =
  | {
      type: 'file';
      path: string | Buffer;
      content: string | Buffer;
      mode?: number;
      mtimeNs?: string;
      uid?: number;
      gid?: number;
      /** Index fields that lie about the file (tampering). */
      sha256?: string;
      size?: number;
      onDisk?: boolean;
    }
  | {
      type: 'dir';
      path: string | Buffer;
      mode?: number;
      mtimeNs?: string;
      uid?: number;
      gid?: number;
      onDisk?: boolean;
    }
  | { type: 'symlink' | 'fifo' | 'socket'; path: string }
  /** A raw index line, written as is (hostile JSON). */
  | { type: 'raw'; line: string };

export interface HandBackupOptions {
  /** The index format written: 1, as statesnap wrote before format 2 (the default), or 2. */
  format?: 1 | 2;
  sections?: Array<{ name: string; entry_count: number }>;
  /** Changes the manifest object before it is written (e.g. a wrong version). */
  editManifest?: (manifest: Record<string, unknown>) => void;
}

const MTIME_NS = '1700000000123000000';

/**
 * Writes a statesnap backup by hand: the tree, `.statesnap/index.jsonl` with exactly the given lines, and a
 * manifest whose index count, sha256 and totals match them, so only what a test makes hostile is wrong.
 */
export function writeHandBackup(
  root: string,
  entries: readonly HandEntry[],
  options: HandBackupOptions = {},
): void {
  mkdirSync(join(root, '.statesnap'), { recursive: true });
  const format = options.format ?? 1;
  const owner = (entry: { uid?: number; gid?: number }) =>
    format === 1 ? {} : { uid: entry.uid ?? process.getuid!(), gid: entry.gid ?? process.getgid!() };
  const location = (path: string | Buffer) => {
    if (typeof path === 'string') return { path };
    if (format === 1) throw new Error('format 1 has no way to record a path that is not UTF-8');
    return { path_b64: path.toString('base64') };
  };
  const lines: string[] = [];
  const totals = { files: 0, dirs: 0, bytes: 0 };
  for (const entry of entries) {
    if (entry.type === 'raw') {
      lines.push(entry.line);
      continue;
    }
    const path = Buffer.concat([Buffer.from(`${root}/`), Buffer.from(entry.path)]);
    if (entry.type === 'file') {
      const content = Buffer.from(entry.content);
      if (entry.onDisk !== false) {
        mkdirSync(path.subarray(0, path.lastIndexOf(0x2f)), { recursive: true });
        writeFileSync(path, content);
      }
      const size = entry.size ?? content.length;
      const mtimeNs = entry.mtimeNs ?? MTIME_NS;
      totals.files++;
      totals.bytes += size;
      const identity = format === 1 ? {} : { ctime_ns: mtimeNs, ino: String(totals.files) };
      lines.push(
        JSON.stringify({
          ...location(entry.path),
          type: 'file',
          size,
          mode: entry.mode ?? 0o644,
          mtime_ns: mtimeNs,
          ...identity,
          ...owner(entry),
          sha256: entry.sha256 ?? sha256(content),
        }),
      );
    } else if (entry.type === 'dir') {
      if (entry.onDisk !== false) mkdirSync(path, { recursive: true });
      totals.dirs++;
      lines.push(
        JSON.stringify({
          ...location(entry.path),
          type: 'dir',
          mode: entry.mode ?? 0o755,
          mtime_ns: entry.mtimeNs ?? MTIME_NS,
          ...owner(entry),
        }),
      );
    } else {
      lines.push(JSON.stringify({ path: entry.path, type: entry.type, skipped: true }));
    }
  }
  const index = lines.map((line) => `${line}\n`).join('');
  writeFileSync(join(root, '.statesnap', 'index.jsonl'), index);
  const manifest: Record<string, unknown> = {
    version: 1,
    created_at: '2026-11-23T00:00:00.000Z',
    oxios_version: 'test',
    sections: options.sections ?? [{ name: 'seeds', entry_count: 1 }],
    statesnap: {
      ...(format === 1
        ? {}
        : {
            format,
            root: { mode: 0o755, mtime_ns: MTIME_NS, ...owner({}) },
            started_at_ns: MTIME_NS,
          }),
      tool: 'statesnap',
      tool_version: '0.0.0',
      hash_algorithm: 'sha256',
      index: { path: '.statesnap/index.jsonl', entries: lines.length, sha256: sha256(index) },
      totals,
      skipped: { symlink: 0, fifo: 0, socket: 0, char_device: 0, block_device: 0, excluded: 0, reserved: 0 },
      warnings: { count: 0, by_problem: {}, list: [] },
      categories: ['seeds'],
    },
  };
  options.editManifest?.(manifest);
  writeFileSync(join(root, 'manifest.json'), JSON.stringify(manifest, null, 2));
}

/** An Oxios-made backup: the tree as given (by the caller) plus the seed's pretty-printed manifest. */
export function writeOxiosManifest(
  root: string,
  sections: Array<{ name: string; entry_count: number }>,
): void {
  const manifest = { version: 1, created_at: '2026-11-23T10:00:00+00:00', oxios_version: '0.9.1', sections };
  writeFileSync(join(root, 'manifest.json'), JSON.stringify(manifest, null, 2));
}

/**
 * The seed's `restore_backup` copy step (`copy_dir_recursive`), transcribed: create_dir_all, then per entry
 * symlink_metadata → skip symlinks, recurse into directories, `fs::copy` anything else (which follows a symlink
 * at the destination and copies the permission bits). manifest.json is copied like any file.
 */
export function oxiosCopyDirRecursive(src: string, dest: string): void {
  mkdirSync(dest, { recursive: true });
  for (const name of readdirSync(src)) {
    const from = join(src, name);
    const to = join(dest, name);
    const stats = lstatSync(from);
    if (stats.isSymbolicLink()) continue;
    if (stats.isDirectory()) oxiosCopyDirRecursive(from, to);
    else copyFileSync(from, to);
  }
}

/**
 * Every entry below `root` as `path kind mode size mtime sha256` (links and specials as `path other`).
 * @deprecated use `fingerprintTree` (./tree.js); kept while tests on other branches still call it.
 */
export function fingerprint(root: string, options: { mtimes?: boolean } = {}): string[] {
  return Object.entries(fingerprintTree(root, options)).map(([rel, entry]) => {
    const mtime = entry.mtime === undefined ? '' : ` ${entry.mtime}`;
    if (entry.kind === 'dir') return `${rel} dir ${entry.mode}${mtime}`;
    if (entry.kind === 'file') return `${rel} file ${entry.mode} ${entry.size}${mtime} ${entry.sha256}`;
    return `${rel} other`;
  });
}

/** A pid that belonged to a process that has exited. */
export function deadPid(): number {
  const run = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(run.stdout.toString());
}

/** Names beside `target` that a restore of it made (staging trees, journals, rollback copies). */
export function restoreSiblings(target: string): string[] {
  const prefix = `${target.slice(dirname(target).length + 1)}.`;
  return readdirSync(dirname(target))
    .filter((name) => name.startsWith(prefix))
    .sort();
}
