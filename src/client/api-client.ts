// The client of the managers' HTTP API, for the CLI, the worker and forwarding between managers, over HttpClient.
// Every failure comes back as a MinkubeError: the server's own error, TIMEOUT, or UNREACHABLE naming the URL.
import { randomUUID } from 'node:crypto';
import { answerProblem } from '../contracts/answers.js';
import { keyPath, keyProblem } from '../contracts/keys.js';
import { clientTimeoutHeader, type ClusterMemberView, type ClusterSettingsView, type ClusterView, type KvEntry, type KvVersion, type MemberRequest, type MembersView, type ReadConsistency } from '../contracts/services.js';
import type { TaskSpec, TaskState } from '../contracts/task-model.js';
import { backoffDelayMs, type BackoffOptions } from '../lib/backoff.js';
import { chunksUnder } from '../lib/chunks.js';
import { sleepOn, systemClock, type Clock } from '../lib/clock.js';
import { errorRegistry, MinkubeError } from '../lib/errors.js';
import type { ExpectedServer } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import { systemRandom, type Random } from '../lib/random.js';
import { defaultHttpClient } from './default.js';
import { errorFromResponse, HttpClient, isOk, isUnexpectedAnswer, neverSent, parseJson, unexpectedAnswer, type HttpBytesResponse, type HttpRequest, type HttpStreamResponse, type TlsMaterial } from './http.js';

export interface ApiClientOptions {
  /** Per request (default limits.requestTimeoutMsDefault plus a little, so the server's own TIMEOUT wins). */
  timeoutMs?: number;
  /**
   * How many times a GET that failed for a passing reason (passingFailures: TIMEOUT, UNREACHABLE, NO_LEADER, ...)
   * is tried again (default 0). Reads change nothing, so a retry is always safe; writes are never retried here.
   */
  readRetries?: number;
  /** The pool to send through (shared, not closed by close()). Without it and without tls: the process's default. */
  http?: HttpClient;
  /** Without `http`: a pool of this client's own, over TLS (closed by close()). */
  tls?: TlsMaterial;
  /** Sent as `authorization: Bearer <token>` on every request (over `http`'s own token, if any). */
  token?: string;
  /**
   * Other managers of the same cluster, tried in turn when the current one cannot serve a request: any request that
   * never reached it (a refused connection), and a read that failed for a passing reason (as for readRetries). A
   * write that may have reached it is not sent elsewhere (its outcome is unknown). The manager that answered is
   * used from then on.
   */
  alternateUrls?: readonly string[];
  /**
   * The manager meant, which the server's certificate must name (a node's client checks it: HttpRequest.server):
   * `{ role: 'manager', id: 'm2' }` for one known manager (then without alternateUrls). Default: any manager's API.
   */
  server?: ExpectedServer;
  /** The pauses between retries are drawn from this (default systemRandom), so clients do not retry in step. */
  random?: Random;
  /** The pauses between retries are timed on this (default systemClock). */
  clock?: Clock;
}

// WORKER_UNAVAILABLE: this manager could not reach the task's worker (task logs, a worker's metrics); another may.
const passingFailures: ReadonlySet<string> = new Set(['TIMEOUT', 'UNREACHABLE', 'NO_LEADER', 'NOT_READY', 'QUEUE_FULL', 'WORKER_UNAVAILABLE']);

/**
 * What a manager answers when it cannot serve a request that another manager may (no leader known to it, not ready,
 * removed from the cluster, repairing its storage, or its forward to the leader surely not sent: UNREACHABLE). A 503
 * means the request was not applied (README, Errors), so even a write moves on to the next manager after one.
 */
const refusedHere: ReadonlySet<string> = new Set(['NO_LEADER', 'NOT_READY', 'STORAGE_RECOVERING', 'UNREACHABLE']);

/** An error the manager answered (not one the client met on its way: those carry their cause). */
function answered(err: MinkubeError): boolean {
  return err.cause === undefined;
}

export interface RequestOptions {
  body?: unknown;
  requestId?: string;
  timeoutMs?: number;
  headers?: Readonly<Record<string, string>>;
  /** Aborting abandons the request (it rejects with UNREACHABLE, or the signal's reason when that is a MinkubeError). */
  signal?: AbortSignal;
  /** A write that is safe to repeat (an Idempotency-Key): it may go to another manager as a read may (alternateUrls). */
  idempotent?: boolean;
}

export interface SubmittedTask {
  readonly id: string;
  readonly state: TaskState;
}

