// The leader's side of the leader -> worker contract (src/api/worker-contract.ts): send an assignment (run or stop,
// both fenced by the token), fetch logs. Every failure is a MinkubeError, classified for the retry decision.
import type { Assignment, WorkerTaskStatus } from '../api/worker-contract.js';
import { normaliseBaseUrl } from '../api/client.js';
import type { FailureClass } from '../kv/task-model.js';
import { errorFromBody, MinkubeError } from '../lib/errors.js';

export interface WorkerCallOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

/** What the managers need of workers; tests pass a fake. */
export interface WorkerApi {
  /** POST /v1/tasks: a run or a stop (desiredState), answered with the worker's status of that attempt. */
  assign(apiAddress: string, a: Assignment, o: WorkerCallOptions): Promise<WorkerTaskStatus>;
  logs(apiAddress: string, taskId: string, tailLines: number, o: WorkerCallOptions): Promise<string>;
}

export class HttpWorkerApi implements WorkerApi {
  async assign(apiAddress: string, a: Assignment, o: WorkerCallOptions): Promise<WorkerTaskStatus> {
    const body = { taskId: a.taskId, attempt: a.attempt, term: a.term, spec: a.spec, desiredState: a.desiredState };
    const text = await call(apiAddress, 'POST', '/v1/tasks', JSON.stringify(body), o);
    return JSON.parse(text) as WorkerTaskStatus;
  }

  logs(apiAddress: string, taskId: string, tailLines: number, o: WorkerCallOptions): Promise<string> {
    return call(apiAddress, 'GET', `/v1/tasks/${encodeURIComponent(taskId)}/logs?tail=${tailLines}`, null, o);
  }
}

async function call(apiAddress: string, method: string, path: string, body: string | null, o: WorkerCallOptions): Promise<string> {
  const url = `${normaliseBaseUrl(apiAddress)}${path}`;
  const timeout = AbortSignal.timeout(o.timeoutMs);
  const signal = o.signal === undefined ? timeout : AbortSignal.any([o.signal, timeout]);
  const init: RequestInit = { method, signal, headers: body === null ? {} : { 'content-type': 'application/json' } };
  if (body !== null) init.body = body;
  let res: Response;
  let text: string;
  try {
    res = await fetch(url, init);
    text = await res.text();
  } catch (err) {
    if (timeout.aborted) throw new MinkubeError('TIMEOUT', `${method} ${url}: the worker did not answer within ${o.timeoutMs} ms`, { cause: err });
    const code = (err as { cause?: { code?: string } }).cause?.code;
    throw new MinkubeError('WORKER_UNAVAILABLE', `cannot reach the worker at ${url} (${code ?? (err as Error).message})`, { cause: err });
  }
  if (!res.ok) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    throw errorFromBody(parsed, res.status);
  }
  return text;
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
