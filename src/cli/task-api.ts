// The CLI's client of the task and worker routes: JSON calls, a text call for logs, and submissions that carry an
// Idempotency-Key so that retrying them (after a timeout or a lost leader) still creates one task.
import type { ApiClient, SubmittedTask } from '../client/api-client.js';
import { apiClientFor } from './connection.js';
import type { TaskPlacementView } from '../contracts/placement.js';
import type { Page } from '../contracts/services.js';
import type { TaskRecord, TaskSpec, WorkerAvailability, WorkerRecord } from '../contracts/task-model.js';

export class TaskApi {
  private readonly client: ApiClient;

  constructor(baseUrl: string) {
    this.client = apiClientFor(baseUrl, { readRetries: 2 });
  }

  get baseUrl(): string {
    return this.client.baseUrl;
  }

  /** Retried on answers that say "not now" (no leader, timeout, unreachable); the key makes the retries safe. */
  submit(spec: TaskSpec): Promise<SubmittedTask> {
    return this.client.submitTask(spec);
  }

  /** Through POST /v1/tasks/batch in requests of up to limits.taskBatchMax, each under its own key derived from one. */
  submitMany(specs: readonly TaskSpec[], onCreated: (items: readonly SubmittedTask[]) => void): Promise<SubmittedTask[]> {
    return this.client.submitTasks(specs, { onCreated });
  }

  async get(id: string): Promise<TaskRecord> {
    return this.json<TaskRecord>('GET', `/v1/tasks/${encodeURIComponent(id)}`);
  }

  /** Where the task was placed, or why each worker cannot take it (`task why`). */
  async placement(id: string): Promise<TaskPlacementView> {
    return this.json<TaskPlacementView>('GET', `/v1/tasks/${encodeURIComponent(id)}/placement`);
  }

  async list(q: { state?: string; workerId?: string; name?: string; limit: number; cursor?: string }): Promise<Page<TaskRecord>> {
    const params = new URLSearchParams({ limit: String(q.limit) });
    if (q.state !== undefined) params.set('state', q.state);
    if (q.workerId !== undefined) params.set('workerId', q.workerId);
    if (q.name !== undefined) params.set('name', q.name);
    if (q.cursor !== undefined) params.set('cursor', q.cursor);
    return this.json<Page<TaskRecord>>('GET', `/v1/tasks?${params.toString()}`);
  }

  async stop(id: string): Promise<TaskRecord> {
    return this.json<TaskRecord>('DELETE', `/v1/tasks/${encodeURIComponent(id)}`);
  }

  logs(id: string, tailLines: number): Promise<string> {
    return this.call('GET', `/v1/tasks/${encodeURIComponent(id)}/logs?tail=${tailLines}`);
  }

  /** The tail, then the output as it is written, until the task's container has exited. */
  async followLogs(id: string, tailLines: number): Promise<AsyncIterable<Uint8Array>> {
    return (await this.client.requestStream('GET', `/v1/tasks/${encodeURIComponent(id)}/logs?tail=${tailLines}&follow=true`)).body;
  }

  async removeWorker(id: string): Promise<{ id: string; removed: true }> {
    return this.json<{ id: string; removed: true }>('DELETE', `/v1/workers/${encodeURIComponent(id)}`);
  }

  async setWorkerAvailability(id: string, availability: WorkerAvailability): Promise<WorkerRecord> {
    return this.json<WorkerRecord>('PUT', `/v1/workers/${encodeURIComponent(id)}/availability`, { availability });
  }

  async workers(q: { limit: number; cursor?: string }): Promise<Page<WorkerRecord>> {
    const params = new URLSearchParams({ limit: String(q.limit) });
    if (q.cursor !== undefined) params.set('cursor', q.cursor);
    return this.json<Page<WorkerRecord>>('GET', `/v1/workers?${params.toString()}`);
  }

  /** One request; a 2xx answers its JSON body once checked (ApiClient.request), else throws as the server said. */
  private json<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.client.request<T>(method, path, body === undefined ? {} : { body });
  }

  /** One request; a 2xx answers its body as text, anything else throws the MinkubeError the server described. */
  private call(method: string, path: string): Promise<string> {
    return this.client.requestText(method, path);
  }
}
