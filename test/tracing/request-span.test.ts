// The request span of the tracing plugin, with an in-process SDK: it ends with the answer, and it ends too when the
// caller closes the connection before the answer (a leader's push that timed out): a span never ended is never
// exported, and what ran under it would reach the collector without its parent.
import { trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import Fastify from 'fastify';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tracingPlugin } from '../../src/api/tracing.js';
import { eventually, sleep } from '../support/wait.js';

const exporter = new InMemorySpanExporter();
const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const app = Fastify();
let base = '';
/** Answers fastify has sent, or tried to send to a closed connection (onSend, the last hook that runs then). */
let answered = 0;

beforeAll(async () => {
  trace.setGlobalTracerProvider(provider);
  await app.register(tracingPlugin);
  app.addHook('onSend', (_req, _reply, payload, done) => {
    answered += 1;
    done(null, payload);
  });
  app.post('/slow', async () => {
    await sleep(300);
    return { ok: true };
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await app.close();
  await provider.shutdown();
  trace.disable();
});

const post = (signal: AbortSignal | null = null) =>
  fetch(`${base}/slow`, { method: 'POST', headers: { 'content-type': 'application/json', traceparent: tp }, body: '{}', signal });

describe('the request span', () => {
  it('ends with the answer, under the caller\'s context, with its status', async () => {
    exporter.reset();
    expect((await post()).status).toBe(200);
    const spans = await eventually(async () => (exporter.getFinishedSpans().length === 1 ? exporter.getFinishedSpans() : undefined), 5000, 'the span');
    expect(spans[0]).toMatchObject({ name: 'POST /slow', parentSpanContext: { spanId: '00f067aa0ba902b7' }, attributes: { 'http.response.status_code': 200 } });
    expect(spans[0]!.status.code).toBe(0);
  });

  it('ends, marked as an error, when the caller closes the connection before the answer', async () => {
    exporter.reset();
    const before = answered;
    await expect(post(AbortSignal.timeout(50))).rejects.toThrow();
    const spans = await eventually(async () => (exporter.getFinishedSpans().length === 1 ? exporter.getFinishedSpans() : undefined), 5000, 'the span');
    expect(spans[0]).toMatchObject({ name: 'POST /slow', status: { code: 2, message: 'the caller closed the connection before the answer' } });
    // The handler still finishes and fastify hands its answer to the closed connection; one turn of the event loop
    // later (when an answer's onResponse, which ends its span, would run), the span has not been ended a second time.
    await eventually(async () => (answered > before ? true : undefined), 5000, 'the handler\'s answer');
    await new Promise((r) => setImmediate(r));
    expect(exporter.getFinishedSpans()).toHaveLength(1);
  });
});
