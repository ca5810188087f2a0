// The side thread (src/api/side-thread.ts) on a real worker thread, with a small app in plain JavaScript: answers
// relayed whole, a thread that cannot make its app or dies fails what waited and the next request starts another,
// an idle thread ends, and the queue is bounded. relay.ts's sideApp runs a built module's app there (a .ts one in
// process: the tests of the OpenAPI document and the dashboard run that way).
import { afterEach, describe, expect, it } from 'vitest';
import Fastify from 'fastify';
import { SideThread } from '../../src/api/side-thread.js';
import { relayTo, sideApp } from '../../src/api/relay.js';
import { waitFor } from '../support/wait.js';

const fixture = new URL('./fixtures/side-app.mjs', import.meta.url).href;
const threads: SideThread<unknown>[] = [];
afterEach(async () => {
  await Promise.all(threads.splice(0).map((t) => t.close()));
});

function thread(data: unknown, o: ConstructorParameters<typeof SideThread>[1] = {}): SideThread<unknown> {
  const t = new SideThread({ module: fixture, exportName: 'build', data: () => data }, o);
  threads.push(t);
  return t;
}

const get = (url: string, headers: Record<string, string> = {}) => ({ method: 'GET', url, headers });
const json = (body: Uint8Array): unknown => JSON.parse(Buffer.from(body).toString('utf8'));

describe('SideThread', () => {
  it('answers with the app on the thread: status, headers and body; its data crossed as a clone', async () => {
    const t = thread({ routes: [{ url: '/a', schema: { type: 'object' } }] });
    const res = await t.answer(get('/echo', { 'x-test': 'yes' }));
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(json(res.body)).toEqual({ data: { routes: [{ url: '/a', schema: { type: 'object' } }] }, header: 'yes' });
    const moved = await t.answer(get('/moved'));
    expect([moved.status, moved.headers.location, moved.body.length]).toEqual([302, '/echo', 0]);
    expect((await t.answer(get('/nothing'))).status).toBe(404);
    expect(t.started).toBe(1);
  });

  it('an app that cannot be made fails each request with its first line, and the next request tries again', async () => {
    const t = thread({ fail: true });
    await expect(t.answer(get('/echo'))).rejects.toMatchObject({ code: 'INTERNAL', message: 'this part of the API failed: cannot make it' });
    await expect(t.answer(get('/echo'))).rejects.toMatchObject({ code: 'INTERNAL' });
    expect(t.started).toBe(2);
  });

  it('a thread that dies fails what waited on it; the next request starts another', async () => {
    const t = thread({});
    const waiting = t.answer(get('/slow'));
    await expect(t.answer(get('/exit'))).rejects.toMatchObject({ code: 'INTERNAL', message: 'this part of the API ended (exit code 3)' });
    await expect(waiting).rejects.toMatchObject({ code: 'INTERNAL' });
    expect((await t.answer(get('/echo'))).status).toBe(200);
    expect(t.started).toBe(2);
  });

  it('an idle thread ends, and the next request starts another', async () => {
    const t = thread({}, { idleMs: 50 });
    expect((await t.answer(get('/echo'))).status).toBe(200);
    expect(t.running).toBe(true);
    await waitFor('the idle thread to end', () => !t.running, 5000);
    expect((await t.answer(get('/echo'))).status).toBe(200);
    expect(t.started).toBe(2);
  });

  it('bounds what waits on it (429 QUEUE_FULL), and a request not answered in time is 503 NOT_READY', async () => {
    const t = thread({}, { pendingMax: 2, answerMsMax: 100 });
    const first = [t.answer(get('/slow')), t.answer(get('/slow'))];
    await expect(t.answer(get('/echo'))).rejects.toMatchObject({ code: 'QUEUE_FULL' });
    for (const p of first) await expect(p).rejects.toMatchObject({ code: 'NOT_READY' });
  });

  it('after close, a request is 503 NOT_READY and no thread starts', async () => {
    const t = thread({});
    await t.close();
    await expect(t.answer(get('/echo'))).rejects.toMatchObject({ code: 'NOT_READY' });
    expect(t.started).toBe(0);
  });
});

describe('relayTo(sideApp(...))', () => {
  it('a built module runs on a thread: the route answers what its app answers, HEAD as the GET', async () => {
    const app = Fastify();
    const side = sideApp(app, { module: new URL(fixture), exportName: 'build', data: () => ({ n: 1 }) });
    app.get('/echo', relayTo(side));
    try {
      const res = await app.inject({ method: 'GET', url: '/echo', headers: { 'x-test': 'h' } });
      expect(res.json()).toEqual({ data: { n: 1 }, header: 'h' });
      const head = await app.inject({ method: 'HEAD', url: '/echo' });
      expect([head.statusCode, head.body]).toEqual([200, '']);
    } finally {
      await app.close();
    }
  });
});
