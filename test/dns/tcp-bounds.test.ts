// DNS over TCP against clients that misbehave: one that pipelines queries and never reads its answers (reading stops,
// unsent answers stay bounded, the connection is closed), one that trickles a query a byte at a time (closed when idle).
import { Resolver } from 'node:dns/promises';
import { connect, type Socket } from 'node:net';
import dnsPacket from 'dns-packet';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock, type Clock } from '../../src/lib/clock.js';
import { limits } from '../../src/lib/limits.js';
import { DnsServer, type DnsServerOptions } from '../../src/manager/dns/server.js';
import { ManualClock } from '../support/manual-clock.js';
import { freePortIn, sleep, waitFor } from '../support/wait.js';
import { sampleView } from './fake-view.js';

const host = '127.0.67.1';
let server: DnsServer | null = null;
let port = 0;
const sockets: Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await server?.close();
  server = null;
});

async function start(clock: Clock, o: Partial<DnsServerOptions> = {}): Promise<DnsServer> {
  port = await freePortIn(host, 20000, 29999);
  server = await DnsServer.start({ host, port, view: sampleView(), logger: pino({ level: 'silent' }), clock, ...o });
  return server;
}

function open(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port }, () => resolve(s));
    sockets.push(s);
    s.on('error', () => s.destroy());
    s.once('error', reject);
  });
}

const closed = (s: Socket): boolean => s.destroyed || s.readyState === 'closed';

function query(id: number, name = '_api._tcp.minkube', type: 'SRV' | 'A' = 'SRV'): Buffer {
  return dnsPacket.streamEncode({ type: 'query', id, questions: [{ type, name }] });
}

/** The ids of the complete answers in what a client has read. */
function answerIds(buf: Buffer): number[] {
  const ids: number[] = [];
  for (let off = 0; off + 2 <= buf.length; ) {
    const len = buf.readUInt16BE(off);
    if (off + 2 + len > buf.length) break;
    ids.push(buf.readUInt16BE(off + 2));
    off += 2 + len;
  }
  return ids;
}

/** Asks leader.minkube on a new TCP connection and waits for the answer. */
async function askOverTcp(id: number): Promise<void> {
  const s = await open();
  const got: Buffer[] = [];
  s.on('data', (d: Buffer) => got.push(d));
  s.write(query(id, 'leader.minkube', 'A'));
  await waitFor(`answer ${id} over tcp`, () => answerIds(Buffer.concat(got)).includes(id), 5000);
  s.destroy();
}

/** Writes pipelined queries as fast as the socket takes them, never reading, until `total` or the socket closes. */
async function flood(s: Socket, total: number): Promise<void> {
  const perWrite = 1000;
  for (let sent = 0; sent < total && !closed(s); sent += perWrite) {
    const batch = Buffer.concat(Array.from({ length: perWrite }, (_, i) => query((sent + i) & 0xffff)));
    if (!s.write(batch)) await new Promise<void>((resolve) => { s.once('drain', resolve); s.once('close', resolve); });
  }
}

describe('dns over tcp: a client that does not read its answers', () => {
  it('stops being read with its unsent answers bounded, is closed when they do not drain, and others are answered meanwhile', async () => {
    const clock = new ManualClock();
    const dns = await start(clock);
    const flooder = await open();
    flooder.pause();
    const flooding = flood(flooder, 200_000);
    await waitFor('the server to stop reading the flooder', () => dns.tcpStats().pauses >= 1, 20_000);
    expect(closed(flooder)).toBe(false);
    // Others are answered while the flooder's connection is held, over TCP and UDP.
    await askOverTcp(1);
    const r = new Resolver({ timeout: 2000, tries: 1 });
    r.setServers([`${host}:${port}`]);
    expect(await r.resolve4('leader.minkube')).toEqual(['127.0.0.2']);
    clock.advance(limits.dnsTcpDrainMs);
    await waitFor('the flooder to be closed', () => closed(flooder), 5000);
    await flooding;
    const stats = dns.tcpStats();
    expect(stats.closed.undrained).toBe(1);
    expect(stats.unsentBytesPeak).toBeGreaterThan(0);
    expect(stats.unsentBytesPeak).toBeLessThanOrEqual(limits.dnsTcpUnsentBytesMax);
    await askOverTcp(2);
  }, 40_000);

  it('a client that reads gets every answer of many pipelined queries, in order', async () => {
    await start(systemClock, { tcpQueriesPerTurnMax: 16 });
    const s = await open();
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    const count = 5000;
    s.write(Buffer.concat(Array.from({ length: count }, (_, i) => query(i))));
    const ids = await waitFor('every answer', () => {
      const seen = answerIds(Buffer.concat(got));
      return seen.length === count && seen;
    }, 15_000);
    expect(ids).toEqual(Array.from({ length: count }, (_, i) => i));
    expect(closed(s)).toBe(false);
  }, 40_000);
});

describe('dns over tcp: idle connections', () => {
  it('closes a connection trickling a query a byte at a time after the idle bound', async () => {
    const idleMs = 400;
    const dns = await start(systemClock, { tcpIdleMs: idleMs });
    const s = await open();
    const q = query(7);
    const startedMs = performance.now();
    for (let i = 0; i < q.length - 1 && !closed(s); i++) {
      s.write(q.subarray(i, i + 1));
      await sleep(idleMs / 4);
    }
    expect(closed(s)).toBe(true);
    expect(performance.now() - startedMs).toBeLessThan(idleMs * 3);
    expect(dns.tcpStats().closed.idle).toBe(1);
  }, 40_000);

  it('keeps a connection that sends a complete query within each idle bound, and closes it once it stops', async () => {
    const clock = new ManualClock();
    const dns = await start(clock);
    const s = await open();
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    for (let id = 1; id <= 5; id++) {
      s.write(query(id, 'leader.minkube', 'A'));
      await waitFor(`answer ${id}`, () => answerIds(Buffer.concat(got)).includes(id), 5000);
      clock.advance(limits.dnsTcpIdleMs / 2);
    }
    expect(closed(s)).toBe(false);
    clock.advance(limits.dnsTcpIdleMs / 2);
    await waitFor('the idle connection to be closed', () => closed(s), 5000);
    expect(dns.tcpStats().closed.idle).toBe(1);
  }, 40_000);
});
