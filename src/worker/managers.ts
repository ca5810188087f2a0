// The worker's side of the worker -> manager contract: register, heartbeat, list assignments, trying every manager
// of the config in turn (the last one that answered first). Followers forward, so any manager will do.
import { workerAskTasksHeader, workerInstanceHeader, type Assignment, type AssignmentList, type HeartbeatRequest, type HeartbeatResponse, type RegisterRequest } from '../contracts/worker.js';
import { ApiClient } from '../client/api-client.js';
import type { HttpClient } from '../client/http.js';
import type { WorkerRecord } from '../contracts/task-model.js';
import { systemClock, type Clock, type Timer } from '../lib/clock.js';
import { MinkubeError } from '../lib/errors.js';

/** What the worker needs from the managers; the loops and tests depend on this, not on HTTP. */
export interface ManagerLink {
  register(req: RegisterRequest): Promise<WorkerRecord>;
  heartbeat(workerId: string, req: HeartbeatRequest): Promise<HeartbeatResponse>;
  /** `instance`: the asking instance (a replaced one is refused, WORKER_REPLACED); `askTasks`: see workerAskTasksHeader. */
  assignments(workerId: string, instance?: string, askTasks?: readonly string[]): Promise<AssignmentList>;
  /** The managers the cluster has now (a heartbeat's `managers`): asked from now on. */
  learnManagers?(addresses: readonly string[]): void;
}

export interface HttpManagerLinkOptions {
  /** The managers' API addresses ('host:port' or URLs). */
  managers: readonly string[];
  /** Per request to one manager. */
  timeoutMs: number;
  /**
   * A heartbeat not answered within this long is also sent to the next manager, and the first answer counts (default:
   * the managers are asked in turn only when one fails). A manager frozen or cut off while its kernel still accepts
   * connections must not keep a heartbeat waiting past the worker's TTL, and a slow but live one must not be given up.
   */
  heartbeatHedgeMs?: number;
  /** The pool (and with it TLS material and token) every manager is reached through; default the process's own. */
  http?: HttpClient;
  /** Called with the whole list when the managers learnt change it (the daemon keeps it on disk). */
  onLearned?: (addresses: readonly string[]) => void;
  /** The hedge timer's clock; the system clock unless given. */
  clock?: Clock;
}

/** A heartbeat waits at least this long for one manager before asking the next as well, however short the TTL. */
const HEARTBEAT_HEDGE_MS_MIN = 250;

/**
 * How long a heartbeat waits for one manager before asking the next as well: a quarter of workerTtlMs, the silence
 * after which the leader calls the worker unreachable (with the default 2 s, a frozen manager delays a beat 500 ms, and
 * the next manager's answer still comes well inside the TTL), but at least HEARTBEAT_HEDGE_MS_MIN.
 */
export function heartbeatHedgeMs(tasks: { readonly workerTtlMs: number }): number {
  return Math.max(HEARTBEAT_HEDGE_MS_MIN, Math.floor(tasks.workerTtlMs / 4));
}

/** At most this many learnt managers are kept (a cluster has a handful; a bad answer must not grow the list). */
const LEARNT_MANAGERS_MAX = 16;

export class HttpManagerLink implements ManagerLink {
  /** The managers to try, in order: those learnt from the cluster first, then the configured ones they leave out. */
  private addresses: string[];
  private clients: ApiClient[];
  private readonly configured: readonly string[];
  private learnt: readonly string[] = [];
  private readonly timeoutMs: number;
  private preferred = 0;
  private readonly clock: Clock;

  constructor(private readonly opts: HttpManagerLinkOptions) {
    if (opts.managers.length === 0) throw new MinkubeError('CONFIG_INVALID', 'a worker needs at least one manager address');
    this.configured = [...new Set(opts.managers)];
    this.addresses = [...this.configured];
    this.clients = this.addresses.map((m) => this.clientFor(m));
    this.timeoutMs = opts.timeoutMs;
    this.clock = opts.clock ?? systemClock;
  }

  /** The managers it asks, in order (learnt ones first). */
  managers(): readonly string[] {
    return this.addresses;
  }

  /**
   * The managers the cluster has now (a heartbeat's answer, or the list kept from an earlier run): asked first from
   * now on, in that order, then the configured ones they leave out, so a worker follows managers that joined after
   * it started and still reaches the cluster once every manager of its config is gone.
   */
  learnManagers(addresses: readonly string[]): void {
    const learnt = [...new Set(addresses.filter((a) => typeof a === 'string' && a !== ''))].slice(0, LEARNT_MANAGERS_MAX);
    if (learnt.length === 0 || (learnt.length === this.learnt.length && learnt.every((a, i) => a === this.learnt[i]))) return;
    const current = this.addresses[this.preferred];
    const byAddress = new Map(this.addresses.map((a, i) => [a, this.clients[i]!]));
    this.learnt = learnt;
    this.addresses = [...learnt, ...this.configured.filter((a) => !learnt.includes(a))];
    this.clients = this.addresses.map((a) => byAddress.get(a) ?? this.clientFor(a));
    this.preferred = Math.max(0, current === undefined ? 0 : this.addresses.indexOf(current));
    this.opts.onLearned?.(learnt);
  }

