// Snapshot ids and repository names: ids from chosen times (never the system clock), the suffix rule for
// several snapshots in one second, text order equal to time order, and which names are snapshots, unfinished
// work, the repository's own files, or someone else's.

import { describe, expect, it } from 'vitest';
import {
  classifyRepositoryEntry,
  compareSnapshotIds,
  deletingName,
  idsInUse,
  inProgressName,
  MAX_SNAPSHOTS_PER_SECOND,
  newSnapshotId,
  parseSnapshotId,
} from '../dist/src/format/snapshot-id.js';

const at = (iso: string) => Date.parse(iso);
const none = () => false;

describe('newSnapshotId', () => {
  it('names the UTC second without colons', () => {
    expect(newSnapshotId(at('2026-11-30T02:47:11.999Z'), none)).toBe('2026-11-30T02-47-11Z');
    expect(newSnapshotId(at('2026-11-30T04:47:11+02:00'), none)).toBe('2026-11-30T02-47-11Z');
    expect(newSnapshotId(at('0099-01-02T03:04:05Z'), none)).toBe('0099-01-02T03-04-05Z');
  });

  it('adds a two-digit suffix when the second is taken in any form', () => {
    const time = at('2026-11-30T02:47:11Z');
    const listing = ['2026-11-30T02-47-11Z', inProgressName('2026-11-30T02-47-11Z-01'), 'notes.txt'];
    const taken = idsInUse(listing);
    expect(newSnapshotId(time, (id) => taken.has(id))).toBe('2026-11-30T02-47-11Z-02');
    expect(idsInUse([deletingName('2026-11-30T02-47-11Z')])).toEqual(new Set(['2026-11-30T02-47-11Z']));
  });

  it('gives up (null) when a second already holds the maximum', () => {
    const time = at('2026-11-30T02:47:11Z');
    const taken = new Set<string>();
    for (let i = 0; i < MAX_SNAPSHOTS_PER_SECOND; i++) {
      const id = newSnapshotId(time, (candidate) => taken.has(candidate));
      expect(id).not.toBeNull();
      taken.add(id!);
    }
    expect(newSnapshotId(time, (candidate) => taken.has(candidate))).toBeNull();
  });

  it('refuses times that have no four-digit year', () => {
    expect(() => newSnapshotId(at('+010000-01-01T00:00:00Z'), none)).toThrow(RangeError);
    expect(() => newSnapshotId(Number.NaN, none)).toThrow(RangeError);
  });
});

describe('parseSnapshotId', () => {
  it('round-trips an id and its suffix', () => {
    expect(parseSnapshotId('2026-11-30T02-47-11Z')).toEqual({
      id: '2026-11-30T02-47-11Z',
      timeMs: at('2026-11-30T02:47:11Z'),
      sequence: 0,
    });
    expect(parseSnapshotId('2026-11-30T02-47-11Z-07')?.sequence).toBe(7);
  });

  it('rejects names that are not exactly an id', () => {
    for (const name of [
      '2026-11-30T02:47:11Z',
      '2026-11-30T02-47-11',
      '2026-11-30T02-47-11Z-1',
      '2026-11-30T02-47-11Z-00',
      '2026-11-30T02-47-11Z-100',
      '2026-02-30T02-47-11Z', // no such day
      '2026-11-30T24-00-00Z',
      '2026-11-30t02-47-11z',
      ' 2026-11-30T02-47-11Z',
      '2026-11-30T02-47-11Z.tmp',
    ]) {
      expect(parseSnapshotId(name), name).toBeNull();
    }
  });

  it('orders ids by time then suffix, which is also their text order', () => {
    const names = [
      '2026-11-30T02-47-12Z',
      '2026-11-30T02-47-11Z-02',
      '2026-11-30T02-47-11Z',
      '2027-01-01T00-00-00Z',
      '2026-11-30T02-47-11Z-10',
      '2026-11-30T02-47-11Z-09',
    ];
    const byTime = names.map((name) => parseSnapshotId(name)!).sort(compareSnapshotIds);
    expect(byTime.map((id) => id.id)).toEqual([...names].sort());
  });
});

describe('classifyRepositoryEntry', () => {
  it('tells snapshots, unfinished work, the repository’s own files and foreign names apart', () => {
    const id = '2026-11-30T02-47-11Z';
    expect(classifyRepositoryEntry(id)).toMatchObject({ kind: 'snapshot', id: { id } });
    expect(classifyRepositoryEntry(inProgressName(id))).toMatchObject({ kind: 'in-progress', id: { id } });
    expect(classifyRepositoryEntry(deletingName(id))).toMatchObject({ kind: 'being-deleted', id: { id } });
    for (const name of ['latest', '.statesnap-repository', '.locks', '.latest.tmp']) {
      expect(classifyRepositoryEntry(name).kind, name).toBe('repository');
    }
    for (const name of [
      '.partial-',
      '.partial-notes',
      'backup-old',
      `${id}.replaced-1-abcd`,
      `${id}.partial-12-ab`,
    ]) {
      expect(classifyRepositoryEntry(name).kind, name).toBe('foreign');
    }
  });
});
