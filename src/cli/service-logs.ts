// `minkube service logs NAME [--tail N] [-f]`: the output of every replica of a service, each line prefixed with the
// replica's task id and worker (`t0mx…@w1 | line`), as `docker service logs` does. Without --follow, each replica's
// tail in turn. With it, every replica's stream at once, lines interleaved as they arrive (a line is printed whole,
// never two replicas' halves), replicas that appear later (a scale-up, a rolling update) and each new attempt of a
// replica (restarted, here or on another worker) followed as the service shows them, and a stream cut part-way (its
// manager or worker gone) followed again from where it was cut (log-resume.ts), until the service is removed or the
// command is interrupted.
import type { ApiClient } from '../client/api-client.js';
import type { ReplicaView, ServiceView } from '../contracts/service-model.js';
import { finalTaskStates, type TaskState } from '../contracts/task-model.js';
import { backoffCeilingMs } from '../lib/backoff.js';
import { systemClock, type Timer } from '../lib/clock.js';
import { MinkubeError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import { apiClientFor, apiUrlsOf } from './connection.js';
import { FollowedLines } from './log-resume.js';
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
    return this.prefixed(this.lines(chunk));
  }

  /** What is left (a last line without a newline), prefixed and ended with one. */
  flush(): string {
    const rest = this.rest();
    return rest === null ? '' : this.prefixed([rest]);
  }

  /** The whole lines this chunk completes, without their newlines or prefix. */
  lines(chunk: Uint8Array): string[] {
    const all = this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk]);
    const end = all.lastIndexOf(0x0a);
    if (end === -1) {
      this.pending = all;
      return [];
    }
    this.pending = all.subarray(end + 1);
    return all.subarray(0, end).toString('utf8').split('\n');
  }

  /** A last line without its newline (then forgotten), or null. */
  rest(): string | null {
    if (this.pending.length === 0) return null;
    const text = this.pending.toString('utf8');
    this.pending = Buffer.alloc(0);
    return text;
  }

  /** Each line prefixed and ended with a newline. */
  prefixed(lines: readonly string[]): string {
    return lines.map((line) => `${this.prefix}${line}\n`).join('');
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
  // starts at manager i of the list, and any of them falls over to the next as a read does; a cut stream is opened
  // again from the next manager on.
  const urls = apiUrlsOf(apiUrl);
  const relays = urls.map((_, k) => apiClientFor([...urls.slice(k), ...urls.slice(0, k)].join(','), { readRetries: 2 }));
  await followService(client, relays, name, service, tailLines);
}

/**
 * What the follow knows of a replica: the last attempt it opened a stream of (0: none yet), whether it is open, and
 * when a stream of that attempt cut part-way (or not opened: its manager or worker away) is opened again (else null).
 */
export interface ReplicaFollow {
  readonly attempt: number;
  readonly streaming: boolean;
  readonly resumeAtMs?: number | null;
}

/**
 * The stream to open for a replica now, or null: its attempt not followed yet, once it runs on a worker (a replica
 * restarted, here or elsewhere, is followed again for each attempt), never two at once; or the attempt whose stream
 * was cut, once its backoff is over, while the replica shows it running or ended (not lost: a follow of it would wait
 * for the next attempt). The prefix names that attempt's worker. `tailLines` bounds a replica's output written before
 * the command first saw it (the caller gives --tail at its first look, followTailLines later); an attempt that started
 * running since is shown whole (it is what came next). A resumed stream's tail is the caller's to choose.
 */
export function nextFollow(r: ReplicaView, known: ReplicaFollow | undefined, tailLines: number, nowMs = 0): { attempt: number; prefix: string; tailLines: number; resume: boolean } | null {
  if (known?.streaming === true || r.workerId === null) return null;
  if (known !== undefined && r.attempt === known.attempt && (known.resumeAtMs ?? null) !== null) {
    if (nowMs < (known.resumeAtMs ?? 0) || !(r.state === 'running' || finalTaskStates.has(r.state as TaskState))) return null;
    return { attempt: r.attempt, prefix: prefixOf(r), tailLines: followTailLines, resume: true };
  }
  if (r.state !== 'running' || r.attempt <= (known?.attempt ?? 0)) return null;
  return { attempt: r.attempt, prefix: prefixOf(r), tailLines: known === undefined ? tailLines : followTailLines, resume: false };
}

/** A replica as the follow keeps it: its manager (an index into the relays), its lines shown, its failed reopens. */
interface Followed extends ReplicaFollow {
  readonly relay: number;
  readonly lines: FollowedLines;
  /** The tail its attempt's first stream asked: asked again after a cut that came before any line was shown. */
  readonly tailLines: number;
  /** Cuts and failed opens since a stream last brought something (the backoff's exponent). */
  readonly failures: number;
  /** The code last said on stderr for this attempt: a failed reopen is said again only when it fails otherwise. */
  readonly said: string | null;
}

type Write = (text: string) => Promise<void>;

