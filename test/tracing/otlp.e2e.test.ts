// One trace from a task's submission to its running, across real processes (3 managers, a process-runtime worker)
// exporting to an in-process OTLP/HTTP receiver: the caller's traceparent reaches the manager's request span, every
// manager's apply of the proposal, the leader's assignment, the worker's request and container start, and the
// managers' view of it running; the container gets TRACEPARENT, and both sides' log lines carry the trace id.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, ProcCluster } from '../support/cluster.js';

interface ReceivedSpan {
  service: string;
  node: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  attributes: Record<string, unknown>;
}

type OtlpAttribute = { key: string; value: Record<string, unknown> };
type OtlpSpan = { traceId: string; spanId: string; parentSpanId?: string; name: string; attributes?: OtlpAttribute[] };
type OtlpBody = { resourceSpans?: { resource?: { attributes?: OtlpAttribute[] }; scopeSpans?: { spans?: OtlpSpan[] }[] }[] };

/** OTLP/JSON ids are hex; a base64 one (some encoders) is turned into hex. */
function hexId(id: string | undefined): string {
  if (id === undefined || id === '') return '';
  return /^[0-9a-f]+$/.test(id) ? id : Buffer.from(id, 'base64').toString('hex');
}

function attributesOf(list: OtlpAttribute[] | undefined): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map((a) => [a.key, Object.values(a.value)[0]]));
}

/** A minimal OTLP/HTTP trace receiver (JSON): POST /v1/traces. */
class Receiver {
  readonly spans: ReceivedSpan[] = [];
  readonly server: Server;
  requests = 0;

  constructor() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        let body = Buffer.concat(chunks);
        if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
        if (req.method === 'POST' && req.url === '/v1/traces') {
          this.requests++;
          expect(req.headers['content-type']).toMatch(/application\/json/);
          this.take(JSON.parse(body.toString('utf8')) as OtlpBody);
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
  }

  private take(body: OtlpBody): void {
    for (const rs of body.resourceSpans ?? []) {
      const resource = attributesOf(rs.resource?.attributes);
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          this.spans.push({
            service: String(resource['service.name']),
            node: String(resource['service.instance.id']),
            traceId: hexId(s.traceId),
            spanId: hexId(s.spanId),
            parentSpanId: hexId(s.parentSpanId),
            name: s.name,
            attributes: attributesOf(s.attributes),
          });
        }
      }
    }
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
}

let c: ProcCluster;
let receiver: Receiver;
let leader: string;
const saved = { endpoint: process.env.OTEL_EXPORTER_OTLP_ENDPOINT, delay: process.env.OTEL_BSP_SCHEDULE_DELAY };