export interface SubmitOptions extends RequestOptions {
  /** Makes the retries safe: a retried submission answers the tasks the first one created. Default: a random UUID. */
  idempotencyKey?: string;
  /** Tries per request when the answer is "not now" (5xx, QUEUE_FULL); default 4, 1 for none. */
  attempts?: number;
}

export interface SubmitTasksOptions extends SubmitOptions {
  /** Tasks per request: default and at most limits.taskBatchMax. */
  batchMax?: number;
  /** A request's body stays under this (default limits.httpBodyBytesDefault, the managers' default body limit). */
  bodyBytesMax?: number;
  /** Told of each request's tasks once they are created, in order: to print ids or progress as they come. */
  onCreated?: (items: readonly SubmittedTask[]) => void;
}

const submitAttemptsDefault = 4;
/**
 * The pauses before retries, full jitter (the one backoff): a submission's 3 retries average 250, 500 and 500 ms
 * (at most 2.5 s in all, so a CLI facing no leader still answers within a few seconds), a read's 200, 400, 800 and
 * then 1,000 ms.
 */
const submitBackoff: BackoffOptions = { baseMs: 500, capMs: 1000 };
const readBackoff: BackoffOptions = { baseMs: 400, capMs: 2000 };
/**
 * The share of a request's timeout the manager is asked to answer within (X-Minkube-Timeout-Ms). The rest is the
 * answer's way back and a loaded manager's lag: a fixed 0.5 s was not enough on a host at load 16-30, whose
 * NO_LEADER came after the CLI had given up (outcome unknown, no other manager tried).
 */
export const clientTimeoutShare = 0.7;

export class ApiClient {
  /** The managers this client may use, the one given first; `current` indexes the one in use. */
  private readonly urls: readonly string[];
  private current = 0;
  private readonly timeoutMs: number;
  private readonly readRetries: number;
  private readonly http: HttpClient;
  private readonly ownsHttp: boolean;
  private readonly authorization: string | undefined;
  private readonly random: Random;
  private readonly clock: Clock;
  private readonly server: ExpectedServer | undefined;

  /** baseUrl: 'http://host:port' or just 'host:port' (as in the cluster config; https when TLS is configured). */
  constructor(baseUrl: string, options: ApiClientOptions = {}) {
    if (options.http !== undefined && options.tls !== undefined) throw new MinkubeError('INVALID_PARAM', 'ApiClient: pass either http or tls, not both');
    this.ownsHttp = options.http === undefined && options.tls !== undefined;
    this.http = options.http ?? (options.tls === undefined ? defaultHttpClient() : new HttpClient({ tls: options.tls }));
    const first = this.http.baseUrlOf(baseUrl);
    const others = (options.alternateUrls ?? []).map((u) => this.http.baseUrlOf(u)).filter((u) => u !== first);
    this.urls = [first, ...new Set(others)];
    this.timeoutMs = options.timeoutMs ?? limits.requestTimeoutMsDefault + 500;
    this.readRetries = options.readRetries ?? 0;
    this.authorization = options.token === undefined ? undefined : `Bearer ${options.token}`;
    this.random = options.random ?? systemRandom;
    this.clock = options.clock ?? systemClock;
    this.server = options.server;
  }

  /** The manager in use: the one given, until a failover (alternateUrls) moved to another that answered. */
  get baseUrl(): string {
    return this.urls[this.current]!;
  }

  /** Whether a failover moved this client off the manager it was given. */
  get movedOn(): boolean {
    return this.current !== 0;
  }

  /** Closes the pool when it is this client's own; a shared one stays open for its other users. */
  async close(): Promise<void> {
    if (this.ownsHttp) await this.http.close();
  }

  cluster(options: RequestOptions = {}): Promise<ClusterView> {
    return this.request('GET', '/v1/cluster', options);
  }

  health(options: RequestOptions = {}): Promise<{ status: 'ok' }> {
    return this.request('GET', '/health', options);
  }

  ready(options: RequestOptions = {}): Promise<{ ready: true }> {
    return this.request('GET', '/ready', options);
  }

  async kvGet(key: string, consistency: ReadConsistency = 'linearizable', options: RequestOptions = {}): Promise<KvEntry> {
    const query = consistency === 'linearizable' ? '' : `?consistency=${consistency}`;
    return this.request('GET', `${kvPath(key)}${query}`, options);
  }

  async kvPut(key: string, value: string, ifVersion?: number, options: RequestOptions = {}): Promise<KvVersion> {
    return this.request('PUT', kvPath(key), { ...options, body: kvPutBody(value, ifVersion) });
  }

