// `minkube service logs NAME [--tail N] [-f]`: the output of every replica of a service, each line prefixed with the
// replica's task id and worker (`t0mx…@w1 | line`), as `docker service logs` does. Without --follow, each replica's
// tail in turn. With it, every replica's stream at once, lines interleaved as they arrive (a line is printed whole,
// never two replicas' halves), replicas that appear later (a scale-up, a rolling update) and each new attempt of a
// replica (restarted, here or on another worker) followed as the service shows them, until the service is removed or
// the command is interrupted.
import type { ApiClient } from '../client/api-client.js';
import type { ReplicaView, ServiceView } from '../contracts/service-model.js';
import { MinkubeError } from '../lib/errors.js';
import { apiClientFor, apiUrlsOf } from './connection.js';
import { writeOut, writeOutDrained } from './output.js';
import { CliExit, followTailLines } from './tasks.js';

/** How often a follow looks for replicas it does not follow yet. */
const replicaCheckMs = 2000;

/** Splits a stream of bytes into whole lines, each prefixed; a last line without its newline comes with flush(). */
export class LinePrefixer {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly prefix: string) {}

  /** The whole lines this chunk completes, prefixed (empty if none). */
  push(chunk: Uint8Array): string {
    const all = this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk]);
    const end = all.lastIndexOf(0x0a);
    if (end === -1) {
      this.pending = all;
      return '';
    }
    this.pending = all.subarray(end + 1);
    return this.prefixed(all.subarray(0, end + 1).toString('utf8'));
  }

  /** What is left (a last line without a newline), prefixed and ended with one. */
  flush(): string {
    if (this.pending.length === 0) return '';
    const text = `${this.pending.toString('utf8')}\n`;
    this.pending = Buffer.alloc(0);
    return this.prefixed(text);
  }

  /** Lines that end with a newline, each prefixed. */
  private prefixed(lines: string): string {
    return lines.slice(0, -1).split('\n').map((line) => `${this.prefix}${line}\n`).join('');
  }
}

function prefixOf(r: ReplicaView): string {
  return `${r.taskId}@${r.workerId ?? '-'} | `;
}

function logsPath(taskId: string, tailLines: number, follow: boolean): string {
  return `/v1/tasks/${encodeURIComponent(taskId)}/logs?tail=${tailLines}${follow ? '&follow=true' : ''}`;
}

export async function runServiceLogs(apiUrl: string, name: string, tailLines: number, follow: boolean): Promise<void> {
  const client = apiClientFor(apiUrl, { readRetries: 2 });
  const service = await client.request<ServiceView>('GET', `/v1/services/${encodeURIComponent(name)}`);
  if (!follow) {
    // One replica after the other, each whole: a replica whose output is gone or whose worker is away is named.
    let failed = 0;
    for (const r of service.tasks) {
      try {
        const p = new LinePrefixer(prefixOf(r));
        writeOut(p.push(Buffer.from(await client.requestText('GET', logsPath(r.taskId, tailLines, false)))) + p.flush());
      } catch (err) {
        failed++;
        process.stderr.write(`${r.taskId}: ${err instanceof MinkubeError ? `${err.code}: ${err.message}` : String(err)}\n`);
      }
    }
    if (failed > 0) throw new CliExit(1);
    return;
  }
  // The replicas' streams spread over the managers (each relays at most limits.logFollowsMax at once): replica i
  // starts at manager i of the list, and any of them falls over to the next as a read does.
  const urls = apiUrlsOf(apiUrl);
  const relays = urls.map((_, k) => apiClientFor([...urls.slice(k), ...urls.slice(0, k)].join(','), { readRetries: 2 }));
  await followService(client, relays, name, service, tailLines);
}

/** What the follow knows of a replica: the last attempt it opened a stream of (0: none yet), and whether it is open. */
export interface ReplicaFollow {
  readonly attempt: number;
  readonly streaming: boolean;
}

/**
 * The stream to open for a replica now, or null: its attempt not followed yet, once it runs on a worker (a replica
 * restarted, here or elsewhere, is followed again for each attempt), never two at once. The prefix names that
 * attempt's worker. Output written before the command first saw the replica is bounded by --tail; an attempt that
 * started running since is shown whole (it is what came next).
 */
export function nextFollow(r: ReplicaView, known: ReplicaFollow | undefined, tailLines: number): { attempt: number; prefix: string; tailLines: number } | null {
  if (known?.streaming === true || r.state !== 'running' || r.workerId === null || r.attempt <= (known?.attempt ?? 0)) return null;
  return { attempt: r.attempt, prefix: prefixOf(r), tailLines: known === undefined ? tailLines : followTailLines };
}

async function followService(client: ApiClient, relays: readonly ApiClient[], name: string, first: ServiceView, tailLines: number): Promise<void> {
  // Only the replicas the service shows, or whose stream is still open: bounded by the service's copies.
  const known = new Map<string, ReplicaFollow & { relay: ApiClient }>();
  const streams = new Set<Promise<void>>();
  let spread = 0;
  // One writer at a time: a line is written whole, and stdout's backpressure holds every stream.
  let writing: Promise<void> = Promise.resolve();
  const write = (text: string): Promise<void> => {
    if (text === '') return writing;
    writing = writing.then(() => writeOutDrained(Buffer.from(text)));
    return writing;
  };
  const look = (tasks: readonly ReplicaView[]): void => {
    const shown = new Set(tasks.map((r) => r.taskId));
    for (const [id, k] of known) if (!shown.has(id) && !k.streaming) known.delete(id);
    for (const r of tasks) {
      const k = known.get(r.taskId);
      const next = nextFollow(r, k, tailLines);
      // A replica keeps its manager (the list spread over replicas, as each relays at most logFollowsMax at once).
      const relay = k?.relay ?? relays[spread++ % relays.length] ?? client;
      if (next === null) {
        // A replica first seen before it runs: its first attempt, once it runs, is shown whole.
        if (k === undefined) known.set(r.taskId, { attempt: 0, streaming: false, relay });
        continue;
      }
      known.set(r.taskId, { attempt: next.attempt, streaming: true, relay });
      const stream = followAttempt(relay, r.taskId, next.prefix, next.tailLines, write).finally(() => {
        const now = known.get(r.taskId);
        if (now !== undefined) known.set(r.taskId, { ...now, streaming: false });
        streams.delete(stream);
      });
      streams.add(stream);
    }
  };
  look(first.tasks);
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, replicaCheckMs));
    let now: ServiceView;
    try {
      now = await client.request<ServiceView>('GET', `/v1/services/${encodeURIComponent(name)}`);
    } catch (err) {
      if (err instanceof MinkubeError && err.code === 'SERVICE_NOT_FOUND') break;
      // A passing failure (a leader change): look again at the next check.
      continue;
    }
    look(now.tasks);
  }
  // Removed: its replicas' streams end as their containers stop.
  await Promise.all(streams);
}

/** One attempt's output, each line prefixed, until its container exits; a failure is named on stderr. */
async function followAttempt(relay: ApiClient, taskId: string, prefix: string, tailLines: number, write: (text: string) => Promise<void>): Promise<void> {
  const p = new LinePrefixer(prefix);
  try {
    const res = await relay.requestStream('GET', logsPath(taskId, tailLines, true));
    for await (const chunk of res.body) await write(p.push(chunk));
    await write(p.flush());
  } catch (err) {
    await write(p.flush());
    process.stderr.write(`${taskId}: ${err instanceof MinkubeError ? `${err.code}: ${err.message}` : String(err)}\n`);
  }
}
