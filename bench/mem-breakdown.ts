// A manager's memory, split: /proc/<pid>/smaps_rollup from outside, and V8's numbers from inside through
// bench/mem-probe.mjs (start the node with `probeArgs`; SIGUSR2 makes it write them).
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually } from '../test/support/cluster.js';
import { round } from './support.js';

/** MiB: the process's RSS split by /proc/<pid>/smaps_rollup, and V8's view through bench/mem-probe.mjs. */
export interface MemoryBreakdown {
  rss: number;
  rssAnon: number;
  rssFile: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  /** V8's spaces, committed (new space is the young generation's semi-spaces). */
  newSpace: number;
  oldSpace: number;
  codeSpace: number;
  largeObjectSpace: number;
  /** RSS outside V8's heap and its array buffers: malloc arenas (LevelDB's caches, libuv, OpenSSL), stacks, the binary. */
  outside: number;
  /**
   * RSS of glibc's main malloc arena (the `[heap]` mapping): what the main thread mallocs, array buffers included.
   * Freed chunks inside it stay resident until the top of the heap is free (fragmentation shows here).
   */
  mallocHeap: number;
}

const probeDir = mkdtempSync(join(tmpdir(), 'minkube-bench-mem-'));
process.env.MINKUBE_MEM_PROBE_DIR = probeDir;
export const probeArgs = ['--import', join(dirname(fileURLToPath(import.meta.url)), 'mem-probe.mjs')];

/**
 * Asks the manager (SIGUSR2, see bench/mem-probe.mjs) for its V8 numbers and reads its smaps_rollup. With `afterGc`,
 * the manager runs a full garbage collection first: the numbers are then what it holds live (its RSS as it would be
 * once V8 got round to collecting), not what garbage it has not collected yet.
 */
export async function breakdownOf(pid: number | undefined, o: { afterGc?: boolean } = {}): Promise<MemoryBreakdown | null> {
  if (pid === undefined) return null;
  const file = join(probeDir, `${pid}.json`);
  const gcFlag = join(probeDir, `${pid}.gc`);
  if (o.afterGc === true) writeFileSync(gcFlag, '');
  const before = existsSync(file) ? statSync(file).mtimeMs : 0;
  process.kill(pid, 'SIGUSR2');
  const written = await eventually(async () => (existsSync(file) && statSync(file).mtimeMs !== before ? true : undefined), 10_000, 'the memory probe').catch(() => false);
  rmSync(gcFlag, { force: true });
  if (written !== true) return null;
  const u = JSON.parse(readFileSync(file, 'utf8')) as Record<string, number> & { spaces: Record<string, { size: number }> };
  const smaps = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(smaps)?.[1] ?? NaN) * 1024;
  const mib = (b: number | undefined): number => round((b ?? NaN) / 2 ** 20, 1);
  const space = (name: string): number => mib(u.spaces[name]?.size);
  return {
    rss: mib(kb('Rss')), rssAnon: mib(kb('Anonymous')), rssFile: mib(kb('Rss') - kb('Anonymous')),
    heapTotal: mib(u.heapTotal), heapUsed: mib(u.heapUsed), external: mib(u.external), arrayBuffers: mib(u.arrayBuffers),
    newSpace: space('new_space'), oldSpace: space('old_space'), codeSpace: space('code_space'), largeObjectSpace: space('large_object_space'),
    outside: mib(kb('Rss') - (u.heapTotal ?? 0) - (u.external ?? 0)),
    mallocHeap: mib(mallocHeapBytes(pid)),
  };
}

/** The resident bytes of the process's `[heap]` mapping (glibc's main arena), from /proc/<pid>/smaps. */
export function mallocHeapBytes(pid: number): number {
  const smaps = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  const at = smaps.search(/^\S+ \S+ \S+ \S+ \S+\s+\[heap\]$/m);
  if (at < 0) return 0;
  const rss = /^Rss:\s+(\d+) kB/m.exec(smaps.slice(at));
  return rss === null ? 0 : Number(rss[1]) * 1024;
}

export function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? round(Number(m[1]) / 1024, 1) : NaN;
}