  async kvDelete(key: string, ifVersion?: number, options: RequestOptions = {}): Promise<KvVersion> {
    const query = ifVersion === undefined ? '' : `?ifVersion=${ifVersion}`;
    return this.request('DELETE', `${kvPath(key)}${query}`, options);
  }

  listMembers(options: RequestOptions = {}): Promise<MembersView> {
    return this.request('GET', '/v1/cluster/members', options);
  }

  /** The leader's cluster-wide settings (GET /v1/cluster/settings): what a manager joining from flags alone keeps. */
  clusterSettings(options: RequestOptions = {}): Promise<ClusterSettingsView> {
    return this.request('GET', '/v1/cluster/settings', options);
  }

  /** created is false when the member already existed with the same addresses (200 rather than 201). */
  async addMember(member: MemberRequest, options: RequestOptions = {}): Promise<{ created: boolean; member: ClusterMemberView }> {
    const { body, status } = await this.sendJson('POST', '/v1/cluster/members', { ...options, body: member });
    return { created: status === 201, member: body as ClusterMemberView };
  }

  removeMember(id: string, options: RequestOptions = {}): Promise<MembersView> {
    return this.request('DELETE', `/v1/cluster/members/${encodeURIComponent(id)}`, options);
  }

  /** id null: the leader picks the most caught-up voter. */
  transferLeader(id: string | null, options: RequestOptions = {}): Promise<{ leaderId: string; term: number }> {
    return this.request('POST', '/v1/cluster/leader', { ...options, body: id === null ? {} : { id } });
  }

  /** POST /v1/tasks under one Idempotency-Key, retried while the answer is "not now". */
  submitTask(spec: TaskSpec, options: SubmitOptions = {}): Promise<SubmittedTask> {
    return this.submit<SubmittedTask>('/v1/tasks', spec, options.idempotencyKey ?? randomUUID(), options);
  }

  /**
   * POST /v1/tasks/batch: the specs in requests of at most batchMax (and under bodyBytesMax), one after another;
   * answers every task created, in the order given. Each request is all or none, the whole call is not: request i
   * carries the Idempotency-Key `${idempotencyKey}.${i}`, so calling again with the same key creates nothing twice,
   * and a failure after the first request says how many tasks were created before it.
   */
  async submitTasks(specs: readonly TaskSpec[], options: SubmitTasksOptions = {}): Promise<SubmittedTask[]> {
    const key = options.idempotencyKey ?? randomUUID();
    const chunks = batchChunks(specs, options.batchMax ?? limits.taskBatchMax, options.bodyBytesMax ?? limits.httpBodyBytesDefault);
    const created: SubmittedTask[] = [];
    for (const [i, chunk] of chunks.entries()) {
      let items: SubmittedTask[];
      try {
        ({ items } = await this.submit<{ items: SubmittedTask[] }>('/v1/tasks/batch', { tasks: chunk }, `${key}.${i}`, options));
      } catch (err) {
        if (created.length === 0 || !(err instanceof MinkubeError)) throw err;
        const message = `${err.message} (request ${i + 1} of ${chunks.length}; ${created.length} of ${specs.length} tasks were created before it)`;
        throw new MinkubeError(err.code, message, { cause: err });
      }
      if (items.length !== chunk.length) throw new MinkubeError('INTERNAL', `POST /v1/tasks/batch answered ${items.length} of ${chunk.length} tasks`);
      created.push(...items);
      options.onCreated?.(items);
    }
    return created;
  }

