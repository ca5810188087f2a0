// The TCP transport passes the shared Transport suite on loopback, and a bad peer (garbage, truncated, oversized or
// invalid frames, a frame before hello) loses only its own connection while the node keeps talking to real peers.
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MinkubeError } from '../../src/lib/errors.js';
import { limits } from '../../src/lib/limits.js';
import { nodeId, type NodeId } from '../../src/lib/ids.js';
import type { Message } from '../../src/raft/types.js';
import { FrameDecoder, WIRE_VERSION, decodePayload, encodeFrame } from '../../src/transport/codec.js';
import { TcpTransport } from '../../src/transport/tcp.js';
import { collect, heartbeat, runTransportConformance } from './conformance.js';
import { waitFor } from '../support/wait.js';
import { freePorts, memoryLogger, startTcpCluster, type TcpCluster } from './tcp-cluster.js';

runTransportConformance('tcp', (n) => startTcpCluster(n));

/** Opens a raw socket to `address`, writes `bytes`, and resolves when the node closes it (or rejects after 2 s). */
function rawExchange(address: string, chunks: readonly Buffer[], opts: { end?: boolean } = {}): Promise<void> {
  const [host, port] = address.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port: Number(port) }, () => {
      for (const c of chunks) socket.write(c);
      if (opts.end === true) socket.end();
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('the node did not close the connection'));
    }, 2000);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

const lengthPrefix = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
};

