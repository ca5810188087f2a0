// Host stats: the /proc parsers on sample text, the sampler's deltas, and the live readers on this machine.
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CpuSampler, cpuUtilizationBetween, createHostStatsSource, parseMeminfo, parseProcStat, readDiskStats, readMemoryStats,
} from '../../src/worker/stats.js';
import { waitFor } from '../support/wait.js';

const procStat = (user: number, idle: number, iowait = 0): string =>
  [
    `cpu  ${user} 0 100 ${idle} ${iowait} 0 5 0 0 0`,
    'cpu0 1 0 1 1 0 0 0 0 0 0',
    'intr 123 0 0',
    'ctxt 456',
    'btime 1700000000',
  ].join('\n');

const meminfo = `MemTotal:       24683656 kB
MemFree:        22726512 kB
MemAvailable:   22944816 kB
Buffers:            5620 kB
Cached:           390312 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
`;

describe('parseProcStat', () => {
  it('reads the aggregate cpu line: idle includes iowait, total is the first eight fields', () => {
    expect(parseProcStat(procStat(1000, 5000, 200))).toEqual({ idleTicks: 5200, totalTicks: 1000 + 100 + 5000 + 200 + 5 });
  });

  it('reads a real line from a 2-core machine', () => {
    const text = 'cpu  155599 0 15543 215786 772 0 405 485 0 0\ncpu0 76686 0 7132 109922 140 0 159 242 0 0\n';
    expect(parseProcStat(text)).toEqual({ idleTicks: 215786 + 772, totalTicks: 155599 + 15543 + 215786 + 772 + 405 + 485 });
  });

  it('accepts old kernels with only four fields, and refuses text without a cpu line', () => {
    expect(parseProcStat('cpu 1 2 3 4\n')).toEqual({ idleTicks: 4, totalTicks: 10 });
    expect(() => parseProcStat('intr 1 2\n')).toThrow(/no aggregate cpu line/);
    expect(() => parseProcStat('cpu 1 x 3 4\n')).toThrow(/malformed/);
  });
});

describe('cpuUtilizationBetween', () => {
  it('is the busy share of the ticks between two readings', () => {
    const a = parseProcStat(procStat(1000, 5000));
    const b = parseProcStat(procStat(1300, 5100));
    expect(cpuUtilizationBetween(a, b)).toBeCloseTo(300 / 400);
  });

  it('is null when no ticks passed or the counters went backwards', () => {
    const a = parseProcStat(procStat(1000, 5000));
    expect(cpuUtilizationBetween(a, a)).toBeNull();
    expect(cpuUtilizationBetween(parseProcStat(procStat(2000, 9000)), a)).toBeNull();
  });
});

describe('parseMeminfo', () => {
  it('reads MemTotal and MemAvailable as bytes', () => {
    expect(parseMeminfo(meminfo)).toEqual({ memoryTotalBytes: 24683656 * 1024, memoryAvailableBytes: 22944816 * 1024 });
  });

  it('falls back to MemFree + Buffers + Cached on kernels without MemAvailable', () => {
    const old = meminfo.split('\n').filter((l) => !l.startsWith('MemAvailable')).join('\n');
    expect(parseMeminfo(old).memoryAvailableBytes).toBe((22726512 + 5620 + 390312) * 1024);
  });

  it('refuses text without MemTotal', () => {
    expect(() => parseMeminfo('MemFree: 1 kB\n')).toThrow(/MemTotal/);
  });
});

describe('CpuSampler', () => {
  it('returns null first, then the utilization since the previous sample', async () => {
    const readings = [procStat(1000, 5000), procStat(1100, 5300), procStat(1500, 5300)];
    const sampler = new CpuSampler(async () => readings.shift() ?? '');
    expect(await sampler.sample()).toBeNull();
    expect(await sampler.sample()).toBeCloseTo(100 / 400);
    expect(await sampler.sample()).toBe(1);
  });

  it('returns null when /proc/stat cannot be read', async () => {
    const sampler = new CpuSampler(() => Promise.reject(new Error('ENOENT')));
    expect(await sampler.sample()).toBeNull();
  });
});

describe('live readers', () => {
  it('read this host: memory, disk under a directory not created yet, and a utilization between 0 and 1', async () => {
    const memory = await readMemoryStats();
    expect(memory.memoryTotalBytes).toBeGreaterThan(0);
    expect(memory.memoryAvailableBytes).toBeLessThanOrEqual(memory.memoryTotalBytes);
    const disk = await readDiskStats(path.join(tmpdir(), 'minkube-not-created', 'deeper'));
    expect(disk.diskFreeBytes).toBeGreaterThan(0);
    expect(disk.diskFreeBytes).toBeLessThanOrEqual(disk.diskTotalBytes);
    // The sampler's readings are kept, so that the test waits for the CPU counters to move past the first one.
    const readings: string[] = [];
    const readProcStat = async (): Promise<string> => {
      const text = await readFile('/proc/stat', 'utf8');
      readings.push(text);
      return text;
    };
    const source = createHostStatsSource({ diskPath: tmpdir(), sampler: new CpuSampler(readProcStat) });
    const primed = await waitFor('the first /proc/stat reading', () => readings[0]);
    await waitFor('a CPU tick counted since the first reading', async () => parseProcStat(await readFile('/proc/stat', 'utf8')).totalTicks > parseProcStat(primed).totalTicks);
    const stats = await source();
    expect(Object.keys(stats).sort()).toEqual(['cpuUtilization', 'diskFreeBytes', 'memoryAvailableBytes', 'memoryTotalBytes']);
    expect(stats.cpuUtilization).not.toBeNull();
    expect(stats.cpuUtilization).toBeGreaterThanOrEqual(0);
    expect(stats.cpuUtilization).toBeLessThanOrEqual(1);
  });
});
