// Host stats a worker reports with its heartbeat: CPU utilization as the delta between two /proc/stat readings,
// memory from /proc/meminfo, free disk under the data dir (statfs). Parsers are pure; off Linux, memory comes from os.*.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';

/** Aggregate CPU time since boot, in clock ticks (USER_HZ). */
export interface CpuTimes {
  idleTicks: number;
  totalTicks: number;
}

export interface MemoryStats {
  memoryTotalBytes: number;
  memoryAvailableBytes: number;
}

export interface DiskStats {
  diskFreeBytes: number;
  diskTotalBytes: number;
}

/** The fields of WorkerStats (src/contracts/task-model.ts) that come from the host. */
export interface HostStats {
  /** 0..1 since the previous reading; null on the first reading or without /proc/stat. */
  cpuUtilization: number | null;
  memoryTotalBytes: number;
  memoryAvailableBytes: number;
  diskFreeBytes: number;
}

/**
 * The aggregate "cpu" line of /proc/stat: user nice system idle iowait irq softirq steal [guest guest_nice].
 * Idle time counts iowait; guest time is already inside user and nice, so it is not added again.
 */
export function parseProcStat(text: string): CpuTimes {
  const line = text.split('\n').find((l) => /^cpu\s/.test(l));
  if (line === undefined) throw new Error('/proc/stat has no aggregate cpu line');
  const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (ticks.length < 4 || ticks.some((n) => !Number.isFinite(n) || n < 0)) {
    throw new Error(`/proc/stat cpu line is malformed: ${line}`);
  }
  const [, , , idle = 0, iowait = 0] = ticks;
  return { idleTicks: idle + iowait, totalTicks: ticks.reduce((a, b) => a + b, 0) };
}

/** Busy share of the ticks between two readings, 0..1; null when no time passed or the counters went backwards. */
export function cpuUtilizationBetween(prev: CpuTimes, next: CpuTimes): number | null {
  const total = next.totalTicks - prev.totalTicks;
  const idle = next.idleTicks - prev.idleTicks;
  if (total <= 0 || idle < 0) return null;
  return Math.min(1, Math.max(0, 1 - idle / total));
}

/** MemTotal and MemAvailable (kB) as bytes. Kernels before 3.14 lack MemAvailable: MemFree + Buffers + Cached. */
export function parseMeminfo(text: string): MemoryStats {
  const kb = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\w+):\s+(\d+)(?:\s+kB)?\s*$/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) kb.set(m[1], Number(m[2]));
  }
  const total = kb.get('MemTotal');
  if (total === undefined) throw new Error('/proc/meminfo has no MemTotal');
  const available = kb.get('MemAvailable') ?? (kb.get('MemFree') ?? 0) + (kb.get('Buffers') ?? 0) + (kb.get('Cached') ?? 0);
  return { memoryTotalBytes: total * 1024, memoryAvailableBytes: Math.min(available, total) * 1024 };
}

/** Keeps the previous /proc/stat reading; each sample is the utilization since the one before. */
export class CpuSampler {
  private prev: CpuTimes | null = null;

  constructor(private readonly read: () => Promise<string> = () => fs.readFile('/proc/stat', 'utf8')) {}

  /** null on the first call (nothing to compare with) and when /proc/stat cannot be read. */
  async sample(): Promise<number | null> {
    let next: CpuTimes;
    try {
      next = parseProcStat(await this.read());
    } catch {
      return null;
    }
    const prev = this.prev;
    this.prev = next;
    return prev === null ? null : cpuUtilizationBetween(prev, next);
  }
}

export async function readMemoryStats(read: () => Promise<string> = () => fs.readFile('/proc/meminfo', 'utf8')): Promise<MemoryStats> {
  try {
    return parseMeminfo(await read());
  } catch {
    return { memoryTotalBytes: os.totalmem(), memoryAvailableBytes: os.freemem() };
  }
}

/** Space under dir for an unprivileged writer (bavail, not bfree). A dir not made yet is measured at its nearest
 * existing ancestor, which is the filesystem it will be on. */
export async function readDiskStats(dir: string): Promise<DiskStats> {
  let at = path.resolve(dir);
  for (;;) {
    try {
      const s = await fs.statfs(at);
      return { diskFreeBytes: s.bavail * s.bsize, diskTotalBytes: s.blocks * s.bsize };
    } catch (err) {
      const parent = path.dirname(at);
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || parent === at) throw err;
      at = parent;
    }
  }
}

/** What the worker agent calls before each heartbeat. The first CPU reading is taken now, so the first heartbeat
 * already has a utilization. */
export function createHostStatsSource(opts: { diskPath: string; sampler?: CpuSampler }): () => Promise<HostStats> {
  const sampler = opts.sampler ?? new CpuSampler();
  const primed = sampler.sample();
  return async () => {
    await primed;
    const [cpuUtilization, memory, disk] = await Promise.all([sampler.sample(), readMemoryStats(), readDiskStats(opts.diskPath)]);
    return { cpuUtilization, ...memory, diskFreeBytes: disk.diskFreeBytes };
  };
}
