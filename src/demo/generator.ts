// The deterministic store generator (`statesnap demo`, the benchmark suite's stores, test fixtures): Oxios-like
// trees of small JSON/Markdown files, a million-tiny-file tree and a large-file tree, byte-identical (names,
// contents, sizes, mtimes) for the same profile, scale and seed.

import { createCipheriv } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { STORE_PROFILES, type StoreProfile } from './profiles.js';

export { STORE_PROFILES, type StoreProfile } from './profiles.js';

export interface GenerateOptions {
  /** Which kind of store to generate. */
  profile: StoreProfile;
  /**
   * Multiplies every file count (rounded, at least 1). Index/blob sizes shrink with it too (see the
   * profiles); temp files and symlinks are never scaled.
   * @default 1
   */
  scale?: number;
  /**
   * Seed of the PRNG that picks every size, name suffix, content slice and mtime; an integer in [0, 2^32).
   * @default 1
   */
  seed?: number;
}

export interface GeneratedStore {
  /** Absolute path of the generated store. */
  root: string;
  /** Regular files written, temp files included. */
  files: number;
  /** Total size of those regular files. */
  bytes: number;
  /** Directories below `root` (not counting `root`), empty ones included. */
  dirs: number;
  symlinks: number;
  /** In-flight `<name>.<pid>.<uuid>.tmp` files, also counted in `files`. */
  tempFiles: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;

type Layout =
  | { kind: 'flat' }
  /** Entry i goes to `topic-<i mod folders>/`, like Oxios' knowledge base. */
  | { kind: 'topics'; folders: number }
  /** Consecutive runs of `perFolder` entries share `shard-<n>/`, so no folder grows huge. */
  | { kind: 'shards'; perFolder: number };

interface TextCategory {
  dir: string;
  prefix: string;
  ext: '.json' | '.md';
  count: number;
  minSize: number;
  maxSize: number;
  layout: Layout;
  /** Entries with hand-picked names (spaces, unicode), written after the numbered ones. */
  extraNames?: readonly string[];
}

interface BinarySet {
  dir: string;
  prefix: string;
  count: number;
  minSize: number;
  maxSize: number;
  /** Sizes are multiplied by the scale, but never below this. */
  minScaledSize: number;
  /** Oxios' index files only shrink for small-scale runs; large-files blobs also grow with the scale. */
  growWithScale: boolean;
}

interface SymlinkSpec {
  path: string;
  /** A literal link text, or "the first numbered entry of this category" written relative to the link. */
  target: string | { firstEntryOf: string };
}

interface ProfileSpec {
  text: readonly TextCategory[];
  binaries?: BinarySet;
  tempFiles: number;
  symlinks: readonly SymlinkSpec[];
  emptyDirs: readonly string[];
}

const flat: Layout = { kind: 'flat' };

function oxiosCategories(topicFolders: number, counts: Record<string, number>): TextCategory[] {
  const category = (
    dir: string,
    prefix: string,
    ext: '.json' | '.md',
    minSize: number,
    maxSize: number,
    layout: Layout = flat,
  ): TextCategory => ({ dir, prefix, ext, count: counts[dir] ?? 0, minSize, maxSize, layout });
  return [
    category('seeds', 'seed', '.json', 1 * KiB, 16 * KiB),
    category('evals', 'eval', '.json', 2 * KiB, 32 * KiB),
    category('memory/conversations', 'conversation', '.md', 4 * KiB, 128 * KiB),
    category('memory/sessions', 'session', '.json', 1 * KiB, 32 * KiB),
    category('memory/facts', 'fact', '.json', 128, 2 * KiB),
    category('memory/episodes', 'episode', '.json', 1 * KiB, 8 * KiB),
    category('memory/knowledge', 'note', '.md', 8 * KiB, 256 * KiB, {
      kind: 'topics',
      folders: topicFolders,
    }),
    category('sessions', 'session', '.json', 2 * KiB, 64 * KiB),
    category('agent_groups', 'group', '.json', 1 * KiB, 4 * KiB),
  ];
}

const OXIOS_SYMLINKS: readonly SymlinkSpec[] = [
  { path: 'seeds/latest.json', target: { firstEntryOf: 'seeds' } },
  { path: 'memory/facts/pinned.json', target: { firstEntryOf: 'memory/facts' } },
  { path: 'memory/current-conversation.md', target: { firstEntryOf: 'memory/conversations' } },
  { path: 'memory/knowledge/latest-topic', target: 'topic-00' },
  // A directory symlink with an entry-like name: Oxios' list_category counts it as an entry.
  { path: 'sessions/archive.json', target: '../memory/sessions' },
  { path: 'seeds/host.json', target: '/etc/hostname' },
  { path: 'evals/outside.json', target: '../../outside-target' },
  { path: 'memory/facts/ghost.json', target: 'fact-missing.json' },
  { path: 'memory/episodes/broken.json', target: '../nowhere/episode.json' },
  { path: 'agent_groups/loop.json', target: 'loop.json' },
];

const PROFILES: Record<StoreProfile, ProfileSpec> = {
  oxios: {
    text: oxiosCategories(20, {
      seeds: 2_000,
      evals: 1_000,
      'memory/conversations': 5_000,
      'memory/sessions': 5_000,
      'memory/facts': 60_000,
      'memory/episodes': 20_000,
      'memory/knowledge': 2_000,
      sessions: 5_000,
      agent_groups: 200,
    }),
    binaries: {
      dir: 'memory/knowledge',
      prefix: 'index',
      count: 10,
      minSize: 16 * MiB,
      maxSize: 64 * MiB,
      minScaledSize: 256 * KiB,
      growWithScale: false,
    },
    tempFiles: 20,
    symlinks: OXIOS_SYMLINKS,
    emptyDirs: [],
  },
  // Where fixed costs (start-up, the final flush) weigh most: ~30k files of 64 B-40 KiB in the Oxios
  // categories plus four 24 MiB index files, ~220 MB in all.
  'oxios-small': {
    text: oxiosCategories(10, {
      seeds: 600,
      evals: 300,
      'memory/conversations': 800,
      'memory/sessions': 1_000,
      'memory/facts': 20_000,
      'memory/episodes': 6_000,
      'memory/knowledge': 300,
      sessions: 800,
      agent_groups: 200,
    }).map((category) => ({
      ...category,
      minSize: category.dir === 'memory/facts' ? 64 : category.minSize,
      maxSize: Math.min(category.maxSize, 40 * KiB),
    })),
    binaries: {
      dir: 'memory/knowledge',
      prefix: 'index',
      count: 4,
      minSize: 24 * MiB,
      maxSize: 24 * MiB,
      minScaledSize: 256 * KiB,
      growWithScale: false,
    },
    tempFiles: 20,
    symlinks: OXIOS_SYMLINKS,
    emptyDirs: [],
  },
  'tiny-files': {
    text: [
      {
        dir: 'memory/facts',
        prefix: 'fact',
        ext: '.json',
        count: 1_000_000,
        minSize: 64,
        maxSize: 1 * KiB,
        layout: { kind: 'shards', perFolder: 1_000 },
      },
    ],
    tempFiles: 0,
    symlinks: [],
    emptyDirs: [],
  },
  'large-files': {
    text: [],
    binaries: {
      dir: 'memory/knowledge',
      prefix: 'index',
      count: 16,
      minSize: 128 * MiB,
      maxSize: 128 * MiB,
      minScaledSize: 1 * MiB,
      growWithScale: true,
    },
    tempFiles: 0,
    symlinks: [],
    emptyDirs: [],
  },
  demo: {
    text: oxiosCategories(5, {
      seeds: 60,
      evals: 30,
      'memory/conversations': 150,
      'memory/sessions': 150,
      'memory/facts': 1_800,
      'memory/episodes': 600,
      'memory/knowledge': 60,
      sessions: 150,
      agent_groups: 10,
    }).map((category) =>
      category.dir === 'seeds'
        ? { ...category, extraNames: ['seed with space'] }
        : category.dir === 'memory/facts'
          ? { ...category, extraNames: ['fact-ünïcødé-日本語'.normalize('NFC')] }
          : category,
    ),
    binaries: {
      dir: 'memory/knowledge',
      prefix: 'index',
      count: 2,
      minSize: 256 * KiB,
      maxSize: 1 * MiB,
      minScaledSize: 256 * KiB,
      growWithScale: false,
    },
    tempFiles: 3,
    symlinks: [
      { path: 'seeds/latest.json', target: { firstEntryOf: 'seeds' } },
      { path: 'memory/knowledge/latest-topic', target: 'topic-00' },
      { path: 'seeds/host.json', target: '/etc/hostname' },
      { path: 'memory/facts/ghost.json', target: 'fact-missing.json' },
    ],
    emptyDirs: ['memory/inbox'],
  },
};

/** mulberry32: tiny, fast, and good enough to make sizes and slices look random. */
class Prng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  uint32(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor((this.uint32() / 2 ** 32) * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[this.uint32() % items.length]!;
  }

  hex(chars: number): string {
    let out = '';
    while (out.length < chars) out += this.uint32().toString(16).padStart(8, '0');
    return out.slice(0, chars);
  }

  uuid(): string {
    const h = this.hex(32);
    const variant = ((Number.parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20)}`;
  }
}

const WORDS = (
  'agent memory session fact episode knowledge seed eval group tool call result plan step goal task ' +
  'context prompt reply user system assistant message token embedding vector index search query rank ' +
  'score cache store snapshot backup restore verify manifest entry category topic note summary detail ' +
  'error retry timeout budget limit policy reward action observation state transition model weight ' +
  'schedule queue worker thread process signal event stream batch chunk shard replica leader follower ' +
  'commit rollback journal checkpoint version schema field value record table column cursor page ' +
  'alpha beta gamma delta epsilon zeta theta lambda sigma omega north south river mountain forest ' +
  'copper silver amber violet indigo crimson quartz basalt granite meadow harbor lantern compass'
).split(' ');

/**
 * Text bodies are slices of these pools at PRNG-chosen offsets: writing 1.5 GB of text must cost little
 * more than the writes themselves, which building every byte from the PRNG would not.
 */
const POOL_BYTES = 4 * MiB;

interface TextPools {
  /** Words, numbers and hex tokens with no quote, backslash or newline, so any slice is a JSON string body. */
  json: Buffer;
  /** The same tokens with line and paragraph breaks. */
  markdown: Buffer;
}

const WORD_BYTES = WORDS.map((word) => Buffer.from(word, 'latin1'));
const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1');
const [SPACE, COMMA, PERIOD, NEWLINE] = Buffer.from(' ,.\n', 'latin1');

/** Byte by byte on purpose: a string per token plus join() made this the slowest part of a demo store. */
function buildTextPools(rng: Prng): TextPools {
  const json = Buffer.allocUnsafe(POOL_BYTES);
  // Paragraph breaks make the Markdown text grow faster than the JSON text it mirrors.
  const markdown = Buffer.allocUnsafe(POOL_BYTES * 2);
  let jsonAt = 0;
  let markdownAt = 0;
  const put = (byte: number): void => {
    if (jsonAt < POOL_BYTES) json[jsonAt++] = byte;
    markdown[markdownAt++] = byte;
  };
  while (jsonAt < POOL_BYTES) {
    const roll = rng.uint32() % 20;
    if (roll === 0) {
      for (let bits = rng.uint32(), digit = 0; digit < 8; digit++, bits >>>= 4) put(HEX_DIGITS[bits & 0xf]!);
    } else if (roll === 1) {
      for (const digit of String(rng.uint32() % 100_000)) put(digit.charCodeAt(0));
    } else {
      for (const byte of rng.pick(WORD_BYTES)) put(byte);
    }
    const separator = rng.uint32() % 40;
    if (separator === 0) {
      put(PERIOD!);
      if (jsonAt < POOL_BYTES) json[jsonAt++] = SPACE!;
      markdown[markdownAt++] = NEWLINE!;
      markdown[markdownAt++] = NEWLINE!;
      continue;
    }
    if (separator < 5) put(PERIOD!);
    else if (separator < 8) put(COMMA!);
    put(SPACE!);
  }
  return { json, markdown: markdown.subarray(0, POOL_BYTES) };
}

/** Every mtime falls in the year after this instant, in whole seconds so every filesystem stores it exactly. */
const MTIME_EPOCH_SECONDS = Date.UTC(2025, 0, 1) / 1000;
const MTIME_SPREAD_SECONDS = 365 * 24 * 3600;

const BINARY_CHUNK_BYTES = 4 * MiB;

/** Headers (ids may be unicode) and footers are never this large. */
const HEADER_ROOM = 4 * KiB;

/** Below this size a file gets the short header so that 64-byte files still hold some body text. */
const RICH_HEADER_MIN_SIZE = 512;

class StoreWriter {
  readonly #root: string;
  readonly #rng: Prng;
  readonly #pools: TextPools;
  readonly #scratch: Buffer;
  readonly #dirs = new Set<string>();
  files = 0;
  bytes = 0;
  symlinks = 0;
  tempFiles = 0;

  constructor(root: string, rng: Prng, maxTextSize: number) {
    this.#root = root;
    this.#rng = rng;
    this.#pools = buildTextPools(rng);
    this.#scratch = Buffer.allocUnsafe(maxTextSize + HEADER_ROOM);
  }

  get dirs(): number {
    return this.#dirs.size;
  }

  ensureDir(relDir: string): void {
    if (relDir === '.' || this.#dirs.has(relDir)) return;
    fs.mkdirSync(path.join(this.#root, relDir), { recursive: true });
    for (let dir = relDir; dir !== '.' && !this.#dirs.has(dir); dir = path.posix.dirname(dir)) {
      this.#dirs.add(dir);
    }
  }

  #mtime(): number {
    return MTIME_EPOCH_SECONDS + this.#rng.int(0, MTIME_SPREAD_SECONDS - 1);
  }

  writeText(relPath: string, id: string, ext: '.json' | '.md', size: number): void {
    const rng = this.#rng;
    const mtime = this.#mtime();
    const createdAt = new Date(mtime * 1000).toISOString();
    let header: string;
    let footer: string;
    if (ext === '.md') {
      const title = `${rng.pick(WORDS)} ${rng.pick(WORDS)} ${rng.pick(WORDS)}`;
      header = `---\nid: ${id}\ncreated_at: ${createdAt}\nnonce: ${rng.hex(16)}\n---\n\n# ${title}\n\n`;
      footer = '\n';
    } else if (size >= RICH_HEADER_MIN_SIZE) {
      const tags = `["${rng.pick(WORDS)}","${rng.pick(WORDS)}"]`;
      header = `{"id":${JSON.stringify(id)},"created_at":"${createdAt}","nonce":"${rng.hex(16)}","tags":${tags},"text":"`;
      footer = '"}\n';
    } else {
      header = `{"id":${JSON.stringify(id)},"nonce":"${rng.hex(8)}","text":"`;
      footer = '"}\n';
    }
    const scratch = this.#scratch;
    const headerBytes = scratch.write(header, 0, 'utf8');
    const bodyBytes = Math.max(0, size - headerBytes - footer.length);
    const pool = ext === '.md' ? this.#pools.markdown : this.#pools.json;
    const start = rng.int(0, POOL_BYTES - bodyBytes);
    pool.copy(scratch, headerBytes, start, start + bodyBytes);
    const total = headerBytes + bodyBytes + scratch.write(footer, headerBytes + bodyBytes, 'latin1');

    const fd = fs.openSync(path.join(this.#root, relPath), 'wx', 0o644);
    try {
      writeAll(fd, scratch.subarray(0, total));
      fs.futimesSync(fd, mtime, mtime);
    } finally {
      fs.closeSync(fd);
    }
    this.files++;
    this.bytes += total;
  }

  /** AES-128-CTR keystream under a PRNG-drawn key: incompressible bytes at memory speed, fully reproducible. */
  writeBinary(relPath: string, size: number): void {
    const cipher = createCipheriv(
      'aes-128-ctr',
      Buffer.from(this.#rng.hex(32), 'hex'),
      Buffer.from(this.#rng.hex(32), 'hex'),
    );
    const zeros = Buffer.alloc(Math.min(size, BINARY_CHUNK_BYTES));
    const mtime = this.#mtime();
    const fd = fs.openSync(path.join(this.#root, relPath), 'wx', 0o644);
    try {
      for (let written = 0; written < size; written += BINARY_CHUNK_BYTES) {
        writeAll(fd, cipher.update(zeros.subarray(0, Math.min(BINARY_CHUNK_BYTES, size - written))));
      }
      fs.futimesSync(fd, mtime, mtime);
    } finally {
      fs.closeSync(fd);
    }
    this.files++;
    this.bytes += size;
  }

  symlink(relPath: string, target: string): void {
    const abs = path.join(this.#root, relPath);
    fs.symlinkSync(target, abs);
    const mtime = this.#mtime();
    fs.lutimesSync(abs, mtime, mtime);
    this.symlinks++;
  }

  /** Last, because creating entries bumps their parent's mtime. */
  stampDirs(): void {
    for (const dir of ['.', ...[...this.#dirs].sort()]) {
      const mtime = this.#mtime();
      fs.utimesSync(path.join(this.#root, dir), mtime, mtime);
    }
  }
}

function writeAll(fd: number, data: Uint8Array): void {
  for (let offset = 0; offset < data.length; ) {
    offset += fs.writeSync(fd, data, offset, data.length - offset);
  }
}

function scaledCount(count: number, scale: number): number {
  return count === 0 ? 0 : Math.max(1, Math.round(count * scale));
}

function padded(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/** Where entry `index` of a category lives, relative to the store root. */
function entryDir(category: TextCategory, index: number): string {
  const { layout } = category;
  switch (layout.kind) {
    case 'flat':
      return category.dir;
    case 'topics':
      return `${category.dir}/topic-${padded(index % Math.min(layout.folders, category.count), 2)}`;
    case 'shards': {
      const shards = Math.ceil(category.count / layout.perFolder);
      const width = Math.max(3, String(shards - 1).length);
      return `${category.dir}/shard-${padded(Math.floor(index / layout.perFolder), width)}`;
    }
  }
}

function entryId(category: TextCategory, index: number): string {
  return `${category.prefix}-${padded(index, Math.max(6, String(category.count - 1).length))}`;
}

/**
 * The `scale` at which `profile` holds about `files` files: the categories' entries grow with the scale; the
 * index files, temp files and hand-named entries do not (and every category keeps at least one entry).
 */
export function scaleForFiles(profile: StoreProfile, files: number): number {
  const spec = PROFILES[profile];
  const fixed =
    (spec.binaries?.count ?? 0) +
    spec.tempFiles +
    spec.text.reduce((sum, category) => sum + (category.extraNames?.length ?? 0), 0);
  const scalable = spec.text.reduce((sum, category) => sum + category.count, 0);
  return Math.max(files - fixed, 1) / Math.max(scalable, 1);
}

function subfolderCount(layout: Layout, entries: number): number {
  switch (layout.kind) {
    case 'flat':
      return 0;
    case 'topics':
      return Math.min(layout.folders, entries);
    case 'shards':
      return Math.ceil(entries / layout.perFolder);
  }
}

function scaledBinarySize(binaries: BinarySet, size: number, scale: number): number {
  const factor = binaries.growWithScale ? scale : Math.min(scale, 1);
  return Math.max(binaries.minScaledSize, Math.round(size * factor));
}

/** Upper bounds of what `generateStore` writes for these options, known before writing: what to size a disk for. */
export interface StoreBounds {
  /** Regular files, directories and symlinks. */
  entries: number;
  /** File contents, every file at its category's largest size. */
  bytes: number;
}

export function storeBounds(options: GenerateOptions): StoreBounds {
  const { profile, scale } = resolveOptions(options);
  const spec = PROFILES[profile];
  let entries = spec.tempFiles + spec.symlinks.length + spec.emptyDirs.length + 1;
  let bytes = spec.tempFiles * Math.max(0, ...spec.text.map((category) => category.maxSize));
  for (const category of spec.text) {
    const count = scaledCount(category.count, scale) + (category.extraNames?.length ?? 0);
    // The category's folder and the one above it (memory/), and the layout's subfolders.
    entries += count + 2 + subfolderCount(category.layout, count);
    bytes += count * category.maxSize;
  }
  if (spec.binaries) {
    entries += spec.binaries.count;
    bytes += spec.binaries.count * scaledBinarySize(spec.binaries, spec.binaries.maxSize, scale);
  }
  return { entries, bytes };
}

function resolveOptions(options: GenerateOptions): Required<GenerateOptions> {
  const { profile, scale = 1, seed = 1 } = options;
  if (!STORE_PROFILES.includes(profile)) {
    throw new RangeError(
      `\`profile\` must be one of ${STORE_PROFILES.join(', ')}, got \`${String(profile)}\``,
    );
  }
  if (!Number.isFinite(scale) || scale <= 0) {
    throw new RangeError(`\`scale\` must be a finite number > 0, got \`${scale}\``);
  }
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
    throw new RangeError(`\`seed\` must be an integer in [0, 2^32), got \`${seed}\``);
  }
  return { profile, scale, seed };
}

/**
 * Writes a store of the given profile under `root` (created if missing; it should be empty, and an existing
 * file at a generated path is an error). Uses synchronous fs calls throughout: generation is I/O-bound and
 * the sync calls avoid queueing on libuv's 4-thread pool.
 */
export async function generateStore(root: string, options: GenerateOptions): Promise<GeneratedStore> {
  const { profile, scale, seed } = resolveOptions(options);
  const spec = PROFILES[profile];
  const absRoot = path.resolve(root);
  fs.mkdirSync(absRoot, { recursive: true });

  const categories = spec.text.map((category) => ({
    ...category,
    count: scaledCount(category.count, scale),
  }));
  const maxTextSize = Math.max(0, ...categories.map((category) => category.maxSize));
  const rng = new Prng(seed);
  const writer = new StoreWriter(absRoot, rng, maxTextSize);

  const writeEntry = (category: TextCategory, dir: string, id: string, name = `${id}${category.ext}`): void =>
    writer.writeText(`${dir}/${name}`, id, category.ext, rng.int(category.minSize, category.maxSize));

  for (const category of categories) {
    for (let index = 0; index < category.count; index++) {
      const dir = entryDir(category, index);
      writer.ensureDir(dir);
      writeEntry(category, dir, entryId(category, index));
    }
    for (const id of category.extraNames ?? []) {
      writer.ensureDir(category.dir);
      writeEntry(category, category.dir, id);
    }
  }

  if (spec.binaries) {
    const binaries = spec.binaries;
    writer.ensureDir(binaries.dir);
    for (let index = 0; index < binaries.count; index++) {
      const size = rng.int(
        scaledBinarySize(binaries, binaries.minSize, scale),
        scaledBinarySize(binaries, binaries.maxSize, scale),
      );
      writer.writeBinary(`${binaries.dir}/${binaries.prefix}-${padded(index, 2)}.bin`, size);
    }
  }

  // Oxios writes `<name>.<pid>.<uuid>.tmp` beside the entry and renames it over; a snapshot can catch these.
  const flatCategories = categories.filter((category) => category.layout.kind === 'flat');
  for (let index = 0; index < spec.tempFiles; index++) {
    const category = flatCategories[index % flatCategories.length]!;
    const id = entryId(category, rng.int(0, category.count - 1));
    writeEntry(category, category.dir, id, `${id}${category.ext}.${rng.int(1000, 99_999)}.${rng.uuid()}.tmp`);
    writer.tempFiles++;
  }

  for (const dir of spec.emptyDirs) writer.ensureDir(dir);

  for (const link of spec.symlinks) {
    const linkDir = path.posix.dirname(link.path);
    writer.ensureDir(linkDir);
    let target: string;
    if (typeof link.target === 'string') {
      target = link.target;
    } else {
      const { firstEntryOf } = link.target;
      const category = categories.find((candidate) => candidate.dir === firstEntryOf)!;
      const entry = `${entryDir(category, 0)}/${entryId(category, 0)}${category.ext}`;
      target = path.posix.relative(linkDir, entry);
    }
    writer.symlink(link.path, target);
  }

  writer.stampDirs();
  return {
    root: absRoot,
    files: writer.files,
    bytes: writer.bytes,
    dirs: writer.dirs,
    symlinks: writer.symlinks,
    tempFiles: writer.tempFiles,
  };
}