  /** A write made safe to repeat by its Idempotency-Key, so it is tried again on "not now" (5xx, QUEUE_FULL). */
  private async submit<T>(path: string, body: unknown, key: string, options: SubmitOptions): Promise<T> {
    const attempts = options.attempts ?? submitAttemptsDefault;
    const request: RequestOptions = { ...options, body, idempotent: true, headers: { ...options.headers, 'idempotency-key': key } };
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.request<T>('POST', path, request);
      } catch (err) {
        // An answer no manager gives will not change: not "not now".
        const again = err instanceof MinkubeError && (err.status >= 500 || err.code === 'QUEUE_FULL') && !isUnexpectedAnswer(err);
        if (!again || attempt >= attempts) throw err;
        await sleepOn(this.clock, backoffDelayMs(attempt, submitBackoff, this.random));
      }
    }
  }

  /**
   * One request; a 2xx answers its JSON body, anything else throws the MinkubeError the server described. A 2xx that
   * is not JSON, or not the route's answer (contracts/answers.ts: the fields a command reads), is UNREACHABLE naming
   * the URL and the first field wrong (unexpectedAnswer): a read moves on to another manager, a write does not.
   */
  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    return (await this.sendJson(method, path, options)).body as T;
  }

  /** One request whose 2xx answer is text (logs); failures as for request(). */
  async requestText(method: string, path: string, options: RequestOptions = {}): Promise<string> {
    return (await this.send(method, path, options)).text;
  }

  /** One request whose 2xx answer is bytes (a snapshot), with its headers; failures as for request(). */
  async requestBytes(method: string, path: string, options: RequestOptions = {}): Promise<HttpBytesResponse> {
    return this.withFailover(method, options, async (url) => {
      const res = await this.http.requestBytes(this.httpRequest(url, method, path, options));
      if (!isOk(res.status)) throw errorFromResponse({ ...res, text: Buffer.from(res.bytes).toString('utf8') }, method);
      return res;
    });
  }

  /**
   * One request whose 2xx answer is read as it comes (a followed log). Until an answer's headers arrive, failures
   * move on to another manager as for request(); the body is then that manager's to its end (a cut is UNREACHABLE).
   */
  requestStream(method: string, path: string, options: RequestOptions = {}): Promise<HttpStreamResponse> {
    return this.withFailover(method, options, (url) => this.http.stream(this.httpRequest(url, method, path, options)));
  }

  private send(method: string, path: string, options: RequestOptions): Promise<{ text: string; url: string; status: number }> {
    return this.withFailover(method, options, (url) => this.http.requestOk(this.httpRequest(url, method, path, options)));
  }

  /** send, then the answer's JSON checked against the route's (within the failover: each manager's answer alone). */
  private sendJson(method: string, path: string, options: RequestOptions): Promise<{ body: unknown; status: number }> {
    return this.withFailover(method, options, async (base) => {
      const { text, url, status } = await this.http.requestOk(this.httpRequest(base, method, path, options));
      const body = parseJson(text);
      const problem = body === undefined ? 'not JSON' : answerProblem(method, path, body);
      if (problem !== null) throw unexpectedAnswer(method, url, problem);
      return { body, status };
    });
  }

  /**
   * `once` against the manager in use, again on the next one (alternateUrls) when it cannot serve the request, and
   * again after a pause while a read fails for a passing reason (readRetries).
   */
  private async withFailover<T>(method: string, options: RequestOptions, once: (url: string) => Promise<T>): Promise<T> {
    // The managers tried since the last pause (each at most once per round) and how each failed, and whether every
    // one of them timed out: a round that only timed out is not repeated (each of its tries cost a whole timeout).
    const tried: Tried[] = [];
    // A manager's answer that says more than its code's usual message (why no leader can be elected, say): shown
    // rather than the last manager's, when that one answered the same code with no more than the usual words.
    let explained: MinkubeError | null = null;
    let onlyTimeouts = true;
    const startedMs = this.clock.monoMs();
    for (let attempt = 0; ; ) {
      const url = this.baseUrl;
      try {
        return await once(url);
      } catch (caught) {
        if (!(caught instanceof MinkubeError) || options.signal?.aborted === true) throw caught;
        if (saysMore(caught)) explained = caught;
        const err = explained !== null && explained.code === caught.code && !saysMore(caught) ? explained : caught;
        const repeatable = method === 'GET' || options.idempotent === true;
        // An answer no manager gives: another manager may answer as one (a read only), but this one will not, so
        // no pause and no second round for it.
        const unexpected = isUnexpectedAnswer(err);
        const passing = repeatable && !unexpected && passingFailures.has(err.code);
        const movingOn = this.urls.length > 1 && (passing || (repeatable && unexpected) || neverSent(err) || (refusedHere.has(err.code) && answered(err)));
        if (movingOn) {
          // Each manager with its own answer: roundFailed leads with the one that says most, and names the others by
          // theirs (an explanation carried over from another manager would be shown as this one's, and it unnamed).
          tried.push({ url, err: caught });
          onlyTimeouts &&= err.code === 'TIMEOUT';
          this.current = (this.current + 1) % this.urls.length;
          if (tried.length < this.urls.length) continue;
          if (onlyTimeouts) throw roundFailed(tried);
        }
        if (!passing || method !== 'GET' || attempt >= this.readRetries) {
          const failed = movingOn ? roundFailed(tried) : tried.length > 0 ? triedAll(err, tried.map(reasonOf)) : err;
          // After pauses, say how long it kept trying (one try's timeout in the message is not the wait).
          throw attempt === 0 ? failed : afterTries(failed, attempt + 1, this.clock.monoMs() - startedMs);
        }
        attempt++;
        tried.length = 0;
        onlyTimeouts = true;
        await sleepOn(this.clock, backoffDelayMs(attempt, readBackoff, this.random));
      }
    }
  }

  private httpRequest(url: string, method: string, path: string, options: RequestOptions): HttpRequest {
    const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
    if (this.authorization !== undefined) headers.authorization = this.authorization;
    if (options.requestId !== undefined) headers['x-request-id'] = options.requestId;
    let body: string | undefined;
    if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    // The manager answers within this (a NO_LEADER by half of it), leaving the rest for the answer's way back.
    headers[clientTimeoutHeader] = String(Math.max(100, Math.min(3_600_000, Math.floor(timeoutMs * clientTimeoutShare))));
    return { method, url, path, headers, ...(body === undefined ? {} : { body }), timeoutMs, ...(options.signal === undefined ? {} : { signal: options.signal }), ...(this.server === undefined ? {} : { server: this.server }) };
  }
}