async function followService(client: ApiClient, relays: readonly ApiClient[], name: string, first: ServiceView, tailLines: number): Promise<void> {
  // Only the replicas the service shows, or whose stream is still open: bounded by the service's copies.
  const known = new Map<string, Followed>();
  const streams = new Set<Promise<void>>();
  let spread = 0;
  // One writer at a time: a line is written whole, and stdout's backpressure holds every stream.
  let writing: Promise<void> = Promise.resolve();
  const write: Write = (text) => {
    if (text === '') return writing;
    writing = writing.then(() => writeOutDrained(Buffer.from(text)));
    return writing;
  };
  const open = (r: ReplicaView, k: Followed, tail: number, resume: boolean): void => {
    known.set(r.taskId, { ...k, streaming: true, resumeAtMs: null });
    const relay = relays[k.relay % relays.length] ?? client;
    const stream = followAttempt({ relay, taskId: r.taskId, prefix: prefixOf(r), tailLines: tail, lines: k.lines, resume, said: k.said, write }).then((end) => {
      const now = known.get(r.taskId);
      if (now === undefined) return;
      if (end.kind !== 'cut' || now.attempt !== k.attempt) {
        known.set(r.taskId, { ...now, streaming: false, resumeAtMs: null });
        return;
      }
      // Cut: the same attempt again after a backoff, through the next manager first (this one may be gone).
      const failures = end.brought ? 1 : now.failures + 1;
      const delayMs = backoffCeilingMs(failures, { baseMs: limits.logResumeRetryMsMin, capMs: limits.logResumeRetryMsMax });
      known.set(r.taskId, { ...now, streaming: false, resumeAtMs: systemClock.monoMs() + delayMs, relay: now.relay + 1, failures, said: end.said });
    }).finally(() => streams.delete(stream));
    streams.add(stream);
  };
  const look = (tasks: readonly ReplicaView[], tailNew: number): void => {
    const shown = new Set(tasks.map((r) => r.taskId));
    for (const [id, k] of known) if (!shown.has(id) && !k.streaming) known.delete(id);
    for (const r of tasks) {
      const k = known.get(r.taskId);
      const next = nextFollow(r, k, tailNew, systemClock.monoMs());
      // A replica keeps its manager (the list spread over replicas, as each relays at most logFollowsMax at once).
      const relay = k?.relay ?? spread++;
      if (next === null) {
        // A replica first seen before it runs: its first attempt, once it runs, is shown whole.
        if (k === undefined) known.set(r.taskId, { attempt: 0, streaming: false, resumeAtMs: null, relay, lines: new FollowedLines(), tailLines: followTailLines, failures: 0, said: null });
        continue;
      }
      if (next.resume && k !== undefined) {
        open(r, k, k.lines.anyShown ? followTailLines : k.tailLines, true);
        continue;
      }
      open(r, { attempt: next.attempt, streaming: true, relay, lines: new FollowedLines(), tailLines: next.tailLines, failures: 0, said: null }, next.tailLines, false);
    }
  };
  // --tail bounds what was there when the follow started; replicas that appear later are shown from their first line.
  look(first.tasks, tailLines);
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
    look(now.tasks, followTailLines);
  }
  // Removed: its replicas' streams end as their containers stop.
  await Promise.all(streams);
}

/** A stream cut by the way (its manager or worker gone, a leader change, the managers full) is opened again. */
function cutByTheWay(err: unknown): err is MinkubeError {
  return err instanceof MinkubeError && (err.code === 'UNREACHABLE' || err.code === 'TIMEOUT' || err.code === 'QUEUE_FULL' || err.status >= 500);
}

interface StreamArgs {
  relay: ApiClient;
  taskId: string;
  prefix: string;
  tailLines: number;
  lines: FollowedLines;
  /** Opened after a cut: said on stderr once it opens. */
  resume: boolean;
  said: string | null;
  write: Write;
}

/** How a stream of an attempt ended: its container exited or it failed for good (done), or it was cut by the way. */
type StreamEnd = { kind: 'done' } | { kind: 'cut'; brought: boolean; said: string | null };

/**
 * One stream of an attempt's output, each line prefixed, until its container exits. One opened after a cut holds
 * its first lines (FollowedLines) until its tail has come: until it has been quiet for logResumeQuietMs, at most
 * logResumeHoldMsMax after it opened. A failure is named on stderr (a cut by the way once, as it will be followed
 * again); the partial line of a cut stream is left to the next one, which brings it whole.
 */
async function followAttempt(a: StreamArgs): Promise<StreamEnd> {
  const p = new LinePrefixer(a.prefix);
  let brought = false;
  let timer: Timer | null = null;
  let holdEndMs = 0;
  const settle = (): Promise<void> => {
    timer?.cancel();
    timer = null;
    if (!a.lines.holding) return Promise.resolve();
    const settled = a.lines.settle();
    if (!settled.found) {
      process.stderr.write(`${a.taskId}: where its output was cut is not in the tail the worker keeps: some of its lines may be missing or shown twice\n`);
    }
    return a.write(p.prefixed(settled.lines));
  };
  try {
    const res = await a.relay.requestStream('GET', logsPath(a.taskId, a.tailLines, true));
    if (a.resume) process.stderr.write(`${a.taskId}: followed again\n`);
    holdEndMs = systemClock.monoMs() + limits.logResumeHoldMsMax;
    for await (const chunk of res.body) {
      brought = true;
      await a.write(p.prefixed(a.lines.take(p.lines(chunk))));
      if (a.lines.holding) {
        timer?.cancel();
        timer = systemClock.setTimeout(() => void settle(), Math.max(0, Math.min(limits.logResumeQuietMs, holdEndMs - systemClock.monoMs())));
      }
    }
    const rest = p.rest();
    await a.write(p.prefixed(a.lines.take(rest === null ? [] : [rest])));
    await settle();
    return { kind: 'done' };
  } catch (err) {
    timer?.cancel();
    if (cutByTheWay(err)) {
      a.lines.cut();
      // A new cut is said; a reopen that fails as the one before did is not.
      if (brought || a.said !== err.code) process.stderr.write(`${a.taskId}: ${err.code}: ${err.message}; following it again\n`);
      return { kind: 'cut', brought, said: err.code };
    }
    const rest = p.rest();
    await a.write(p.prefixed(a.lines.take(rest === null ? [] : [rest])));
    await settle();
    process.stderr.write(`${a.taskId}: ${err instanceof MinkubeError ? `${err.code}: ${err.message}` : String(err)}\n`);
    return { kind: 'done' };
  }
}
