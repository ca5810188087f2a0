// The leader's side of the leader -> worker contract (src/contracts/worker.ts): send an assignment (run or stop,
// both fenced by the token), fetch logs. Every failure is a MinkubeError, classified for the retry decision.
import type { Assignment, WorkerTaskStatus } from '../contracts/worker.js';
import { errorFromResponse, HttpClient, isOk, mayHaveArrived, neverSent, type HttpRequest, type HttpTextResponse } from '../client/http.js';
import type { FailureClass } from '../contracts/task-model.js';
import { chunksUnder } from '../lib/chunks.js';
import { errorFromBody, MinkubeError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';

export interface WorkerCallOptions {
  /** The worker meant: its certificate must name it (a worker join token buys a certificate for any address). */
  workerId: string;
  timeoutMs: number;
  signal?: AbortSignal;
}

/** What the managers need of workers; tests pass a fake. */
export interface WorkerApi {
  /** POST /v1/tasks: a run or a stop (desiredState), answered with the worker's status of that attempt. */
  assign(apiAddress: string, a: Assignment, o: WorkerCallOptions): Promise<WorkerTaskStatus>;
  /**
   * POST /v1/tasks/batch: many at once, each answered alone (a status, or the MinkubeError it met). A failure of
   * the whole call (unreachable, timeout) throws.
   */
  assignMany(apiAddress: string, as: readonly Assignment[], o: WorkerCallOptions): Promise<(WorkerTaskStatus | MinkubeError)[]>;
  logs(apiAddress: string, taskId: string, tailLines: number, o: WorkerCallOptions): Promise<string>;
  /**
   * GET /v1/tasks/:id/logs?follow=true: the tail, then the output as the worker relays it, until the container has
   * exited. o.timeoutMs bounds the wait for the answer's headers only; o.signal ends the stream.
   */
  followLogs(apiAddress: string, taskId: string, tailLines: number, o: WorkerCallOptions & { signal: AbortSignal }): Promise<AsyncIterable<Uint8Array>>;
}

export interface HttpWorkerApiOptions {
  /** The pool (and with it TLS material and token) workers are reached through; default one of this API's own. */
  http?: HttpClient;
}

/**
 * Over an HttpClient (undici's request on a pooled keep-alive Agent): the leader sends thousands of assignments a
 * second, and fetch costs several times more CPU per request than a plain request on a reused socket.
 */
export class HttpWorkerApi implements WorkerApi {
  private readonly http: HttpClient;
  private readonly ownsHttp: boolean;
  /** apiAddress -> base URL, so that an address is parsed once, not per request (bounded: cleared when full). */
  private readonly baseUrls = new Map<string, string>();

  constructor(options: HttpWorkerApiOptions = {}) {
    this.ownsHttp = options.http === undefined;
    this.http = options.http ?? new HttpClient();
  }

  async assign(apiAddress: string, a: Assignment, o: WorkerCallOptions): Promise<WorkerTaskStatus> {
    return JSON.parse(await this.call(apiAddress, 'POST', '/v1/tasks', assignmentJson(a), o, a.traceparent)) as WorkerTaskStatus;
  }

  async assignMany(apiAddress: string, as: readonly Assignment[], o: WorkerCallOptions): Promise<(WorkerTaskStatus | MinkubeError)[]> {
    // Requests under the worker's body limit however large the specs are (one spec fits in a manager's body limit).
    const items = as.map((a) => ({ a, json: assignmentJson(a) }));
    const chunks = chunksUnder(items, Infinity, batchBodyBytesMax, (x) => x.json.length + 1);
    const answers = await Promise.all(chunks.map(async (chunk) => {
      let text: string;
      try {
        text = await this.call(apiAddress, 'POST', '/v1/tasks/batch', `{"assignments":[${chunk.map((x) => x.json).join(',')}]}`, o);
      } catch (err) {
        // A worker from before the batch route: one call each.
        if (err instanceof MinkubeError && err.code === 'NOT_FOUND') return this.assignEach(apiAddress, chunk.map((x) => x.a), o);
        throw err;
      }
      const body = JSON.parse(text) as { items: ({ status: WorkerTaskStatus } | { error: { code: string; message: string } })[] };
      if (body.items.length !== chunk.length) throw new MinkubeError('WORKER_UNAVAILABLE', `the worker answered ${body.items.length} of ${chunk.length} assignments`);
      return body.items.map((item) => ('status' in item ? item.status : errorFromBody({ error: item.error }, 500)));
    }));
    return answers.flat();
  }

  private assignEach(apiAddress: string, as: readonly Assignment[], o: WorkerCallOptions): Promise<(WorkerTaskStatus | MinkubeError)[]> {
    return Promise.all(as.map((a) => this.assign(apiAddress, a, o).catch((err: unknown) => (err instanceof MinkubeError ? err : new MinkubeError('WORKER_UNAVAILABLE', String(err))))));
  }

  logs(apiAddress: string, taskId: string, tailLines: number, o: WorkerCallOptions): Promise<string> {
    return this.call(apiAddress, 'GET', `/v1/tasks/${encodeURIComponent(taskId)}/logs?tail=${tailLines}`, null, o);
  }

  async followLogs(apiAddress: string, taskId: string, tailLines: number, o: WorkerCallOptions & { signal: AbortSignal }): Promise<AsyncIterable<Uint8Array>> {
    const url = this.baseUrlOf(apiAddress);
    const path = `/v1/tasks/${encodeURIComponent(taskId)}/logs?tail=${tailLines}&follow=true`;
    try {
      const res = await this.http.stream({ method: 'GET', url, path, timeoutMs: o.timeoutMs, signal: o.signal, server: { role: 'worker', id: o.workerId } });
      return res.body;
    } catch (err) {
      // The worker's own refusals (TASK_NOT_FOUND, QUEUE_FULL) as it gave them; not reaching it is WORKER_UNAVAILABLE.
      if (err instanceof MinkubeError && err.code === 'QUEUE_FULL') throw workerCapFull(err, o.workerId);
      if (err instanceof MinkubeError && err.code !== 'UNREACHABLE') throw err;
      throw failure(err, `GET ${url}${path}`, o.signal);
    }
  }

  /** Closes the pool when it is this API's own. */
  close(): void {
    if (this.ownsHttp) void this.http.close();
  }

  private async call(apiAddress: string, method: string, path: string, body: string | null, o: WorkerCallOptions, traceparent?: string): Promise<string> {
    const headers = body === null ? acceptJson : sendJson;
    const r: HttpRequest = { method, url: this.baseUrlOf(apiAddress), path, headers: traceparent === undefined ? headers : { ...headers, traceparent }, timeoutMs: o.timeoutMs, server: { role: 'worker', id: o.workerId } };
    if (body !== null) r.body = body;
    if (o.signal !== undefined) r.signal = o.signal;
    let res: HttpTextResponse;
    try {
      res = await this.http.request(r);
    } catch (err) {
      throw failure(err, `${method} ${r.url}${path}`, o.signal);
    }
    if (!isOk(res.status)) throw errorFromResponse(res);
    return res.text;
  }

  private baseUrlOf(apiAddress: string): string {
    let url = this.baseUrls.get(apiAddress);
    if (url === undefined) {
      if (this.baseUrls.size >= limits.workersMax) this.baseUrls.clear();
      url = this.http.baseUrlOf(apiAddress);
      this.baseUrls.set(apiAddress, url);
    }
    return url;
  }
}

/** TIMEOUT stays TIMEOUT; anything else is WORKER_UNAVAILABLE (transient), with the transport's message. */
/**
 * The worker's QUEUE_FULL as the relaying manager answers it: naming the worker, whose cap is full (each manager may
 * hold a part of it), not "this node". A worker that predates the name says "this node".
 */
export function workerCapFull(err: MinkubeError, workerId: string): MinkubeError {
  const mine = /^this (?:node|worker) /.exec(err.message);
  const message = mine === null ? `worker ${workerId}: ${err.message}` : `worker ${workerId} ${err.message.slice(mine[0].length)}`;
  return new MinkubeError('QUEUE_FULL', message, { cause: err, details: err.details });
}

function failure(err: unknown, what: string, signal: AbortSignal | undefined): MinkubeError {
  if (signal?.aborted === true) return new MinkubeError('WORKER_UNAVAILABLE', `${what}: abandoned (this manager stepped down)`, { cause: err });
  if (!(err instanceof MinkubeError)) return new MinkubeError('WORKER_UNAVAILABLE', `${what}: ${String(err)}`, { cause: err });
  return err.code === 'TIMEOUT' ? err : new MinkubeError('WORKER_UNAVAILABLE', err.message, { cause: err });
}

const acceptJson: Readonly<Record<string, string>> = { accept: 'application/json' };
const sendJson: Readonly<Record<string, string>> = { accept: 'application/json', 'content-type': 'application/json' };

/** Below a worker's default body limit (1 MiB), with room for the envelope. */
const batchBodyBytesMax = 512 * 1024;

/** The spec with its secretEnv values: this call (mutual TLS in a secure cluster) is how they reach the worker. */
function assignmentJson(a: Assignment): string {
  const json = { taskId: a.taskId, attempt: a.attempt, term: a.term, spec: a.spec, desiredState: a.desiredState };
  return JSON.stringify(a.traceparent === undefined ? json : { ...json, traceparent: a.traceparent });
}

/**
 * Whether a refused or failed assignment can succeed elsewhere. A spec the worker refuses is permanent; a stale
 * token means the task has moved on (nothing to do); an assignment that may have reached the worker (no answer in
 * time, a connection lost midway) is unknown: the worker may be running it, so it must not be placed elsewhere
 * until the worker says otherwise or is found down. One that surely never reached it (a refused connection, a connect
 * that timed out: a worker restarting, or gone) or that a full worker refused is deferred: it costs no attempt, and
 * is sent again at the next reconcile pass (the worker also fetches its assignments itself; a worker that is gone is
 * found down, and its tasks placed again). Everything else (a 5xx, no free port) is transient.
 */
export function classifyAssignError(err: unknown): FailureClass | 'stale' | 'unknown' | 'deferred' {
  if (!(err instanceof MinkubeError)) return 'transient';
  if (err.code === 'TASK_STALE_FENCING_TOKEN') return 'stale';
  if (err.code === 'INVALID_TASK_SPEC' || err.code === 'INVALID_BODY') return 'permanent';
  if (err.code === 'TIMEOUT') return 'unknown';
  if (err.code === 'WORKER_FULL') return 'deferred';
  if (err.code === 'WORKER_UNAVAILABLE' && err.cause instanceof MinkubeError && mayHaveArrived(err.cause)) return 'unknown';
  if (err.code === 'WORKER_UNAVAILABLE' && err.cause instanceof MinkubeError && neverSent(err.cause)) return 'deferred';
  return 'transient';
}