  private clientFor(address: string): ApiClient {
    const { http, timeoutMs } = this.opts;
    return new ApiClient(address, http === undefined ? { timeoutMs } : { timeoutMs, http });
  }

  async register(req: RegisterRequest): Promise<WorkerRecord> {
    const res = await this.call<{ worker: WorkerRecord }>('POST', '/v1/workers', req);
    return res.worker;
  }

  heartbeat(workerId: string, req: HeartbeatRequest): Promise<HeartbeatResponse> {
    const path = `/v1/workers/${encodeURIComponent(workerId)}/heartbeat`;
    const hedgeMs = this.opts.heartbeatHedgeMs;
    return hedgeMs === undefined ? this.call('POST', path, req) : this.hedgedCall('POST', path, req, hedgeMs);
  }

  async assignments(workerId: string, instance?: string, askTasks: readonly string[] = []): Promise<AssignmentList> {
    const headers: Record<string, string> = {};
    if (instance !== undefined) headers[workerInstanceHeader] = instance;
    if (askTasks.length > 0) headers[workerAskTasksHeader] = askTasks.join(',');
    const res = await this.call<{ items: Assignment[]; knownTaskIds?: unknown }>('GET', `/v1/workers/${encodeURIComponent(workerId)}/assignments`, undefined, headers);
    if (!Array.isArray(res.items)) throw new MinkubeError('INTERNAL', 'the assignment list has no items array');
    const known = Array.isArray(res.knownTaskIds) ? res.knownTaskIds.filter((t): t is string => typeof t === 'string') : undefined;
    return known === undefined ? { items: res.items } : { items: res.items, knownTaskIds: known };
  }

  /**
   * One request, to each manager in turn until one gives an answer that is not about itself (unreachable, busy,
   * leaderless, or without the route). An answer about the request (WORKER_NOT_FOUND, INVALID_BODY) is final.
   */
  private async call<T>(method: string, path: string, body?: unknown, headers?: Readonly<Record<string, string>>): Promise<T> {
    let last: unknown;
    const { timeoutMs } = this;
    for (let i = 0; i < this.clients.length; i++) {
      const k = (this.preferred + i) % this.clients.length;
      const client = this.clients[k];
      if (client === undefined) continue;
      try {
        const res = await client.request<T>(method, path, { timeoutMs, ...(body === undefined ? {} : { body }), ...(headers === undefined ? {} : { headers }) });
        this.preferred = k;
        return res;
      } catch (err) {
        if (!tryAnother(err)) throw err;
        last = err;
      }
    }
    const reason = last instanceof Error ? last.message : String(last);
    throw new MinkubeError('UNREACHABLE', `no manager answered ${method} ${path} (last: ${reason})`, { cause: last });
  }

  /**
   * call() with hedging: the managers in the same order, the next one asked as well once `hedgeMs` pass without an
   * answer, or at once when one fails in a way another may not; the first answer wins. The slower requests end by
   * themselves: a heartbeat's statuses go through the managers' transition checks, so a late copy changes nothing.
   * At most one request per manager is in flight.
   */
  private hedgedCall<T>(method: string, path: string, body: unknown, hedgeMs: number): Promise<T> {
    const clients = this.clients;
    const first = this.preferred;
    return new Promise<T>((resolve, reject) => {
      let started = 0;
      let failed = 0;
      let settled = false;
      let last: unknown;
      let timer: Timer | undefined;
      const settle = (): boolean => {
        if (settled) return false;
        settled = true;
        timer?.cancel();
        return true;
      };
      const next = (): void => {
        timer?.cancel();
        if (settled || started >= clients.length) return;
        const k = (first + started) % clients.length;
        started++;
        clients[k]!.request<T>(method, path, { body, timeoutMs: this.timeoutMs }).then(
          (res) => {
            if (!settle()) return;
            if (this.clients === clients) this.preferred = k;
            resolve(res);
          },
          (err: unknown) => {
            if (settled) return;
            if (!tryAnother(err)) {
              settle();
              reject(err instanceof Error ? err : new Error(String(err)));
              return;
            }
            last = err;
            if (++failed === clients.length) {
              settle();
              const reason = last instanceof Error ? last.message : String(last);
              reject(new MinkubeError('UNREACHABLE', `no manager answered ${method} ${path} (last: ${reason})`, { cause: last }));
              return;
            }
            next();
          },
        );
        if (started < clients.length) timer = this.clock.setTimeout(next, hedgeMs);
      };
      next();
    });
  }
}

function tryAnother(err: unknown): boolean {
  if (!(err instanceof MinkubeError)) return true;
  return err.status >= 500 || err.status === 429 || err.code === 'NOT_FOUND' || err.code === 'METHOD_NOT_ALLOWED';
}
