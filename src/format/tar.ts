// The tar (POSIX ustar, with pax extended headers where ustar cannot say it) of an object-storage pack: written
// so that `tar x` of a pack gives its files back, and read back to check one. Imports nothing but the
// language: the file workers build packs with it, and they load only node:* and plain modules.

export const TAR_BLOCK = 512;
/** Two zero blocks end an archive. */
export const TAR_END_BYTES = 2 * TAR_BLOCK;

/** What a pack records about one regular file (the index keeps the exact metadata; tar keeps what it can). */
export interface TarFileHeader {
  /** The relative path's bytes (a name need not be valid UTF-8). */
  path: Uint8Array;
  size: number;
  mode: number;
  /** Whole seconds go into the ustar field; ustar has no finer field, and the index has the nanoseconds. */
  mtimeSeconds: number;
  uid: number;
  gid: number;
}

export type TarEntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'other';

/** One member of an archive as `readTar` finds it. */
export interface TarEntry {
  path: Uint8Array;
  type: TarEntryType;
  size: number;
  mode: number;
  mtimeSeconds: number;
  uid: number;
  gid: number;
  /** Where the member's content starts in the archive. */
  dataOffset: number;
}

/** An archive that is not a well-formed tar of the kind `TarWriter` makes (or any ustar/pax tar). */
export class TarFormatError extends Error {
  override readonly name = 'TarFormatError';
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

const NAME_FIELD = 100;
const PREFIX_FIELD = 155;
// Largest values the octal fields hold: 11 digits (size, mtime), 7 digits (uid, gid).
const MAX_OCTAL_11 = 0o77777777777;
const MAX_OCTAL_7 = 0o7777777;
const MAGIC = 'ustar\0';
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The bytes a file occupies in an archive after its header(s): its content rounded up to whole blocks. */
export function paddedSize(size: number): number {
  return Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
}

/** Where ustar's 155-byte prefix and 100-byte name can split a path at a `/`, or null if they cannot. */
function ustarSplit(path: Uint8Array): { prefix: Uint8Array; name: Uint8Array } | null {
  if (path.length <= NAME_FIELD) return { prefix: new Uint8Array(0), name: path };
  for (let slash = path.length - 1; slash > 0; slash--) {
    if (path[slash] !== 0x2f) continue;
    const nameLength = path.length - slash - 1;
    if (nameLength > NAME_FIELD) return null;
    if (slash <= PREFIX_FIELD && nameLength > 0) {
      return { prefix: path.subarray(0, slash), name: path.subarray(slash + 1) };
    }
  }
  return null;
}

/** One pax record: `<length> <key>=<value>\n`, where the length counts the record's own digits. */
function paxRecord(key: string, value: Uint8Array): Uint8Array {
  const body = 1 + key.length + 1 + value.length + 1;
  let length = body + String(body).length;
  if (String(length).length !== String(body).length) length = body + String(length).length;
  const head = encoder.encode(`${length} ${key}=`);
  const record = new Uint8Array(length);
  record.set(head, 0);
  record.set(value, head.length);
  record[length - 1] = 0x0a;
  return record;
}

/** The pax records a file needs beyond ustar, empty when ustar says it all. */
function paxRecordsFor(header: TarFileHeader): Uint8Array[] {
  const records: Uint8Array[] = [];
  // pax says a path is UTF-8 and offers `hdrcharset=BINARY` for other bytes, but GNU tar warns about that
  // keyword; without it, GNU tar and Python's tarfile both take the bytes as they are.
  if (ustarSplit(header.path) === null) records.push(paxRecord('path', header.path));
  if (header.size > MAX_OCTAL_11) records.push(paxRecord('size', encoder.encode(String(header.size))));
  if (header.mtimeSeconds < 0 || header.mtimeSeconds > MAX_OCTAL_11) {
    records.push(paxRecord('mtime', encoder.encode(String(header.mtimeSeconds))));
  }
  if (header.uid > MAX_OCTAL_7) records.push(paxRecord('uid', encoder.encode(String(header.uid))));
  if (header.gid > MAX_OCTAL_7) records.push(paxRecord('gid', encoder.encode(String(header.gid))));
  return records;
}

function writeOctal(block: Uint8Array, offset: number, width: number, value: number): void {
  // A value the field cannot hold is written as 0; the pax record before the header carries the real one.
  const digits = value >= 0 && value < 8 ** (width - 1) ? value.toString(8) : '0';
  block.set(encoder.encode(digits.padStart(width - 1, '0')), offset);
  block[offset + width - 1] = 0;
}

function writeHeaderBlock(
  block: Uint8Array,
  fields: {
    name: Uint8Array;
    prefix: Uint8Array;
    typeflag: string;
    size: number;
    mode: number;
    mtime: number;
    uid: number;
    gid: number;
  },
): void {
  block.fill(0, 0, TAR_BLOCK);
  block.set(fields.name.subarray(0, NAME_FIELD), 0);
  writeOctal(block, 100, 8, fields.mode & 0o7777);
  writeOctal(block, 108, 8, fields.uid);
  writeOctal(block, 116, 8, fields.gid);
  writeOctal(block, 124, 12, fields.size);
  writeOctal(block, 136, 12, fields.mtime);
  block[156] = fields.typeflag.charCodeAt(0);
  block.set(encoder.encode(MAGIC), 257);
  block.set(encoder.encode('00'), 263);
  block.set(fields.prefix.subarray(0, PREFIX_FIELD), 345);
  // The checksum is computed with its own field as eight spaces, then written as six digits, NUL, space.
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < TAR_BLOCK; i++) sum += block[i]!;
  block.set(encoder.encode(sum.toString(8).padStart(6, '0')), 148);
  block[154] = 0;
  block[155] = 0x20;
}

