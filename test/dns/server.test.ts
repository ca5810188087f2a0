// The DNS socket server with real resolvers (dig, Node's dns.promises.Resolver) over UDP and TCP, on a fake view.
import { Resolver } from 'node:dns/promises';
import { connect } from 'node:net';
import dnsPacket from 'dns-packet';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DnsServer } from '../../src/manager/dns/server.js';
import { freePort, waitFor } from '../support/wait.js';
import { dig, digStatus, itDig, lines } from './dig.js';
import { sampleView, task } from './fake-view.js';

const host = '127.0.0.1';
let port: number;
let server: DnsServer;
const view = sampleView();
const many = Array.from({ length: 40 }, (_, i) => task(`t${String(i).padStart(3, '0')}abcdefghijkl`, `10.0.0.${i}`, { http: 20000 + i }));
view.data.services!.big = { ports: ['http'], healthy: many };
view.data.tasks!.push(...many);

beforeAll(async () => {
  port = await freePort(host);
  server = await DnsServer.start({ host, port, view, logger: pino({ level: 'silent' }), tcpConnectionsMax: 4, tcpIdleMs: 2000 });
});

afterAll(async () => {
  await server.close();
});

function resolver(): Resolver {
  const r = new Resolver({ timeout: 2000, tries: 2 });
  r.setServers([`${host}:${port}`]);
  return r;
}

describe('dns server with dig', () => {
  itDig('A, SRV and the targets over UDP', async () => {
    expect(lines(await dig(host, port, ['+short', 'web.service.minkube', 'A']))).toEqual(['127.0.0.1', '127.0.0.2']);
    expect(lines(await dig(host, port, ['+short', '_http._tcp.web.service.minkube', 'SRV']))).toEqual([
      '0 1 20001 ta.task.minkube.',
      '0 1 20002 tb.task.minkube.',
      '0 1 20003 tc.task.minkube.',
    ]);
    expect(lines(await dig(host, port, ['+short', 'tc.task.minkube', 'A']))).toEqual(['127.0.0.1']);
    expect(lines(await dig(host, port, ['+short', 'leader.minkube']))).toEqual(['127.0.0.2']);
    expect(lines(await dig(host, port, ['+short', '_api._tcp.minkube', 'SRV']))).toHaveLength(3);
  });

  itDig('NXDOMAIN, NODATA with the SOA, REFUSED, and TTLs of at most 5 s', async () => {
    const nx = await dig(host, port, ['nope.service.minkube', 'A']);
    expect(digStatus(nx)).toBe('NXDOMAIN');
    expect(nx).toMatch(/AUTHORITY SECTION:\nminkube\.\s+5\s+IN\s+SOA/);
    const nodata = await dig(host, port, ['web.service.minkube', 'TXT']);
    expect(digStatus(nodata)).toBe('NOERROR');
    expect(nodata).toMatch(/ANSWER: 0,/);
    expect(nodata).toMatch(/IN\s+SOA/);
    expect(digStatus(await dig(host, port, ['example.com', 'A']))).toBe('REFUSED');
    const full = await dig(host, port, ['+noall', '+answer', 'web.service.minkube', 'A']);
    for (const l of lines(full)) expect(Number(l.split(/\s+/)[1])).toBeLessThanOrEqual(5);
  });

  itDig('a large answer is truncated over UDP and dig retries over TCP by itself; +tcp answers it too', async () => {
    const udpOnly = await dig(host, port, ['+ignore', '+noedns', '_http._tcp.big.service.minkube', 'SRV']);
    expect(udpOnly).toMatch(/flags:[^;]*\btc\b/);
    expect(lines(await dig(host, port, ['+short', '+noedns', '_http._tcp.big.service.minkube', 'SRV']))).toHaveLength(40);
    expect(lines(await dig(host, port, ['+short', '+tcp', 'web.service.minkube', 'A']))).toEqual(['127.0.0.1', '127.0.0.2']);
  });
});

