// The worker's side of the worker -> manager contract: register, heartbeat, list assignments, trying every manager
// of the config in turn (the last one that answered first). Followers forward, so any manager will do.
import type { Assignment, HeartbeatRequest, HeartbeatResponse, RegisterRequest } from '../contracts/worker.js';
import { ApiClient } from '../client/api-client.js';
import type { HttpClient } from '../client/http.js';
import type { WorkerRecord } from '../contracts/task-model.js';
import { MinkubeError } from '../lib/errors.js';

/** What the worker needs from the managers; the loops and tests depend on this, not on HTTP. */
export interface ManagerLink {
  register(req: RegisterRequest): Promise<WorkerRecord>;
  heartbeat(workerId: string, req: HeartbeatRequest): Promise<HeartbeatResponse>;
  assignments(workerId: string): Promise<Assignment[]>;
}

export interface HttpManagerLinkOptions {
  /** The managers' API addresses ('host:port' or URLs). */
  managers: readonly string[];
  /** Per request to one manager. */
  timeoutMs: number;
  /** The pool (and with it TLS material and token) every manager is reached through; default the process's own. */
  http?: HttpClient;
}

export class HttpManagerLink implements ManagerLink {
  private readonly clients: ApiClient[];
  private readonly timeoutMs: number;
  private preferred = 0;

  constructor(opts: HttpManagerLinkOptions) {
    if (opts.managers.length === 0) throw new MinkubeError('CONFIG_INVALID', 'a worker needs at least one manager address');
    this.clients = opts.managers.map((m) => new ApiClient(m, opts.http === undefined ? { timeoutMs: opts.timeoutMs } : { timeoutMs: opts.timeoutMs, http: opts.http }));
    this.timeoutMs = opts.timeoutMs;
  }

  async register(req: RegisterRequest): Promise<WorkerRecord> {
    const res = await this.call<{ worker: WorkerRecord }>('POST', '/v1/workers', req);
    return res.worker;
  }

  heartbeat(workerId: string, req: HeartbeatRequest): Promise<HeartbeatResponse> {
    return this.call('POST', `/v1/workers/${encodeURIComponent(workerId)}/heartbeat`, req);
  }

  async assignments(workerId: string): Promise<Assignment[]> {
    const res = await this.call<{ items: Assignment[] }>('GET', `/v1/workers/${encodeURIComponent(workerId)}/assignments`);
    if (!Array.isArray(res.items)) throw new MinkubeError('INTERNAL', 'the assignment list has no items array');
    return res.items;
  }

  /**
   * One request, to each manager in turn until one gives an answer that is not about itself (unreachable, busy,
   * leaderless, or without the route). An answer about the request (WORKER_NOT_FOUND, INVALID_BODY) is final.
   */
  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let last: unknown;
    for (let i = 0; i < this.clients.length; i++) {
      const k = (this.preferred + i) % this.clients.length;
      const client = this.clients[k];
      if (client === undefined) continue;
      try {
        const res = await client.request<T>(method, path, body === undefined ? { timeoutMs: this.timeoutMs } : { body, timeoutMs: this.timeoutMs });
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
}

function tryAnother(err: unknown): boolean {
  if (!(err instanceof MinkubeError)) return true;
  return err.status >= 500 || err.status === 429 || err.code === 'NOT_FOUND' || err.code === 'METHOD_NOT_ALLOWED';
}