/** How many bytes the header(s) of this file take: one ustar block, plus a pax header and its records. */
export function headerSize(header: TarFileHeader): number {
  const records = paxRecordsFor(header);
  if (records.length === 0) return TAR_BLOCK;
  const recordBytes = records.reduce((total, record) => total + record.length, 0);
  return TAR_BLOCK + paddedSize(recordBytes) + TAR_BLOCK;
}

/** The bytes one file adds to an archive: header(s), content, padding. */
export function entrySize(header: TarFileHeader): number {
  return headerSize(header) + paddedSize(header.size);
}

/**
 * Writes the header(s) of a regular file at `offset` of `target` (which must have `headerSize(header)` bytes
 * there) and returns the offset where its content goes.
 */
export function writeFileHeader(target: Uint8Array, offset: number, header: TarFileHeader): number {
  const fields = {
    size: header.size,
    mode: header.mode,
    mtime: header.mtimeSeconds,
    uid: header.uid,
    gid: header.gid,
  };
  const split = ustarSplit(header.path);
  const records = paxRecordsFor(header);
  let at = offset;
  if (records.length > 0) {
    const recordBytes = records.reduce((total, record) => total + record.length, 0);
    // GNU tar and bsdtar ignore this name; it only has to be harmless when a tool without pax extracts it.
    writeHeaderBlock(target.subarray(at, at + TAR_BLOCK), {
      ...fields,
      name: encoder.encode('PaxHeader'),
      prefix: new Uint8Array(0),
      typeflag: 'x',
      size: recordBytes,
      mode: 0o644,
    });
    at += TAR_BLOCK;
    for (const record of records) {
      target.set(record, at);
      at += record.length;
    }
    const padding = paddedSize(recordBytes) - recordBytes;
    target.fill(0, at, at + padding);
    at += padding;
  }
  // Without a ustar split the pax `path` names the file; the ustar name keeps the path's last 100 bytes.
  const name = split?.name ?? header.path.subarray(Math.max(0, header.path.length - NAME_FIELD));
  writeHeaderBlock(target.subarray(at, at + TAR_BLOCK), {
    ...fields,
    name,
    prefix: split?.prefix ?? new Uint8Array(0),
    typeflag: '0',
  });
  return at + TAR_BLOCK;
}

/**
 * Builds one archive in memory: files appended one after another, each returning where its content starts,
 * then `finish()` adds the end blocks. The buffer grows by doubling, so a pack is built with few copies.
 */
export class TarWriter {
  #buffer: Uint8Array;
  #length = 0;
  #finished = false;

  constructor(initialCapacity = 1 << 20) {
    this.#buffer = new Uint8Array(Math.max(initialCapacity, TAR_END_BYTES));
  }

  /** Bytes written so far (without the end blocks until `finish()`). */
  get length(): number {
    return this.#length;
  }