describe('dns server with node:dns', () => {
  it('resolve4, resolveSrv, and ENOTFOUND / ENODATA / refused codes', async () => {
    const r = resolver();
    expect((await r.resolve4('web.service.minkube')).sort()).toEqual(['127.0.0.1', '127.0.0.2']);
    const srv = await r.resolveSrv('_http._tcp.web.service.minkube');
    expect(srv.map((s) => [s.name, s.port]).sort()).toEqual([['ta.task.minkube', 20001], ['tb.task.minkube', 20002], ['tc.task.minkube', 20003]]);
    for (const s of srv) expect((await r.resolve4(s.name)).length).toBe(1);
    const ttls = await r.resolve4('leader.minkube', { ttl: true });
    expect(ttls).toEqual([{ address: '127.0.0.2', ttl: 5 }]);
    await expect(r.resolve4('nope.service.minkube')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    await expect(r.resolveTxt('web.service.minkube')).rejects.toMatchObject({ code: 'ENODATA' });
    await expect(r.resolve4('example.com')).rejects.toMatchObject({ code: 'EREFUSED' });
  });

  it('follows a change of the view (a replica gone) on the next query', async () => {
    const r = resolver();
    const web = view.data.services!.web!;
    const before = web.healthy!;
    web.healthy = before.filter((t) => t.id !== 'tb');
    try {
      expect((await r.resolveSrv('_http._tcp.web.service.minkube')).map((s) => s.port).sort()).toEqual([20001, 20003]);
    } finally {
      web.healthy = before;
    }
  });

  it('a truncated UDP answer is fetched again over TCP by the resolver', async () => {
    expect(await resolver().resolveSrv('_http._tcp.big.service.minkube')).toHaveLength(40);
  });
});

describe('dns server bounds', () => {
  it('holds at most tcpConnectionsMax TCP connections and still answers over UDP', async () => {
    const sockets = await Promise.all(Array.from({ length: 4 }, () => open()));
    const extra = await open();
    await waitFor('the fifth connection to be closed', () => extra.destroyed || extra.readyState === 'closed', 10_000);
    expect((await resolver().resolve4('leader.minkube'))).toEqual(['127.0.0.2']);
    for (const s of sockets) s.destroy();
    // Else the next test's connection is refused as the fifth, not closed for being idle.
    await waitFor('the server to see the connections closed', () => server.tcpStats().open === 0, 10_000);
  });

  it('closes an idle TCP connection', async () => {
    const s = await open();
    await waitFor('the idle connection to be closed', () => s.destroyed || s.readyState === 'closed', 15_000);
  });

  it('answers several framed queries on one TCP connection and drops a message over the size limit', async () => {
    const s = await open();
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    const q = (id: number): Buffer => dnsPacket.streamEncode({ type: 'query', id, questions: [{ type: 'A', name: 'leader.minkube' }] });
    s.write(Buffer.concat([q(1), q(2)]));
    await waitFor('two answers', () => Buffer.concat(got).length > 40 && decodeAll(Buffer.concat(got)).length === 2, 10_000);
    expect(decodeAll(Buffer.concat(got)).map((p) => p.id)).toEqual([1, 2]);
    const big = Buffer.alloc(2);
    big.writeUInt16BE(60_000, 0);
    s.write(big);
    await waitFor('the connection to be closed', () => s.destroyed || s.readyState === 'closed', 10_000);
  });
});

function open(): Promise<ReturnType<typeof connect>> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port }, () => resolve(s));
    s.on('error', () => s.destroy());
    s.once('error', reject);
  });
}

function decodeAll(buf: Buffer): dnsPacket.DecodedPacket[] {
  const out: dnsPacket.DecodedPacket[] = [];
  let off = 0;
  while (off + 2 <= buf.length) {
    const len = buf.readUInt16BE(off);
    if (off + 2 + len > buf.length) break;
    out.push(dnsPacket.decode(buf.subarray(off + 2, off + 2 + len)));
    off += 2 + len;
  }
  return out;
}

