// `minkube service logs NAME [--tail N] [-f]`: the output of every replica of a service, each line prefixed with the
// replica's task id and worker (`t0mx…@w1 | line`), as `docker service logs` does. Without --follow, each replica's
// tail in turn. With it, every replica's stream at once, lines interleaved as they arrive (a line is printed whole,
// never two replicas' halves), and replicas that appear later (a scale-up, a rolling update) are followed as the
// service shows them, until the service is removed or the command is interrupted.
import type { ApiClient } from '../client/api-client.js';
import type { ReplicaView, ServiceView } from '../contracts/service-model.js';
import { MinkubeError } from '../lib/errors.js';
import { apiClientFor, apiUrlsOf } from './connection.js';
import { writeOut, writeOutDrained } from './output.js';
import { CliExit } from './tasks.js';

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

async function followService(client: ApiClient, relays: readonly ApiClient[], name: string, first: ServiceView, tailLines: number): Promise<void> {
  const followed = new Set<string>();
  const streams: Promise<void>[] = [];
  // One writer at a time: a line is written whole, and stdout's backpressure holds every stream.
  let writing: Promise<void> = Promise.resolve();
  const write = (text: string): Promise<void> => {
    if (text === '') return writing;
    writing = writing.then(() => writeOutDrained(Buffer.from(text)));
    return writing;
  };
  const follow = (r: ReplicaView): void => {
    if (followed.has(r.taskId)) return;
    const relay = relays[followed.size % relays.length] ?? client;
    followed.add(r.taskId);
    const p = new LinePrefixer(prefixOf(r));
    streams.push((async () => {
      try {
        const res = await relay.requestStream('GET', logsPath(r.taskId, tailLines, true));
        for await (const chunk of res.body) await write(p.push(chunk));
        await write(p.flush());
      } catch (err) {
        await write(p.flush());
        process.stderr.write(`${r.taskId}: ${err instanceof MinkubeError ? `${err.code}: ${err.message}` : String(err)}\n`);
      }
    })());
  };
  first.tasks.forEach(follow);
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
    now.tasks.forEach(follow);
  }
  // Removed: its replicas' streams end as their containers stop.
  await Promise.all(streams);
}