export { unexpectedAnswer };

/** PUT /v1/kv/:key's body, as kvPut sends it (JSON.stringify'd): callers measure it against the body limit. */
export function kvPutBody(value: string, ifVersion?: number): { value: string; ifVersion?: number } {
  return ifVersion === undefined ? { value } : { value, ifVersion };
}

/** Whether an error's message says more than its code's usual one (the registry's). */
/** An answer from a manager recovering its storage (NO_LEADER's details say so). */
function recovering(err: MinkubeError): boolean {
  return (err.details as { storageRecovering?: unknown } | null | undefined)?.storageRecovering === true;
}

function saysMore(err: MinkubeError): boolean {
  return err.message !== (errorRegistry as Record<string, { message: string } | undefined>)[err.code]?.message;
}

/** The last manager's failure, naming the others tried before it and how each failed. */
function triedAll(err: MinkubeError, others: readonly string[]): MinkubeError {
  return new MinkubeError(err.code, `${err.message} (also tried ${others.join('; ')})`, { cause: err, details: err.details });
}

/** A read's failure after retries: how many rounds, over how long. */
function afterTries(err: MinkubeError, rounds: number, elapsedMs: number): MinkubeError {
  return new MinkubeError(err.code, `${err.message} (${rounds} tries over ${(elapsedMs / 1000).toFixed(1)} s)`, { cause: err, details: err.details });
}

interface Tried {
  readonly url: string;
  readonly err: MinkubeError;
}

const reasonOf = (t: Tried): string => `${t.url}: ${t.err.code}`;

/**
 * A round in which every manager failed: the failure that says most leads, the others are named after it. A manager's
 * own answer (NO_LEADER from one that is up) says more than not reaching one; an intact manager's more than one
 * recovering its storage (which hears from no peer, so cannot know why no leader is elected); an answer in more than
 * its code's usual words (why no leader can be elected) more than one in them; among equals, the latest.
 */
function roundFailed(tried: readonly Tried[]): MinkubeError {
  // A timeout, the client's or one a manager passed on, counts as no answer.
  const rank = (e: MinkubeError): number => (answered(e) && e.code !== 'TIMEOUT' ? 4 : 0) + (recovering(e) ? 0 : 2) + (saysMore(e) ? 1 : 0);
  let lead = tried.length - 1;
  for (let i = tried.length - 2; i >= 0; i--) if (rank(tried[i]!.err) > rank(tried[lead]!.err)) lead = i;
  const others = tried.filter((_, i) => i !== lead).map(reasonOf);
  const err = tried[lead]!.err;
  return others.length > 0 ? triedAll(err, others) : err;
}

/** Runs of specs, each at most batchMax long and (unless one spec alone is larger) a body under bodyBytesMax. */
function batchChunks(specs: readonly TaskSpec[], batchMax: number, bodyBytesMax: number): TaskSpec[][] {
  if (!Number.isInteger(batchMax) || batchMax < 1 || batchMax > limits.taskBatchMax) {
    throw new MinkubeError('INVALID_PARAM', `batchMax: expected 1..${limits.taskBatchMax}, got ${batchMax}`);
  }
  const envelopeBytes = '{"tasks":[]}'.length;
  // Each spec costs its JSON and a comma.
  return chunksUnder(specs, batchMax, bodyBytesMax - envelopeBytes, (spec) => Buffer.byteLength(JSON.stringify(spec)) + 1);
}

function kvPath(key: string): string {
  // Dot segments cannot cross a URL intact (clients collapse them), so such a key is refused here, as the server would.
  const problem = keyProblem(key);
  if (problem !== null) throw new MinkubeError('INVALID_KEY', problem);
  return `/v1/kv/${keyPath(key)}`;
}
