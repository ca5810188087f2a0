// The fault-injecting proxy: passes bytes both ways, refuses or holds new connections, destroys or freezes open ones
// (and delivers everything held, in order, after the heal), delays; ChaosNetwork cuts both directions of a link.
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ChaosNetwork, FaultProxy, passMode } from './proxy.js';
import { waitFor } from '../support/wait.js';

/** An upper-casing echo server: what comes back proves the bytes went through both directions. */
async function echoServer(): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => {
    s.on('data', (chunk: Buffer) => s.write(chunk.toString().toUpperCase()));
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  return { server, port: typeof a === 'object' && a !== null ? a.port : 0 };
}

/** A client that collects what it receives and whether it was closed. */
async function client(port: number): Promise<{ socket: Socket; received: () => string; closed: () => boolean }> {
  const socket = connect({ host: '127.0.0.1', port });
  let data = '';
  let closed = false;
  socket.on('data', (c: Buffer) => (data += c.toString()));
  socket.on('error', () => undefined);
  socket.on('close', () => (closed = true));
  await new Promise<void>((r, j) => {
    socket.once('connect', r);
    socket.once('error', j);
  });
  return { socket, received: () => data, closed: () => closed };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(): Promise<FaultProxy> {
  const { server, port } = await echoServer();
  const proxy = await FaultProxy.start({ target: { host: '127.0.0.1', port } });
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  cleanups.push(() => proxy.close());
  return proxy;
}

/**
 * Sends a byte through another proxy that passes, and waits for its echo: the time a held byte would have needed to
 * come back, shown by an event rather than guessed with a fixed sleep.
 */
async function passedMeanwhile(): Promise<void> {
  const witness = await setup();
  const w = await client(witness.port);
  cleanups.push(() => void w.socket.destroy());
  w.socket.write('w');
  await waitFor('the echo through a passing proxy', () => w.received() === 'W');
}

describe('FaultProxy', () => {
  it('passes bytes both ways', async () => {
    const proxy = await setup();
    const c = await client(proxy.port);
    cleanups.push(() => void c.socket.destroy());
    c.socket.write('hello');
    await waitFor('the echo', () => c.received() === 'HELLO');
    expect(proxy.counters.accepted).toBe(1);
  });

  it('drop with refuse: new connections are closed at once, and nothing reaches the target', async () => {
    const proxy = await setup();
    proxy.setMode({ kind: 'drop', existing: 'destroy', incoming: 'refuse' });
    const c = await client(proxy.port);
    c.socket.write('x');
    await waitFor('the refusal', () => c.closed());
    expect(c.received()).toBe('');
    expect(proxy.counters.refused).toBe(1);
  });

  it('drop with destroy: open connections are reset', async () => {
    const proxy = await setup();
    const c = await client(proxy.port);
    c.socket.write('a');
    await waitFor('the echo', () => c.received() === 'A');
    proxy.setMode({ kind: 'drop', existing: 'destroy', incoming: 'refuse' });
    await waitFor('the reset', () => c.closed());
    expect(proxy.connections).toBe(0);
  });

  it('drop with hold: nothing crosses while cut, and everything arrives in order after the heal', async () => {
    const proxy = await setup();
    const c = await client(proxy.port);
    cleanups.push(() => void c.socket.destroy());
    c.socket.write('a');
    await waitFor('the echo', () => c.received() === 'A');
    proxy.setMode({ kind: 'drop', existing: 'hold', incoming: 'hold' });
    for (const part of ['b', 'c', 'd']) c.socket.write(part);
    await passedMeanwhile();
    expect(c.received()).toBe('A');
    expect(c.closed()).toBe(false);
    proxy.setMode(passMode);
    await waitFor('the held bytes', () => c.received() === 'ABCD');
  });

  it('drop with hold: a new connection is accepted but silent until the heal', async () => {
    const proxy = await setup();
    proxy.setMode({ kind: 'drop', existing: 'hold', incoming: 'hold' });
    const c = await client(proxy.port);
    cleanups.push(() => void c.socket.destroy());
    c.socket.write('early');
    await passedMeanwhile();
    expect(c.received()).toBe('');
    expect(c.closed()).toBe(false);
    proxy.setMode(passMode);
    await waitFor('the held connection to open', () => c.received() === 'EARLY');
  });

  it('delay: bytes arrive late and in order', async () => {
    const proxy = await setup();
    proxy.setMode({ kind: 'delay', delayMs: 150, jitterMs: 50 });
    const c = await client(proxy.port);
    cleanups.push(() => void c.socket.destroy());
    const t0 = performance.now();
    for (const part of ['x', 'y', 'z']) c.socket.write(part);
    await waitFor('the delayed echo', () => c.received() === 'XYZ');
    // Both directions are delayed: at least two delays (timers may fire a millisecond early).
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
  });

  it('a target that is down closes the client connection', async () => {
    const { server, port } = await echoServer();
    await new Promise<void>((r) => server.close(() => r()));
    const proxy = await FaultProxy.start({ target: { host: '127.0.0.1', port } });
    cleanups.push(() => proxy.close());
    const c = await client(proxy.port);
    await waitFor('the close', () => c.closed());
  });
});

describe('ChaosNetwork', () => {
  it('cuts both directions between two nodes and leaves the other links alone; heal restores them', async () => {
    const net = new ChaosNetwork();
    const proxies = new Map<string, FaultProxy>();
    for (const [from, to] of [['a', 'b'], ['b', 'a'], ['a', 'c'], ['c', 'a'], ['b', 'c'], ['c', 'b']] as const) {
      const p = await setup();
      net.add(from, to, p);
      proxies.set(`${from}->${to}`, p);
    }
    net.partition([['a'], ['b', 'c']], { kind: 'drop', existing: 'destroy', incoming: 'refuse' });
    expect(net.cutLinks()).toEqual(['a->b', 'a->c', 'b->a', 'c->a']);
    expect(proxies.get('b->c')!.mode.kind).toBe('pass');
    const refused = await client(proxies.get('c->a')!.port);
    await waitFor('the refusal', () => refused.closed());
    net.heal();
    expect(net.cutLinks()).toEqual([]);
    const c = await client(proxies.get('c->a')!.port);
    cleanups.push(() => void c.socket.destroy());
    c.socket.write('ok');
    await waitFor('the healed link', () => c.received() === 'OK');
  });
});
