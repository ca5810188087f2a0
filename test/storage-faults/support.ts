// Helpers for the storage-fault tests and benchmark: damage a stopped manager's data directory the ways a disk or an
// operator does, write acknowledged keys, and watch a manager's stale reads while it recovers.
import { cpSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ProcCluster } from '../support/cluster.js';
import { eventually } from '../support/wait.js';

/** The LevelDB file written last (a table or the write-ahead log) that holds data. */
export function newestStorageFile(dataDir: string): string {
  const files = readdirSync(dataDir)
    .filter((n) => /^\d+\.(ldb|log)$/.test(n))
    .map((n) => ({ path: join(dataDir, n), st: statSync(join(dataDir, n)) }))
    .filter((f) => f.st.size > 0)
    .sort((a, b) => b.st.mtimeMs - a.st.mtimeMs || b.st.size - a.st.size);
  const newest = files[0];
  if (newest === undefined) throw new Error(`no LevelDB file with data in ${dataDir}`);
  return newest.path;
}

/**
 * The LevelDB table (.ldb) written last, or undefined while LevelDB has written none (until then the log is in its
 * memory and its write-ahead log).
 */
export function newestTable(dataDir: string): string | undefined {
  return readdirSync(dataDir)
    .filter((n) => /^\d+\.ldb$/.test(n))
    .map((n) => ({ path: join(dataDir, n), st: statSync(join(dataDir, n)) }))
    .filter((f) => f.st.size > 0)
    .sort((a, b) => b.st.mtimeMs - a.st.mtimeMs || b.st.size - a.st.size)[0]?.path;
}

/** Flips every bit of the byte in the middle of the file. */
export function flipMiddleByte(path: string): void {
  const bytes = readFileSync(path);
  const at = Math.floor(bytes.length / 2);
  bytes[at] = bytes[at]! ^ 0xff;
  writeFileSync(path, bytes);
}

/** Cuts the file to `fraction` of its length. */
export function cutTo(path: string, fraction: number): void {
  truncateSync(path, Math.floor(statSync(path).size * fraction));
}

export function copyDir(from: string, to: string): void {
  rmSync(to, { recursive: true, force: true });
  cpSync(from, to, { recursive: true });
}

export const keyOf = (i: number): string => `k${i}`;
export const valueOf = (i: number): string => `value-${i}-${'x'.repeat(40)}`;

/** PUTs keys [from, to) through `via`, `parallel` at a time; every write must be acknowledged. */
export async function writeKeys(c: ProcCluster, via: string, from: number, to: number, parallel = 32): Promise<void> {
  let next = from;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < to; i = next++) {
      const r = await eventually(async () => {
        const reply = await c.http(via, 'PUT', `/v1/kv/${keyOf(i)}`, { value: valueOf(i) }, 10_000);
        return reply.status === 200 ? reply : undefined;
      }, 60_000, `the write of ${keyOf(i)}`);
      if (r.status !== 200) throw new Error(`PUT ${keyOf(i)}: ${r.status}`);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
}

/** What the tests read of GET /v1/cluster. */
export interface ClusterBody {
  leaderId: string | null;
  role: string;
  commitIndex: number;
  appliedIndex: number;
  storage: 'ok' | 'recovering';
  storageReason: string | null;
  storageTargetIndex: number | null;
  noQuorumReason: string | null;
  members: { id: string; voter: boolean; storage: 'ok' | 'recovering' | null }[];
}

export async function clusterView(c: ProcCluster, id: string): Promise<ClusterBody | undefined> {
  const r = await c.http(id, 'GET', '/v1/cluster', undefined, 2000).catch(() => null);
  return r?.status === 200 ? (r.body as ClusterBody) : undefined;
}

/** Waits until every listed manager has applied what the leader had committed when asked. */
export async function waitAllApplied(c: ProcCluster, ids: readonly string[], leader: string, timeoutMs = 60_000): Promise<void> {
  const target = (await eventually(() => clusterView(c, leader), 10_000, `${leader}'s view`)).commitIndex;
  for (const id of ids) {
    await eventually(async () => ((await clusterView(c, id))?.appliedIndex ?? -1) >= target ? true : undefined, timeoutMs, `${id} to apply index ${target}`);
  }
}

/** Reads keys [0, n) with ?consistency=stale from `id`; returns the keys served wrong (404 or another value). */
export async function wrongStaleReads(c: ProcCluster, id: string, n: number, parallel = 32): Promise<string[]> {
  const wrong: string[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < n; i = next++) {
      const r = await c.http(id, 'GET', `/v1/kv/${keyOf(i)}?consistency=stale`, undefined, 10_000);
      if (r.status !== 200 || r.body.value !== valueOf(i)) wrong.push(`${keyOf(i)}: ${r.status} ${JSON.stringify(r.body).slice(0, 120)}`);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return wrong;
}

/**
 * Polls stale reads of keys [0, n) (all acknowledged and applied everywhere before the fault) on `id` until `done`
 * says stop: each answer must be a refusal (503, or no answer while it starts) or the right value. Returns what was
 * seen: the wrong answers (must stay empty), how many refusals and right answers.
 */
export function watchStaleReads(c: ProcCluster, id: string, n: number): { stop: () => Promise<{ wrong: string[]; refused: number; right: number }> } {
  let stopped = false;
  const seen = { wrong: [] as string[], refused: 0, right: 0 };
  const loop = (async () => {
    for (let i = 0; !stopped; i = (i + 97) % n) {
      const r = await c.http(id, 'GET', `/v1/kv/${keyOf(i)}?consistency=stale`, undefined, 2000).catch(() => null);
      if (r === null || r.status === 503) seen.refused++;
      else if (r.status === 200 && r.body.value === valueOf(i)) seen.right++;
      else seen.wrong.push(`${keyOf(i)}: ${r.status} ${JSON.stringify(r.body).slice(0, 160)}`);
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      return seen;
    },
  };
}

/** The manager's log lines (pino JSON) with this message. */
export function logLines(c: ProcCluster, id: string, msg: string): Record<string, unknown>[] {
  let text = '';
  try {
    text = readFileSync(join(c.dir, `${id}.log`), 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l.includes(msg))
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
}
