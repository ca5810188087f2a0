// The fault test's clients: concurrent key-value clients (linearizable reads, puts, compare-and-sets on the version
// they last saw, deletes) and a task submitter, each request to a random manager, every operation recorded.
import type { Random, SeededRandom } from '../../src/lib/random.js';
import { sleep } from '../support/wait.js';
import { classifyKv, type KvKind, type KvOpRecord, type TaskSubmission } from './history.js';
import { send, type Access, type RequestOptions } from './http.js';

export { sleep };

export interface WorkloadOptions {
  /** The managers' real API addresses, by id. */
  readonly managers: ReadonlyMap<string, string>;
  readonly keys: readonly string[];
  readonly kvClients: number;
  readonly random: SeededRandom;
  /** Per request; a request without an answer by then is recorded as unknown. */
  readonly timeoutMs: number;
  readonly nowMs: () => number;
  /** Task commands append their start and end here. */
  readonly runFile: string;
  /** Makes the task markers unique to the run. */
  readonly seed: number;
  /** Mean pause between task submissions. */
  readonly taskIntervalMs: number;
  /** The clients read with consistency=stale: a self-test, the checks must then find stale reads. */
  readonly staleReads?: boolean;
  /** The CA and the admin token of a closed cluster; null when it is insecure. */
  readonly access: Access | null;
}

/**
 * A task's command: it appends "start MARK PID MS" and, when its sleep ends or it is stopped, "end MARK PID MS" to the
 * run file (the process runtime runs it on this host), so two copies of one task running at once show as overlaps.
 */
const taskScript = [
  'echo "start $CHAOS_MARK $$ $(date +%s%3N)" >> "$CHAOS_FILE"',
  'trap \'echo "end $CHAOS_MARK $$ $(date +%s%3N) term" >> "$CHAOS_FILE"; exit 143\' TERM',
  'sleep "$CHAOS_SLEEP" & wait $!',
  'echo "end $CHAOS_MARK $$ $(date +%s%3N)" >> "$CHAOS_FILE"',
].join('\n');

export class Workload {
  readonly kv: KvOpRecord[] = [];
  readonly tasks: TaskSubmission[] = [];
  private stopping = false;
  private nextId = 0;
  private loops: Promise<void>[] = [];
  private readonly managerIds: string[];

  constructor(private readonly o: WorkloadOptions) {
    this.managerIds = [...o.managers.keys()];
  }

  start(): void {
    for (let i = 1; i <= this.o.kvClients; i++) this.loops.push(this.kvLoop(`c${i}`, this.o.random.fork()));
    this.loops.push(this.taskLoop(this.o.random.fork()));
  }

  /** Lets every operation in flight finish, then returns. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
    this.loops = [];
  }

  /** Sends one kv operation and records it (the final reads use this too). */
  async kvOp(client: string, node: string, key: string, kind: KvKind, args: { value?: string; ifVersion?: number } = {}): Promise<KvOpRecord> {
    const address = this.o.managers.get(node)!;
    const path = `/v1/kv/${key}`;
    const callMs = this.o.nowMs();
    const record: KvOpRecord = { id: this.nextId++, client, node, key, kind, ...args, callMs, returnMs: null, status: 'unknown', output: null };
    this.kv.push(record);
    const o: RequestOptions = { timeoutMs: this.o.timeoutMs, access: this.o.access };
    const outcome =
      kind === 'read'
        ? await send(address, 'GET', this.o.staleReads === true && client !== 'final' ? `${path}?consistency=stale` : path, o)
        : kind === 'delete'
          ? await send(address, 'DELETE', args.ifVersion === undefined ? path : `${path}?ifVersion=${args.ifVersion}`, o)
          : await send(address, 'PUT', path, { ...o, body: args.ifVersion === undefined ? { value: args.value } : { value: args.value, ifVersion: args.ifVersion } });
    record.returnMs = this.o.nowMs();
    Object.assign(record, classifyKv(kind, outcome));
    return record;
  }

  private async kvLoop(client: string, random: Random): Promise<void> {
    /** key -> the version this client last saw (0: absent): what its compare-and-sets name. */
    const seen = new Map<string, number>();
    let seq = 0;
    while (!this.stopping) {
      const key = this.o.keys[random.int(this.o.keys.length)]!;
      const node = this.managerIds[random.int(this.managerIds.length)]!;
      const dice = random.next();
      const value = `${client}-${++seq}`;
      const known = seen.get(key) ?? 0;
      let r: KvOpRecord;
      if (dice < 0.4) r = await this.kvOp(client, node, key, 'read');
      else if (dice < 0.6) r = await this.kvOp(client, node, key, 'put', { value });
      else if (dice < 0.9) r = await this.kvOp(client, node, key, 'cas', { value, ifVersion: known });
      else r = await this.kvOp(client, node, key, 'delete', random.next() < 0.3 ? { ifVersion: known } : {});
      const out = r.output;
      if (out?.kind === 'value') seen.set(key, out.version);
      else if (out?.kind === 'absent') seen.set(key, 0);
      else if (out?.kind === 'written') seen.set(key, r.kind === 'delete' ? 0 : out.version);
      await sleep(random.int(20));
    }
  }

  private async taskLoop(random: Random): Promise<void> {
    let n = 0;
    while (!this.stopping) {
      await sleep(this.o.taskIntervalMs / 2 + random.int(this.o.taskIntervalMs));
      if (this.stopping) return;
      await this.submit(`chaos-${this.o.seed}-${++n}`, random);
    }
  }

  /** Submits one task, retried under its Idempotency-Key until a manager answers 201 (or the run ends). */
  private async submit(marker: string, random: Random): Promise<void> {
    const sleepS = (0.5 + random.int(15) / 10).toFixed(1);
    const body = {
      name: marker,
      image: 'chaos',
      command: ['sh', '-c', taskScript],
      env: { CHAOS_FILE: this.o.runFile, CHAOS_MARK: marker, CHAOS_SLEEP: sleepS },
      restartPolicy: 'never',
    };
    const sub: TaskSubmission = { id: this.tasks.length, marker, callMs: this.o.nowMs(), returnMs: null, status: 'fail', taskId: null, tries: 0 };
    this.tasks.push(sub);
    let unknown = false;
    while (sub.tries < 8 && (sub.tries === 0 || !this.stopping)) {
      sub.tries++;
      const node = this.managerIds[random.int(this.managerIds.length)]!;
      const outcome = await send(this.o.managers.get(node)!, 'POST', '/v1/tasks', { body, headers: { 'idempotency-key': marker }, timeoutMs: this.o.timeoutMs, access: this.o.access });
      if (outcome.kind === 'answer' && outcome.status === 201 && typeof outcome.body.id === 'string') {
        sub.status = 'ok';
        sub.taskId = outcome.body.id;
        break;
      }
      sub.lastError = outcome.kind === 'answer' ? `HTTP ${outcome.status} ${outcome.body.error?.code ?? ''}` : outcome.error;
      if (outcome.kind === 'unknown' || (outcome.kind === 'answer' && outcome.status >= 500 && outcome.status !== 503)) unknown = true;
      // A 4xx other than 429 and 401 is about the request itself: retrying cannot help. A 401 comes from a manager
      // that restarted and has not yet applied the entry that made the admin token (its state is behind): not ready.
      if (outcome.kind === 'answer' && outcome.status >= 400 && outcome.status < 500 && outcome.status !== 429 && outcome.status !== 401) break;
      await sleep(200 + random.int(300));
    }
    sub.returnMs = this.o.nowMs();
    if (sub.status !== 'ok' && unknown) sub.status = 'unknown';
  }
}