describe('TcpTransport against a bad peer', () => {
  let c: TcpCluster;
  const phantom = nodeId('n0');

  afterEach(async () => {
    await c.close();
  });

  /** Node 3 knows a phantom peer n0 (which would dial it), so a test can say hello as n0 without disturbing n1 and n2. */
  const setup = async (): Promise<TcpCluster> => (c = await startTcpCluster(3, { extraPeers: (i) => new Map(i === 2 ? [[phantom, '127.0.0.1:1']] : []) }));
  const hello = (from: NodeId, to: NodeId): Buffer => encodeFrame({ v: WIRE_VERSION, kind: 'hello', from, to });
  const raft = (messages: readonly unknown[]): Buffer => encodeFrame({ v: WIRE_VERSION, kind: 'raft', messages: messages as Message[] });

  /** The node closed only the bad connection: it logged why, and still talks to its real peers both ways. */
  async function expectOnlyThatConnectionClosed(reason: RegExp): Promise<void> {
    const [n1, , n3] = c.transports;
    // At warn, or at debug after an earlier bad frame's warning (one a minute).
    await waitFor('the warning', () => c.logs[2]!.some((l) => (l.level === 40 || l.level === 20) && reason.test(String(l.reason))));
    const warning = c.logs[2]!.find((l) => (l.level === 40 || l.level === 20) && reason.test(String(l.reason)))!;
    expect(warning).toHaveProperty('peer');
    expect(n3!.counters.frameErrors).toBeGreaterThanOrEqual(1);
    const [box1, box3] = [collect(n1!), collect(n3!)];
    n1!.send([heartbeat(c.ids[0]!, c.ids[2]!, 'still here')]);
    n3!.send([heartbeat(c.ids[2]!, c.ids[0]!, 'me too')]);
    await waitFor('real peers to exchange messages', () => box1.length === 1 && box3.length === 1);
  }

  it('closes a connection that sends garbage', async () => {
    await setup();
    await rawExchange(c.addresses[2]!, [Buffer.concat([lengthPrefix(5), Buffer.from([0xc1, 0xc1, 0xc1, 0xc1, 0xc1])])]);
    await expectOnlyThatConnectionClosed(/undecodable/);
  });

  it('closes a connection that declares an oversized frame, without waiting for its body', async () => {
    await setup();
    await rawExchange(c.addresses[2]!, [lengthPrefix(0xffffffff)]);
    await expectOnlyThatConnectionClosed(/over the limit/);
  });

  it('closes a connection whose first frame declares more than a hello needs (peerHelloBytesMax), without waiting for its body', async () => {
    await setup();
    await rawExchange(c.addresses[2]!, [lengthPrefix(limits.peerHelloBytesMax + 1)]);
    await expectOnlyThatConnectionClosed(new RegExp(`first frame declares ${limits.peerHelloBytesMax + 1} bytes, over the limit of ${limits.peerHelloBytesMax}$`));
    expect(c.transports[2]!.counters.bytesReceived).toBeLessThan(limits.peerHelloBytesMax);
  });

  it('logs bad frames at warn once a minute at most, the rest at debug, the warning counting them (anyone reaching the port may send them)', async () => {
    await setup();
    for (let i = 0; i < 5; i++) await rawExchange(c.addresses[2]!, [lengthPrefix(0xffffffff)]);
    await waitFor('five bad frames', () => c.transports[2]!.counters.frameErrors >= 5);
    const lines = c.logs[2]!.filter((l) => l.msg === 'closing a peer connection after a bad frame');
    expect(lines.filter((l) => l.level === 40)).toEqual([expect.objectContaining({ badFramesSinceWarning: 1 })]);
    expect(lines.filter((l) => l.level === 20)).toHaveLength(4);
  });

  it('takes a hello and, in the same write, a frame far larger than a hello: the hello bound is for the first frame only', async () => {
    await setup();
    const box = collect(c.transports[2]!);
    const [host, port] = c.addresses[2]!.split(':') as [string, string];
    const socket = connect({ host, port: Number(port) });
    socket.on('error', () => undefined);
    const entry = new Uint8Array(2 * 1024 * 1024).fill(3);
    try {
      await new Promise((r) => socket.once('connect', r));
      socket.write(Buffer.concat([hello(phantom, c.ids[2]!), raft([{ type: 'propose', from: phantom, to: c.ids[2]!, term: 0, entries: [entry] }])]));
      await waitFor('the large frame', () => box.some((m) => m.from === phantom && m.type === 'propose' && m.entries[0]!.length === entry.length));
      expect(c.transports[2]!.counters.frameErrors).toBe(0);
    } finally {
      socket.destroy();
    }
  });

  it('logs a frame truncated by the end of the connection', async () => {
    await setup();
    await rawExchange(c.addresses[2]!, [Buffer.concat([lengthPrefix(100), Buffer.alloc(10)])], { end: true });
    await expectOnlyThatConnectionClosed(/middle of a frame/);
  });

  it('closes a connection whose first frame is not a hello', async () => {
    await setup();
    await rawExchange(c.addresses[2]!, [raft([heartbeat(phantom, c.ids[2]!, 'sneaky')])]);
    await expectOnlyThatConnectionClosed(/expected a hello first/);
  });

  it('closes a connection whose hello is meant for another, or comes from an unknown node that should wait to be dialed', async () => {
    await setup();
    // 'zz' sorts after n3, so n3 would dial it: an unknown larger id must knock (ask to be dialed), not say hello.
    await rawExchange(c.addresses[2]!, [hello(nodeId('zz'), c.ids[2]!)]);
    await rawExchange(c.addresses[2]!, [hello(phantom, c.ids[1]!)]);
    await expectOnlyThatConnectionClosed(/addressed to n2/);
    expect(c.logs[2]!.some((l) => /hello from zz: this node dials it/.test(String(l.reason)))).toBe(true);
  });

  it('answers a node it does not know over the connection that node opened, and forgets it when it closes', async () => {
    await setup();
    const box = collect(c.transports[2]!);
    const stranger = nodeId('a-new-member');
    const [host, port] = c.addresses[2]!.split(':') as [string, string];
    const socket = connect({ host, port: Number(port) });
    const decoder = new FrameDecoder(1 << 20);
    const frames: unknown[] = [];
    socket.on('data', (chunk: Buffer) => frames.push(...decoder.push(chunk).map(decodePayload)));
    socket.on('error', () => undefined);
    await new Promise((r) => socket.once('connect', r));
    socket.write(hello(stranger, c.ids[2]!));
    socket.write(raft([heartbeat(stranger, c.ids[2]!, 'from outside the configuration')]));
    await waitFor('the stranger heard', () => box.some((m) => m.from === stranger));
    c.transports[2]!.send([heartbeat(c.ids[2]!, stranger, 'the answer')]);
    await waitFor('the answer', () => frames.some((f) => JSON.stringify(f).includes('the answer')));
    expect(c.transports[2]!.reachable(stranger)).toBe(true);
    // setPeers (the driver's configuration) does not drop it while its connection lives; the close does.
    c.transports[2]!.setPeers(new Map([[c.ids[0]!, c.addresses[0]!], [c.ids[1]!, c.addresses[1]!]]));
    expect(c.transports[2]!.reachable(stranger)).toBe(true);
    socket.destroy();
    await waitFor('the stranger forgotten', () => !c.transports[2]!.peerStats().some((p) => p.id === stranger));
  });

  it.each([
    ['a negative term', { ...heartbeat(phantom, nodeId('n3'), 'x'), term: -1 }, /term: expected a non-negative safe integer/],
    ['an unknown type', { ...heartbeat(phantom, nodeId('n3'), 'x'), type: 'gossip' }, /unknown message type/],
    ['a forged sender', heartbeat(nodeId('n1'), nodeId('n3'), 'x'), /from n1 to n3 on the connection with n0/],
  ])('closes a connection that sends a valid frame with %s', async (_name, message, reason) => {
    await setup();
    const box = collect(c.transports[2]!);
    await rawExchange(c.addresses[2]!, [hello(phantom, c.ids[2]!), raft([heartbeat(phantom, c.ids[2]!, 'ok'), message])]);
    await expectOnlyThatConnectionClosed(reason);
    expect(box.filter((m) => m.from === phantom)).toEqual([]);
  });

  it('accepts the phantom peer when everything it sends is valid', async () => {
    await setup();
    const box = collect(c.transports[2]!);
    const [host, port] = c.addresses[2]!.split(':') as [string, string];
    const socket = connect({ host, port: Number(port) });
    socket.write(Buffer.concat([hello(phantom, c.ids[2]!), raft([heartbeat(phantom, c.ids[2]!, 'welcome')])]));
    await waitFor('delivery', () => box.length === 1);
    expect(c.transports[2]!.reachable(phantom)).toBe(true);
    socket.destroy();
    await waitFor('the phantom to be gone', () => !c.transports[2]!.reachable(phantom));
  });

  it('closes an accepted connection that never says hello', async () => {
    c = await startTcpCluster(2, { overrides: { helloTimeoutMs: 100 } });
    await rawExchange(c.addresses[1]!, []);
    expect(c.logs[1]!.some((l) => /no hello within 100 ms/.test(String(l.reason)))).toBe(true);
  });
});

