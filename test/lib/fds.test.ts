// The process's descriptor limit as /proc shows it, the share a server's connections may take of it, and how often a
// shortage is said.
import { describe, expect, it } from 'vitest';
import { FdWatch, fdLimitNote, fdShortageMessage, fdsReserved, parseMaxOpenFiles, readFdLimit, type FdShortage } from '../../src/lib/fds.js';
import { limits } from '../../src/lib/limits.js';
import { ManualClock } from '../support/manual-clock.js';

const procLimits = (soft: string, hard: string): string =>
  [
    'Limit                     Soft Limit           Hard Limit           Units     ',
    'Max cpu time              unlimited            unlimited            seconds   ',
    `Max open files            ${soft.padEnd(20)} ${hard.padEnd(20)} files     `,
    'Max locked memory         8388608              8388608              bytes     ',
    '',
  ].join('\n');

describe('parseMaxOpenFiles', () => {
  it('reads the soft limit, unlimited as Infinity, and nothing from a text without the line', () => {
    expect(parseMaxOpenFiles(procLimits('64', '4096'))).toBe(64);
    expect(parseMaxOpenFiles(procLimits('unlimited', 'unlimited'))).toBe(Infinity);
    expect(parseMaxOpenFiles('Limit  Soft Limit\nMax cpu time  unlimited  unlimited  seconds\n')).toBeNull();
    expect(parseMaxOpenFiles(procLimits('lots', '4096'))).toBeNull();
  });
});

describe('fdsReserved', () => {
  it('keeps an eighth of the limit for the rest of the process, within its floor and ceiling', () => {
    expect(fdsReserved(64)).toBe(limits.processFdsReservedMin);
    expect(fdsReserved(1024)).toBe(128);
    expect(fdsReserved(1_048_576)).toBe(limits.processFdsReservedMax);
    expect(fdsReserved(Infinity)).toBe(limits.processFdsReservedMax);
  });
});

describe.skipIf(readFdLimit() === null)('FdWatch', () => {
  it('calls a descriptor crowded from the reserved few below the limit up, and none while the limit is unlimited', () => {
    const watch = new FdWatch({ clock: new ManualClock(), warn: () => undefined });
    watch.start();
    try {
      const limit = watch.fdLimit!;
      expect(limit).toBe(readFdLimit());
      if (limit === Infinity) {
        expect(watch.crowded(1_000_000)).toBe(false);
        return;
      }
      const first = limit - fdsReserved(limit);
      expect(watch.crowded(first - 1)).toBe(false);
      expect(watch.crowded(first)).toBe(true);
      expect(watch.crowded(undefined)).toBe(false);
    } finally {
      watch.stop();
    }
  });

  it('says a shortage at once, then at most every fdWarnIntervalMs, with the connections refused meanwhile', () => {
    const clock = new ManualClock(1_000_000);
    const said: FdShortage[] = [];
    const watch = new FdWatch({ clock, warn: (s) => said.push(s) });
    watch.start();
    try {
      watch.refusedOne();
      watch.refusedOne();
      watch.evictedOne();
      watch.refusedOne();
      expect(said).toHaveLength(1);
      expect(said[0]).toMatchObject({ fdLimit: readFdLimit(), connectionsRefused: 1, processOut: false });
      expect(said[0]!.openFds).toBeGreaterThan(0);
      clock.advance(limits.fdWarnIntervalMs - 1);
      watch.evictedOne();
      expect(said).toHaveLength(1);
      clock.advance(1);
      watch.refusedOne();
      expect(said).toHaveLength(2);
      expect(said[1]).toMatchObject({ connectionsRefused: 3, processOut: false });
    } finally {
      watch.stop();
    }
  });
});

describe('fdShortageMessage', () => {
  it('names the limit, what happens to connections, and how to raise it', () => {
    const base = { fdLimit: 64, fdsReserved: 16, openFds: 60, connectionsRefused: 2 };
    expect(fdShortageMessage({ ...base, processOut: false })).toMatch(/^out of file descriptors for API connections \(limit 64, the last 16 kept .*closed at once; raise the limit \(LimitNOFILE=/);
    expect(fdShortageMessage({ ...base, processOut: true })).toMatch(/^out of file descriptors \(limit 64\): .*LimitNOFILE=/);
    expect(fdShortageMessage({ ...base, fdLimit: null, processOut: true })).toContain('(limit unknown)');
  });
});

describe('fdLimitNote', () => {
  it('says nothing while the limit leaves connectionsMax beside the reserve, and names both numbers when it does not', () => {
    expect(fdLimitNote(1_048_576, 1024)).toBeNull();
    expect(fdLimitNote(2048, 1024)).toBeNull();
    expect(fdLimitNote(null, 1024)).toBeNull();
    expect(fdLimitNote(1024, 1024)).toMatch(/^the file descriptor limit \(1024\) is below the 1024 connections this port takes plus the 128 kept .* past descriptor 896 /);
  });
});