beforeAll(async () => {
  receiver = new Receiver();
  const endpoint = await receiver.listen();
  // Only an assignment the leader pushes carries its trace context (the replicated record does not): a worker that
  // found the task by its own reconciliation first (CI once saw it, under load) would start it untraced. Reconciling
  // once a minute lets the push, which follows the placement's commit at once, be what starts it.
  c = await ProcCluster.create({ managers: 3, workers: 1, workerRuntime: 'process', extra: { tasks: { reconcileIntervalMs: 60_000 } } });
  // The nodes inherit the test's environment.
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = endpoint;
  process.env.OTEL_BSP_SCHEDULE_DELAY = '200';
  try {
    c.startAll();
  } finally {
    for (const [k, v] of [['OTEL_EXPORTER_OTLP_ENDPOINT', saved.endpoint], ['OTEL_BSP_SCHEDULE_DELAY', saved.delay]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  leader = await c.waitForLeader({ timeoutMs: 150_000 });
  await eventually(async () => ((await c.http(leader, 'GET', '/v1/workers')).body?.items?.[0]?.state === 'ready' ? true : undefined), 30_000, 'the worker ready');
}, 240_000);

afterAll(async () => {
  await c?.cleanup();
  receiver?.server.close();
});

function logLines(id: string): Record<string, unknown>[] {
  return readFileSync(join(c.dir, `${id}.log`), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('tracing across processes (OTLP/HTTP JSON)', () => {
  it('one trace from submission to running, with spans from the managers and the worker', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const clientSpanId = '00f067aa0ba902b7';
    const follower = c.managerIds.find((id) => id !== leader)!;
    // Through a follower: the proposal crosses Raft to the leader and back, with its trace context.
    const res = await undiciFetch(`${c.url(follower)}/v1/tasks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-${clientSpanId}-01` },
      body: JSON.stringify({ image: 'local', command: ['sh', '-c', 'echo "tp=$TRACEPARENT"; sleep 60'] }),
    });
    expect(res.status).toBe(201);
    const task = (await res.json()) as { id: string };
    await eventually(async () => ((await c.http(leader, 'GET', `/v1/tasks/${task.id}`)).body?.state === 'running' ? true : undefined), 30_000, 'the task running');

    const want = ['POST /v1/tasks@minkube-manager', 'raft.apply task.submit@minkube-manager', 'task.assign@minkube-manager', 'POST /v1/tasks@minkube-worker', 'container.start@minkube-worker', 'task.running@minkube-manager'];
    let seen = '';
    const spans = await eventually(async () => {
      const mine = receiver.spans.filter((s) => s.traceId === traceId);
      const names = new Set(mine.map((s) => `${s.name}@${s.service}`));
      const appliedOn = new Set(mine.filter((s) => s.name === 'raft.apply task.submit').map((s) => s.node));
      // A parent span ends (and is exported) after its children: wait for the parents of the worker's spans too,
      // or a second push's request can be here while the first one's, which started the container, is not yet.
      const ids = new Set(mine.map((s) => s.spanId));
      const orphans = mine.filter((s) => (s.name === 'container.start' || (s.name === 'POST /v1/tasks' && s.service === 'minkube-worker')) && !ids.has(s.parentSpanId));
      seen = `missing [${want.filter((w) => !names.has(w)).join(', ')}], applied on [${[...appliedOn].join(', ')}], ${orphans.length} worker span(s) without their parent [${orphans.map((o) => `${o.name}@${o.node} ${o.spanId} under ${o.parentSpanId}`).join(', ')}], spans: ${mine.map((m) => `${m.name}@${m.node} ${m.spanId}<${m.parentSpanId}`).join('; ')}`;
      return want.every((w) => names.has(w)) && appliedOn.size === 3 && orphans.length === 0 ? mine : undefined;
    }, 30_000, 'every span of the trace at the receiver').catch((err: unknown) => {
      throw new Error(`${(err as Error).message}: ${seen}`);
    });

    // Every manager applied the proposal under the follower's request span; the leader assigned under it too.
    const request = spans.find((s) => s.name === 'POST /v1/tasks' && s.service === 'minkube-manager')!;
    expect(request).toMatchObject({ node: follower, parentSpanId: clientSpanId });
    for (const apply of spans.filter((s) => s.name === 'raft.apply task.submit')) expect(apply.parentSpanId).toBe(request.spanId);
    // Under load the leader may push the assignment more than once (a push that timed out is sent again): each push
    // is the request's child, each worker request a push's child, and the container start one request's child.
    // A push comes from whichever manager leads then: CI once saw the leadership move under load, and the new
    // leader's push (under the same request span) was the one that started the task.
    const assigns = spans.filter((s) => s.name === 'task.assign');
    for (const assign of assigns) {
      expect(c.managerIds).toContain(assign.node);
      expect(assign).toMatchObject({ parentSpanId: request.spanId, attributes: { 'minkube.task': task.id } });
    }
    const workerRequests = spans.filter((s) => s.name === 'POST /v1/tasks' && s.service === 'minkube-worker');
    for (const r of workerRequests) {
      expect(r.node).toBe('w1');
      expect(assigns.map((a) => a.spanId)).toContain(r.parentSpanId);
    }
    const start = spans.find((s) => s.name === 'container.start')!;
    expect(start).toMatchObject({ node: 'w1', attributes: { 'minkube.task': task.id } });
    expect(workerRequests.map((r) => r.spanId)).toContain(start.parentSpanId);
    expect(spans.filter((s) => s.name === 'task.running').every((s) => s.parentSpanId === request.spanId)).toBe(true);

    // The container got the start span's context in its environment.
    const logs = await eventually(async () => {
      const r = await c.http(leader, 'GET', `/v1/tasks/${task.id}/logs`);
      return typeof r.body === 'string' && r.body.includes('tp=') ? r.body : undefined;
    }, 15_000, 'the task output');
    expect(logs).toContain(`tp=00-${traceId}-${start.spanId}-01`);

    // And the logs carry the trace id: the worker's start, each manager's view of it running.
    expect(logLines('w1').find((l) => l.msg === 'task started' && l.task === task.id)).toMatchObject({ traceId });
    for (const id of c.managerIds) {
      await eventually(async () => (logLines(id).some((l) => l.msg === 'traced task running' && l.traceId === traceId) ? true : undefined), 10_000, `${id}'s log line`);
    }
  });

  it('an untraced request starts a trace of its own when spans are exported', async () => {
    const r = await c.http(leader, 'PUT', '/v1/kv/untraced', { value: 'x' });
    expect(r.status).toBe(200);
    await eventually(async () => (receiver.spans.some((s) => s.name === 'PUT /v1/kv/*' && s.parentSpanId === '') ? true : undefined), 15_000, 'a root span for the put');
    // GET /v1/cluster, polled several times a second (the harness's own leader wait did), starts none.
    expect((await c.http(leader, 'GET', '/v1/cluster')).status).toBe(200);
    expect(receiver.spans.filter((s) => s.name === 'GET /v1/cluster' && s.parentSpanId === '')).toEqual([]);
    // Nor does a worker's heartbeat or assignment fetch (each about once a second since the worker started).
    const polls = receiver.spans.filter((s) => s.name === 'POST /v1/workers/:id/heartbeat' || s.name === 'GET /v1/workers/:id/assignments');
    expect(polls.filter((s) => s.parentSpanId === '')).toEqual([]);
  });
});