describe('TcpTransport connections', () => {
  let c: TcpCluster | null = null;
  let extra: { close(): unknown }[] = [];

  afterEach(async () => {
    await c?.close();
    c = null;
    for (const x of extra) await x.close();
    extra = [];
  });

  async function exchange(cluster: TcpCluster, i: number, j: number, tag: string): Promise<void> {
    const [bi, bj] = [collect(cluster.transports[i]!), collect(cluster.transports[j]!)];
    cluster.transports[i]!.send([heartbeat(cluster.ids[i]!, cluster.ids[j]!, tag)]);
    cluster.transports[j]!.send([heartbeat(cluster.ids[j]!, cluster.ids[i]!, tag)]);
    await waitFor(`${tag}: both directions`, () => bi.length === 1 && bj.length === 1);
  }

  it('reconnects after the accepting peer restarts on the same port', async () => {
    c = await startTcpCluster(2);
    await exchange(c, 0, 1, 'before');
    await c.restart(1);
    // Messages sent while the old connection is dying are lost (Raft resends): wait for the new one.
    await waitFor('the dialer to reconnect', () => c!.transports[1]!.reachable(c!.ids[0]!));
    await exchange(c, 0, 1, 'after');
  });

  it('accepts the dialing peer again after it restarts, replacing the old connection', async () => {
    c = await startTcpCluster(2);
    await exchange(c, 0, 1, 'before');
    await c.restart(0);
    await waitFor('the new connection', () => c!.transports[1]!.counters.connectionsOpened === 2);
    await exchange(c, 0, 1, 'after');
  });

  it('dials from the node own address (localAddress), so nodes can be partitioned by address', async () => {
    const [port] = await freePorts(1);
    const accepted: Socket[] = [];
    const server: Server = createServer((s) => accepted.push(s));
    await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port }, r));
    extra.push({ close: () => new Promise((r) => { for (const s of accepted) s.destroy(); server.close(r); }) });
    const { logger } = memoryLogger('n1');
    const t = await TcpTransport.start({ id: nodeId('n1'), listen: '127.0.0.2:0', localAddress: '127.0.0.2', peers: new Map([[nodeId('n2'), `127.0.0.1:${port}`]]), logger });
    extra.push(t);
    expect(t.address).toMatch(/^127\.0\.0\.2:\d+$/);
    await waitFor('the dial', () => accepted.length === 1);
    expect(accepted[0]!.remoteAddress).toBe('127.0.0.2');
    expect(t.peerStats()[0]).toMatchObject({ id: 'n2', connected: true, localAddress: '127.0.0.2' });
    const decoder = new FrameDecoder(1024);
    const payloads: Buffer[] = [];
    accepted[0]!.on('data', (chunk: Buffer) => payloads.push(...decoder.push(chunk)));
    await waitFor('the hello', () => payloads.length === 1);
    expect(decodePayload(payloads[0]!)).toEqual({ v: 1, kind: 'hello', from: 'n1', to: 'n2', addr: t.address });
  });

  it('fails to start with the address in the message when the port is taken', async () => {
    c = await startTcpCluster(1);
    const { logger } = memoryLogger('dup');
    const err = await TcpTransport.start({ id: nodeId('dup'), listen: c.addresses[0]!, peers: new Map(), logger }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MinkubeError);
    expect(err).toMatchObject({ code: 'LISTEN_FAILED', message: `cannot listen on ${c.addresses[0]} (raftAddress): the address is in use (by another process, or another node of the same config)` });
  });

  it('rejects a malformed peer address', async () => {
    const { logger } = memoryLogger('bad');
    await expect(TcpTransport.start({ id: nodeId('a'), listen: '127.0.0.1:0', peers: new Map([[nodeId('b'), 'nowhere']]), logger })).rejects.toThrow(/bad address "nowhere"/);
  });

  it('coalesces everything sent in one tick into one frame', async () => {
    c = await startTcpCluster(2);
    await exchange(c, 0, 1, 'warm up');
    const box = collect(c.transports[1]!);
    const framesBefore = c.transports[0]!.counters.framesSent;
    for (let i = 0; i < 50; i++) c.transports[0]!.send([heartbeat(c.ids[0]!, c.ids[1]!, String(i))]);
    await waitFor('all 50', () => box.length === 50);
    expect(c.transports[0]!.counters.framesSent - framesBefore).toBe(1);
  });

  it('splits a batch over several frames when it exceeds the frame limit, and drops a message that cannot fit', async () => {
    c = await startTcpCluster(2, { overrides: { limits: { frameBytesMax: 64 * 1024 } } });
    await exchange(c, 0, 1, 'warm up');
    const box = collect(c.transports[1]!);
    const big = (i: number, bytes: number): Message => ({ type: 'propose', from: c!.ids[0]!, to: c!.ids[1]!, term: 0 as never, entries: [new Uint8Array(bytes).fill(i)] });
    c.transports[0]!.send([...Array.from({ length: 10 }, (_, i) => big(i, 20_000)), big(99, 100_000), big(10, 10)]);
    await waitFor('the ten that fit, and the small one', () => box.length === 11);
    expect(box.map((m) => (m.type === 'propose' ? m.entries[0]![0] : -1))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(c.transports[0]!.counters.messagesDropped).toBe(1);
    expect(c.transports[0]!.counters.framesSent).toBeGreaterThan(3);
  });

  it('queues a bounded number of messages while the peer is down, and delivers them once it is up', async () => {
    const [p1, p2] = await freePorts(2);
    const a1 = `127.0.0.1:${p1}`;
    const a2 = `127.0.0.1:${p2}`;
    const [n1, n2] = [nodeId('n1'), nodeId('n2')];
    const log1 = memoryLogger('n1');
    const t1 = await TcpTransport.start({ id: n1, listen: a1, peers: new Map([[n2, a2]]), logger: log1.logger, reconnectMaxMs: 100, limits: { peerSendQueueMessagesMax: 5, peerQueueStaleMs: 60_000 } });
    extra.push(t1);
    t1.send(Array.from({ length: 8 }, (_, i) => heartbeat(n1, n2, String(i))));
    expect(t1.counters.messagesDropped).toBe(3);
    await waitFor('two failed dials', () => log1.lines.filter((l) => l.msg.startsWith('cannot reach peer')).length >= 2, 3000);
    expect(t1.reachable(n2)).toBe(false);
    const t2 = await TcpTransport.start({ id: n2, listen: a2, peers: new Map([[n1, a1]]), logger: memoryLogger('n2').logger });
    extra.push(t2);
    const box = collect(t2);
    await waitFor('the queued five', () => box.length === 5, 3000);
    expect(box.map((m) => (m.type === 'heartbeat' ? m.context : ''))).toEqual(['0', '1', '2', '3', '4']);
  });

  it('drops what it queued while the peer was down once that is older than peerQueueStaleMs, and sends what comes after', async () => {
    const [p1, p2] = await freePorts(2);
    const a1 = `127.0.0.1:${p1}`;
    const a2 = `127.0.0.1:${p2}`;
    const [n1, n2] = [nodeId('n1'), nodeId('n2')];
    const t1 = await TcpTransport.start({ id: n1, listen: a1, peers: new Map([[n2, a2]]), logger: memoryLogger('n1').logger, reconnectMaxMs: 100, limits: { peerQueueStaleMs: 200 } });
    extra.push(t1);
    // A leader's heartbeats for a peer that is down: by the time it is up they may be from a term the leader left.
    t1.send([heartbeat(n1, n2, 'stale-1'), heartbeat(n1, n2, 'stale-2')]);
    await new Promise((resolve) => setTimeout(resolve, 400));
    const t2 = await TcpTransport.start({ id: n2, listen: a2, peers: new Map([[n1, a1]]), logger: memoryLogger('n2').logger });
    extra.push(t2);
    const box = collect(t2);
    await waitFor('n1 to reach n2', () => t1.reachable(n2), 5000);
    t1.send([heartbeat(n1, n2, 'fresh')]);
    await waitFor('the fresh heartbeat', () => box.length >= 1, 3000);
    expect(box.map((m) => (m.type === 'heartbeat' ? m.context : ''))).toEqual(['fresh']);
    expect(t1.counters.messagesDropped).toBe(2);
  });

  /**
   * A proxy in front of `target` that can freeze: the connections open at the freeze never pass another byte (though
   * they stay open, as both ends of a connection do through a partition that drops packets, until TCP's backed-off
   * resend), and while frozen new ones are closed at once. `thaw` lets new connections through again.
   */
  async function freezingProxy(target: string): Promise<{ address: string; freeze(): void; thaw(): void; close(): Promise<void> }> {
    const [host, port] = target.split(':') as [string, string];
    const sockets = new Set<Socket>();
    const frozen = new WeakSet<Socket>();
    let freezing = false;
    const server = createServer((client) => {
      sockets.add(client);
      client.on('error', () => undefined);
      if (freezing) return void client.destroy();
      const upstream = connect({ host, port: Number(port) });
      sockets.add(upstream);
      upstream.on('error', () => undefined);
      const pipe = (from: Socket, to: Socket): void => {
        from.on('data', (chunk: Buffer) => {
          if (!frozen.has(from)) to.write(chunk);
        });
        from.on('close', () => {
          if (!frozen.has(from)) to.destroy();
        });
      };
      pipe(client, upstream);
      pipe(upstream, client);
    });
    const [proxyPort] = await freePorts(1);
    await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: proxyPort }, r));
    return {
      address: `127.0.0.1:${proxyPort}`,
      freeze: () => {
        freezing = true;
        for (const s of sockets) frozen.add(s);
      },
      thaw: () => {
        freezing = false;
      },
      close: () => new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
    };
  }

  it('closes a connection its peer has gone silent on, and connects again once the peer can be reached (a healed partition)', async () => {
    const [p1, p2] = await freePorts(2);
    const a1 = `127.0.0.1:${p1}`;
    const a2 = `127.0.0.1:${p2}`;
    const [n1, n2] = [nodeId('n1'), nodeId('n2')];
    const proxy = await freezingProxy(a2);
    extra.push(proxy);
    const timing = { reconnectMaxMs: 100, silenceMsMax: 600, pingIntervalMs: 100 };
    const log1 = memoryLogger('n1');
    // n1 dials n2 through the proxy; n2 only waits to be dialed.
    const t1 = await TcpTransport.start({ id: n1, listen: a1, peers: new Map([[n2, proxy.address]]), logger: log1.logger, ...timing });
    const t2 = await TcpTransport.start({ id: n2, listen: a2, peers: new Map([[n1, a1]]), logger: memoryLogger('n2').logger, ...timing });
    extra.push(t1, t2);
    const [box1, box2] = [collect(t1), collect(t2)];
    await waitFor('connected', () => t1.reachable(n2) && t2.reachable(n1));
    t1.send([heartbeat(n1, n2, 'before')]);
    await waitFor('before', () => box2.length === 1);
    proxy.freeze();
    t1.send([heartbeat(n1, n2, 'lost')]);
    await waitFor('both ends to give the silent connection up', () => !t1.reachable(n2) && !t2.reachable(n1), 3000);
    expect(log1.lines.some((l) => l.msg.startsWith('peer silent'))).toBe(true);
    proxy.thaw();
    await waitFor('connected again', () => t1.reachable(n2) && t2.reachable(n1), 3000);
    t1.send([heartbeat(n1, n2, 'after')]);
    t2.send([heartbeat(n2, n1, 'back')]);
    await waitFor('after, both ways', () => box2.some((m) => m.type === 'heartbeat' && m.context === 'after') && box1.length === 1, 3000);
    expect(box2.map((m) => (m.type === 'heartbeat' ? m.context : ''))).toEqual(['before', 'after']);
  });

  it('keeps a quiet connection: each end pings the other, so silence means a lost peer, not an idle one', async () => {
    const cluster = (c = await startTcpCluster(2, { overrides: { silenceMsMax: 450, pingIntervalMs: 100 } }));
    const checksOf = (): number[] => cluster.transports.map((t) => t.livenessChecks);
    const checked = async (what: string, n: number): Promise<void> => {
      const before = checksOf();
      await waitFor(what, () => checksOf().every((k, i) => k >= before[i]! + n), 5000);
    };
    await exchange(cluster, 0, 1, 'first');
    const framesBefore = cluster.transports.map((t) => t.counters.framesSent);
    // Ten liveness checks on each end (at least a second: more than twice the silence allowed), nothing else sent.
    await checked('ten liveness checks on each end', 10);
    // Each end pinged the other (a ping goes once a connection carried nothing out for a check's interval).
    expect(cluster.transports.map((t, i) => t.counters.framesSent - framesBefore[i]! >= 3)).toEqual([true, true]);
    expect(cluster.transports.map((t) => t.counters.connectionsOpened)).toEqual([1, 1]);
    expect(cluster.logs.flat().filter((l) => l.msg.startsWith('peer silent'))).toEqual([]);
    // A stall of this process (a pause, a long collection) is not its peers' silence: what they sent is still unread.
    const until = performance.now() + 1000;
    while (performance.now() < until);
    // The first check after the stall runs late; the ones after it would close a connection counted silent.
    await checked('three liveness checks after the stall', 3);
    expect(cluster.transports.map((t) => t.counters.connectionsOpened)).toEqual([1, 1]);
    await exchange(c, 1, 0, 'second');
  });

  it('holds at most 64 connections from one address: more are closed at once, and a peer from another address still connects', async () => {
    c = await startTcpCluster(2, { overrides: { helloTimeoutMs: 5000 } });
    const listener = c.transports[1]!;
    const seen = listener.acceptCounts.connections;
    const [host, port] = c.addresses[1]!.split(':') as [string, string];
    const strangers: Socket[] = [];
    const closedAt: number[] = [];
    const opened = performance.now();
    for (let i = 0; i < 70; i++) {
      const s = connect({ host, port: Number(port), localAddress: '127.0.0.9' });
      s.on('error', () => undefined);
      s.once('close', () => closedAt.push(performance.now() - opened));
      strangers.push(s);
    }
    extra.push({ close: () => strangers.forEach((s) => s.destroy()) });
    // Once the listener has seen all 70, it has closed every one it will (the rest wait out a 5 s hello timeout).
    await waitFor('the listener to see all 70', () => listener.acceptCounts.connections >= seen + 70, 3000);
    // A reconnect of the real peer meanwhile is counted among the accepts too (CI once saw 5 here): wait for the six.
    await waitFor('six over the limit', () => listener.acceptCounts.overAddressMax >= 6, 3000);
    expect(listener.acceptCounts.overAddressMax).toBe(6);
    await waitFor('the six over the limit closed', () => closedAt.length >= 6, 3000);
    expect(closedAt.length).toBe(6);
    await exchange(c, 0, 1, 'still');
  });
});
