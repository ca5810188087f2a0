// The CLI's client of the task and worker routes: JSON calls, a text call for logs, and submissions that carry an
// Idempotency-Key so that retrying them (after a timeout or a lost leader) still creates one task.
import { randomUUID } from 'node:crypto';
import { ApiClient } from '../api/client.js';
import type { Page } from '../api/service.js';
import type { TaskRecord, TaskSpec, WorkerRecord } from '../kv/task-model.js';
import { MinkubeError } from '../lib/errors.js';

const submitAttempts = 4;

export class TaskApi {
  private readonly client: ApiClient;

  constructor(baseUrl: string) {
    this.client = new ApiClient(baseUrl, { readRetries: 2 });
  }

  get baseUrl(): string {
    return this.client.baseUrl;
  }

  /** Retried on answers that say "not now" (no leader, timeout, unreachable); the key makes the retries safe. */
  async submit(spec: TaskSpec): Promise<{ id: string; state: string }> {
    const key = randomUUID();
    for (let attempt = 1; ; attempt++) {
      try {
        return JSON.parse(await this.call('POST', '/v1/tasks', spec, { 'idempotency-key': key })) as { id: string; state: string };
      } catch (err) {
        const again = err instanceof MinkubeError && (err.status >= 500 || err.code === 'QUEUE_FULL');
        if (!again || attempt >= submitAttempts) throw err;
        await new Promise((r) => setTimeout(r, 250 * attempt));
      }
    }
  }

  async get(id: string): Promise<TaskRecord> {
    return JSON.parse(await this.call('GET', `/v1/tasks/${encodeURIComponent(id)}`)) as TaskRecord;
  }

  async list(q: { state?: string; workerId?: string; limit: number; cursor?: string }): Promise<Page<TaskRecord>> {
    const params = new URLSearchParams({ limit: String(q.limit) });
    if (q.state !== undefined) params.set('state', q.state);
    if (q.workerId !== undefined) params.set('workerId', q.workerId);
    if (q.cursor !== undefined) params.set('cursor', q.cursor);
    return JSON.parse(await this.call('GET', `/v1/tasks?${params.toString()}`)) as Page<TaskRecord>;
  }

  async stop(id: string): Promise<TaskRecord> {
    return JSON.parse(await this.call('DELETE', `/v1/tasks/${encodeURIComponent(id)}`)) as TaskRecord;
  }

  logs(id: string, tailLines: number): Promise<string> {
    return this.call('GET', `/v1/tasks/${encodeURIComponent(id)}/logs?tail=${tailLines}`);
  }

  async workers(q: { limit: number; cursor?: string }): Promise<Page<WorkerRecord>> {
    const params = new URLSearchParams({ limit: String(q.limit) });
    if (q.cursor !== undefined) params.set('cursor', q.cursor);
    return JSON.parse(await this.call('GET', `/v1/workers?${params.toString()}`)) as Page<WorkerRecord>;
  }

  /** One request; a 2xx answers its body as text, anything else throws the MinkubeError the server described. */
  private call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<string> {
    return this.client.requestText(method, path, body === undefined ? { headers } : { headers, body });
  }
}