  #ensure(extra: number): void {
    const needed = this.#length + extra;
    if (needed <= this.#buffer.length) return;
    let capacity = this.#buffer.length;
    while (capacity < needed) capacity *= 2;
    const grown = new Uint8Array(capacity);
    grown.set(this.#buffer.subarray(0, this.#length));
    this.#buffer = grown;
  }

  /** Appends a regular file; returns the offset of its content in the archive. */
  addFile(header: TarFileHeader, content: Uint8Array): number {
    if (this.#finished) throw new Error('Assertion failed: file added to a finished archive');
    if (content.length !== header.size) {
      throw new Error(
        `Assertion failed: content has ${content.length} bytes, the header says ${header.size}`,
      );
    }
    this.#ensure(entrySize(header));
    const dataOffset = writeFileHeader(this.#buffer, this.#length, header);
    this.#buffer.set(content, dataOffset);
    const end = dataOffset + paddedSize(header.size);
    this.#buffer.fill(0, dataOffset + header.size, end);
    this.#length = end;
    return dataOffset;
  }

  /** Adds the end blocks and returns the archive (a view of the writer's buffer). */
  finish(): Uint8Array {
    if (!this.#finished) {
      this.#ensure(TAR_END_BYTES);
      this.#buffer.fill(0, this.#length, this.#length + TAR_END_BYTES);
      this.#length += TAR_END_BYTES;
      this.#finished = true;
    }
    return this.#buffer.subarray(0, this.#length);
  }
}

function readOctal(block: Uint8Array, offset: number, width: number, at: number, what: string): number {
  let value = 0;
  let i = offset;
  const end = offset + width;
  while (i < end && block[i] === 0x20) i++;
  for (; i < end; i++) {
    const byte = block[i]!;
    if (byte === 0 || byte === 0x20) break;
    if (byte < 0x30 || byte > 0x37) throw new TarFormatError(`header field ${what} is not octal`, at);
    value = value * 8 + (byte - 0x30);
  }
  return value;
}

function fieldBytes(block: Uint8Array, offset: number, width: number): Uint8Array {
  const field = block.subarray(offset, offset + width);
  const nul = field.indexOf(0);
  return nul === -1 ? field : field.subarray(0, nul);
}

function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < TAR_BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

/** The pax records of an extended header, as key -> raw value bytes. */
function parsePaxRecords(data: Uint8Array, at: number): Map<string, Uint8Array> {
  const records = new Map<string, Uint8Array>();
  let i = 0;
  while (i < data.length) {
    if (data[i] === 0) break;
    const space = data.indexOf(0x20, i);
    const length = space === -1 ? Number.NaN : Number(decoder.decode(data.subarray(i, space)));
    if (
      !Number.isInteger(length) ||
      length <= 0 ||
      i + length > data.length ||
      data[i + length - 1] !== 0x0a
    ) {
      throw new TarFormatError('malformed pax record', at);
    }
    const record = data.subarray(space + 1, i + length - 1);
    const equals = record.indexOf(0x3d);
    if (equals === -1) throw new TarFormatError('pax record without `=`', at);
    records.set(decoder.decode(record.subarray(0, equals)), record.subarray(equals + 1));
    i += length;
  }
  return records;
}

const TYPES: Record<string, TarEntryType> = {
  '0': 'file',
  '\0': 'file',
  '5': 'dir',
  '2': 'symlink',
  '1': 'hardlink',
};

function paxNumber(records: Map<string, Uint8Array>, key: string, at: number): number | undefined {
  const value = records.get(key);
  if (value === undefined) return undefined;
  const text = decoder.decode(value);
  // pax times may carry a fraction; the whole seconds are what the ustar fields hold too.
  const number = Number(key === 'mtime' ? text.split('.')[0] : text);
  if (!Number.isSafeInteger(number)) throw new TarFormatError(`pax ${key} is not a number`, at);
  return number;
}

/**
 * Yields the members of an archive with where each one's content starts. Refuses (TarFormatError) a header
 * whose checksum is wrong, a member that runs past the end, and an archive without its end blocks.
 */
export function* readTar(archive: Uint8Array): Generator<TarEntry> {
  let at = 0;
  let pax: Map<string, Uint8Array> | null = null;
  while (at + TAR_BLOCK <= archive.length) {
    const block = archive.subarray(at, at + TAR_BLOCK);
    if (isZeroBlock(block)) {
      if (pax !== null) throw new TarFormatError('pax header without a member after it', at);
      return;
    }
    let sum = 0;
    for (let i = 0; i < TAR_BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
    if (readOctal(block, 148, 8, at, 'chksum') !== sum)
      throw new TarFormatError('header checksum mismatch', at);
    const typeflag = String.fromCharCode(block[156]!);
    const size = readOctal(block, 124, 12, at, 'size');
    const dataOffset = at + TAR_BLOCK;
    if (typeflag === 'x' || typeflag === 'g') {
      if (dataOffset + size > archive.length) throw new TarFormatError('pax header runs past the end', at);
      // A global header applies to every later member; statesnap writes none, and other tools' are ignored.
      if (typeflag === 'x') pax = parsePaxRecords(archive.subarray(dataOffset, dataOffset + size), at);
      at = dataOffset + paddedSize(size);
      continue;
    }
    const prefix = fieldBytes(block, 345, PREFIX_FIELD);
    const name = fieldBytes(block, 0, NAME_FIELD);
    let path: Uint8Array = name;
    if (prefix.length > 0) {
      path = new Uint8Array(prefix.length + 1 + name.length);
      path.set(prefix, 0);
      path[prefix.length] = 0x2f;
      path.set(name, prefix.length + 1);
    }
    const entry: TarEntry = {
      path: pax?.get('path') ?? path,
      type: TYPES[typeflag] ?? 'other',
      size: pax === null ? size : (paxNumber(pax, 'size', at) ?? size),
      mode: readOctal(block, 100, 8, at, 'mode'),
      mtimeSeconds: (pax && paxNumber(pax, 'mtime', at)) ?? readOctal(block, 136, 12, at, 'mtime'),
      uid: (pax && paxNumber(pax, 'uid', at)) ?? readOctal(block, 108, 8, at, 'uid'),
      gid: (pax && paxNumber(pax, 'gid', at)) ?? readOctal(block, 116, 8, at, 'gid'),
      dataOffset,
    };
    pax = null;
    // Only regular files carry content here; a size on a link or directory header is not followed by data.
    const contentSize = entry.type === 'file' || entry.type === 'other' ? entry.size : 0;
    if (dataOffset + contentSize > archive.length) throw new TarFormatError('member runs past the end', at);
    yield entry;
    at = dataOffset + paddedSize(contentSize);
  }
  throw new TarFormatError('archive ends without its end blocks', at);
}
