// The leader's side of the leader -> worker contract (src/api/worker-contract.ts): send an assignment (run or stop,
// both fenced by the token), fetch logs. Every failure is a MinkubeError, classified for the retry decision.
import { Agent, request } from 'node:http';
import type { Assignment, WorkerTaskStatus } from '../api/worker-contract.js';
import { normaliseBaseUrl } from '../api/client.js';
import type { FailureClass } from '../kv/task-model.js';
import { chunksUnder } from '../lib/chunks.js';
import { errorFromBody, MinkubeError } from '../lib/errors.js';

export interface WorkerCallOptions {
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
}

/**
 * Over node:http with one keep-alive agent: the leader sends thousands of assignments a second, and fetch costs
 * several times more CPU per request than a plain request on a reused socket.
 */
export class HttpWorkerApi implements WorkerApi {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64 });

  async assign(apiAddress: string, a: Assignment, o: WorkerCallOptions): Promise<WorkerTaskStatus> {
    return JSON.parse(await this.call(apiAddress, 'POST', '/v1/tasks', assignmentJson(a), o)) as WorkerTaskStatus;
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

  close(): void {
    this.agent.destroy();
  }

  private call(apiAddress: string, method: string, path: string, body: string | null, o: WorkerCallOptions): Promise<string> {
    const url = new URL(path, normaliseBaseUrl(apiAddress));
    const what = `${method} ${url.origin}${url.pathname}`;
    return new Promise<string>((resolve, reject) => {
      let settled = false;
      const fail = (err: MinkubeError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        o.signal?.removeEventListener('abort', onAbort);
        req.destroy();
        reject(err);
      };
      const headers: Record<string, string | number> = { accept: 'application/json' };
      if (body !== null) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = Buffer.byteLength(body);
      }
      const req = request({ agent: this.agent, host: url.hostname, port: url.port, path: url.pathname + url.search, method, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => fail(new MinkubeError('WORKER_UNAVAILABLE', `${what}: the answer was cut off (${err.message})`, { cause: err })));
        res.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          o.signal?.removeEventListener('abort', onAbort);
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve(text);
          else reject(errorFromBody(parseJson(text), status));
        });
      });
      const timer = setTimeout(() => fail(new MinkubeError('TIMEOUT', `${what}: the worker did not answer within ${o.timeoutMs} ms`)), o.timeoutMs);
      const onAbort = (): void => fail(new MinkubeError('WORKER_UNAVAILABLE', `${what}: abandoned (this manager stepped down)`));
      if (o.signal?.aborted === true) return onAbort();
      o.signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', (err: NodeJS.ErrnoException) => {
        fail(new MinkubeError('WORKER_UNAVAILABLE', `cannot reach the worker: ${what} (${err.code ?? err.message})`, { cause: err }));
      });
      req.end(body ?? undefined);
    });
  }
}

/** Below a worker's default body limit (1 MiB), with room for the envelope. */
const batchBodyBytesMax = 512 * 1024;

function assignmentJson(a: Assignment): string {
  return JSON.stringify({ taskId: a.taskId, attempt: a.attempt, term: a.term, spec: a.spec, desiredState: a.desiredState });
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * Whether a refused or failed assignment can succeed elsewhere. A spec the worker refuses is permanent; a stale
 * token means the task has moved on (nothing to do); everything else (unreachable, timeout, full, 5xx) is transient.
 */
export function classifyAssignError(err: unknown): FailureClass | 'stale' {
  if (!(err instanceof MinkubeError)) return 'transient';
  if (err.code === 'TASK_STALE_FENCING_TOKEN') return 'stale';
  if (err.code === 'INVALID_TASK_SPEC' || err.code === 'INVALID_BODY') return 'permanent';
  return 'transient';
}
