// The pure DNS answer function: every name of the minkube. zone, NXDOMAIN / NODATA / REFUSED, TTLs, truncation.
import dnsPacket, { type DecodedPacket, type RecordType } from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { answer, dnsAnswersMax, dnsTtlS, encodeResponse, formatError, udpSizeLimit } from '../../src/manager/dns/answer.js';
import { compressNames } from '../../src/manager/dns/compress.js';
import { FakeView, sampleView, task } from './fake-view.js';

function query(name: string, type: string, o: { id?: number; klass?: string; udpSize?: number } = {}): DecodedPacket {
  const packet = dnsPacket.encode({
    type: 'query',
    id: o.id ?? 7,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type: type as RecordType, class: (o.klass ?? 'IN') as 'IN' }],
    ...(o.udpSize === undefined ? {} : { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: o.udpSize } as never] }),
  });
  return dnsPacket.decode(packet);
}

/** A record as the tests read it (dns-packet's Answer union includes OPT, which has no data or ttl). */
interface Rec {
  type: string;
  name: string;
  ttl: number;
  data: unknown;
}

type Decoded = Omit<DecodedPacket, 'answers' | 'authorities' | 'additionals'> & { answers: Rec[]; authorities: Rec[]; additionals: Rec[] };

function decoded(bytes: Buffer): Decoded {
  return dnsPacket.decode(bytes) as unknown as Decoded;
}

/** Answers as the client decodes them. */
function ask(name: string, type: string, view = sampleView()): Decoded {
  return decoded(dnsPacket.encode(answer(query(name, type), view)));
}

const rcode = (p: DecodedPacket | Decoded): string => (p as unknown as { rcode: string }).rcode;

describe('dns answer', () => {
  it('A of a service: the distinct hosts of its healthy replicas, authoritative, TTL 5 s', () => {
    const r = ask('web.service.minkube', 'A');
    expect(rcode(r)).toBe('NOERROR');
    expect(r.flag_aa).toBe(true);
    expect(r.id).toBe(7);
    expect(r.answers!.map((a) => a.data).sort()).toEqual(['127.0.0.1', '127.0.0.2']);
    expect(r.answers.every((a) => a.ttl <= 5 && a.ttl === dnsTtlS)).toBe(true);
  });

  it('names are case-insensitive and may end with a dot', () => {
    expect(ask('WEB.Service.MINKUBE.', 'A').answers).toHaveLength(2);
  });

  it('SRV of a service port: one per healthy replica with its host port, targets <task-id>.task.minkube resolving to A', () => {
    const r = ask('_http._tcp.web.service.minkube', 'SRV');
    expect(rcode(r)).toBe('NOERROR');
    const srv = r.answers!.map((a) => a.data as { port: number; target: string });
    expect(srv).toEqual([
      { priority: 0, weight: 1, port: 20001, target: 'ta.task.minkube' },
      { priority: 0, weight: 1, port: 20002, target: 'tb.task.minkube' },
      { priority: 0, weight: 1, port: 20003, target: 'tc.task.minkube' },
    ]);
    // The targets' addresses come along in the additional section, and each target resolves on its own.
    expect(r.additionals!.filter((a) => a.type === 'A').map((a) => a.name)).toEqual(['ta.task.minkube', 'tb.task.minkube', 'tc.task.minkube']);
    expect(ask('tb.task.minkube', 'A').answers!.map((a) => a.data)).toEqual(['127.0.0.2']);
  });

  it('a task without ports resolves to its host', () => {
    expect(ask('tnoports.task.minkube', 'A').answers!.map((a) => a.data)).toEqual(['127.0.0.3']);
  });

  it('leader.minkube is the leader API host, _api._tcp.minkube lists every manager API, and each target resolves', () => {
    expect(ask('leader.minkube', 'A').answers!.map((a) => a.data)).toEqual(['127.0.0.2']);
    const srv = ask('_api._tcp.minkube', 'SRV').answers!.map((a) => a.data as { port: number; target: string });
    expect(srv.map((s) => [s.target, s.port])).toEqual([['m1.manager.minkube', 8001], ['m2.manager.minkube', 8002], ['m3.manager.minkube', 8003]]);
    expect(ask('m3.manager.minkube', 'A').answers!.map((a) => a.data)).toEqual(['127.0.0.3']);
  });

  it('without a leader, leader.minkube is NODATA', () => {
    const v = sampleView();
    v.data.leaderId = null;
    const r = ask('leader.minkube', 'A', v);
    expect(rcode(r)).toBe('NOERROR');
    expect(r.answers).toEqual([]);
  });

  it('unknown names are NXDOMAIN with the SOA (TTL 5 s) in the authority section', () => {
    for (const name of ['nope.service.minkube', 'tzzz.task.minkube', '_pg._tcp.web.service.minkube', 'x.minkube', 'a.b.c.d.e.minkube', 'm9.manager.minkube']) {
      const r = ask(name, 'A');
      expect(rcode(r), name).toBe('NXDOMAIN');
      expect(r.answers).toEqual([]);
      expect(r.authorities!.map((a) => a.type)).toEqual(['SOA']);
      expect(r.authorities![0]!.ttl).toBeLessThanOrEqual(5);
      expect((r.authorities![0]!.data as { serial: number }).serial).toBe(42);
    }
  });

  it('a known name without the asked type is NODATA: NOERROR, no answer, SOA in authority', () => {
    for (const [name, type] of [['web.service.minkube', 'SRV'], ['web.service.minkube', 'AAAA'], ['_http._tcp.web.service.minkube', 'A'], ['ta.task.minkube', 'TXT'], ['leader.minkube', 'SRV'], ['_api._tcp.minkube', 'A'], ['service.minkube', 'A'], ['_tcp.web.service.minkube', 'SRV']] as const) {
      const r = ask(name, type);
      expect(rcode(r), `${name} ${type}`).toBe('NOERROR');
      expect(r.answers, `${name} ${type}`).toEqual([]);
      expect(r.authorities!.map((a) => a.type)).toEqual(['SOA']);
    }
  });

  it('a known service with no healthy replica is NODATA, also for its declared port', () => {
    expect(rcode(ask('db.service.minkube', 'A'))).toBe('NOERROR');
    expect(ask('db.service.minkube', 'A').answers).toEqual([]);
    const srv = ask('_pg._tcp.db.service.minkube', 'SRV');
    expect(rcode(srv)).toBe('NOERROR');
    expect(srv.answers).toEqual([]);
  });

  it('the zone apex answers SOA and NS', () => {
    expect(ask('minkube', 'SOA').answers!.map((a) => a.type)).toEqual(['SOA']);
    expect(ask('minkube', 'NS').answers!.map((a) => a.data)).toEqual(['ns.minkube']);
  });

  it('a manager not caught up since it started answers SERVFAIL for every name of the zone (a resolver asks another)', () => {
    const view = sampleView();
    view.data.catchingUp = true;
    for (const [name, type] of [['web.service.minkube', 'A'], ['_http._tcp.web.service.minkube', 'SRV'], ['minkube', 'SOA'], ['leader.minkube', 'A'], ['nope.minkube', 'A']]) {
      const r = ask(name!, type!, view);
      expect([name, rcode(r), r.answers]).toEqual([name, 'SERVFAIL', []]);
    }
    expect(rcode(ask('example.com', 'A', view))).toBe('REFUSED');
  });

  it('names outside minkube. are REFUSED, other classes too', () => {
    expect(rcode(ask('example.com', 'A'))).toBe('REFUSED');
    expect(rcode(ask('minkube.example.com', 'A'))).toBe('REFUSED');
    expect(rcode(dnsPacket.decode(dnsPacket.encode(answer(query('web.service.minkube', 'A', { klass: 'CH' }), sampleView()))))).toBe('REFUSED');
  });

  it('AAAA for IPv6 hosts; a host that is no IP literal has no address record', () => {
    const v = new FakeView({ services: { s: { healthy: [task('t6', '::1'), task('tn', null)] } }, tasks: [task('t6', '::1'), task('tn', null)] });
    expect(ask('s.service.minkube', 'AAAA', v).answers!.map((a) => a.data)).toEqual(['::1']);
    expect(ask('s.service.minkube', 'A', v).answers).toEqual([]);
    expect(rcode(ask('tn.task.minkube', 'A', v))).toBe('NOERROR');
  });

  it('answers are bounded per query', () => {
    const many = Array.from({ length: 300 }, (_, i) => task(`t${String(i).padStart(3, '0')}`, `10.0.${Math.floor(i / 250)}.${i % 250}`, { http: 20000 + i }));
    const v = new FakeView({ services: { big: { ports: ['http'], healthy: many } }, tasks: many });
    expect(ask('big.service.minkube', 'A', v).answers).toHaveLength(dnsAnswersMax);
    expect(ask('_http._tcp.big.service.minkube', 'SRV', v).answers).toHaveLength(dnsAnswersMax);
  });

  it('a large UDP answer drops its additional records, then sets TC with no answers; TCP gets it whole', () => {
    const many = Array.from({ length: 40 }, (_, i) => task(`t${String(i).padStart(3, '0')}abcdefghijkl`, `10.0.0.${i}`, { http: 20000 + i }));
    const v = new FakeView({ services: { big: { ports: ['http'], healthy: many } }, tasks: many });
    const q = query('_http._tcp.big.service.minkube', 'SRV');
    const udp = decoded(encodeResponse(answer(q, v), udpSizeLimit(q)));
    expect(udp.flag_tc).toBe(true);
    expect(udp.answers).toEqual([]);
    expect(udp.questions![0]!.name).toBe('_http._tcp.big.service.minkube');
    const tcp = decoded(encodeResponse(answer(q, v), 65_535));
    expect(tcp.flag_tc).toBe(false);
    expect(tcp.answers).toHaveLength(40);
    // With EDNS the client's larger size is used.
    const q2 = query('_http._tcp.big.service.minkube', 'SRV', { udpSize: 4096 });
    expect(udpSizeLimit(q2)).toBe(4096);
    expect(decoded(encodeResponse(answer(q2, v), udpSizeLimit(q2))).answers).toHaveLength(40);
    expect(udpSizeLimit(query('x.minkube', 'A', { udpSize: 65_000 }))).toBe(4096);
  });

  it('names are compressed: six SRV replicas with their addresses fit in 512 bytes, and every answer reads back the same', () => {
    const six = Array.from({ length: 6 }, (_, i) => task(`t${String(i).padStart(3, '0')}abcdefghijklmn`, `10.0.0.${i}`, { http: 20000 + i }));
    const v = new FakeView({ services: { web: { ports: ['http'], healthy: six } }, tasks: six });
    const q = query('_http._tcp.web.service.minkube', 'SRV');
    const plain = dnsPacket.encode(answer(q, v));
    const packed = encodeResponse(answer(q, v), udpSizeLimit(q));
    expect(plain.length).toBeGreaterThan(512);
    expect(packed.length).toBeLessThanOrEqual(512);
    const read = decoded(packed);
    expect(read.flag_tc).toBe(false);
    expect(read.answers).toHaveLength(6);
    expect(read).toEqual(decoded(plain));
    // Every kind of answer, EDNS included: the same packet once decoded, and never longer.
    for (const [name, type] of [['web.service.minkube', 'A'], ['minkube', 'SOA'], ['minkube', 'NS'], ['nothing.minkube', 'A'], ['leader.minkube', 'AAAA'], ['_api._tcp.minkube', 'SRV'], ['LEADER.Minkube', 'A']] as const) {
      for (const withEdns of [false, true]) {
        const qq = query(name, type, withEdns ? { udpSize: 1232 } : {});
        const full = dnsPacket.encode(answer(qq, withEdns ? v : sampleView()));
        const small = encodeResponse(answer(qq, withEdns ? v : sampleView()), 65_535);
        expect(small.length, `${name} ${type}`).toBeLessThanOrEqual(full.length);
        expect(decoded(small), `${name} ${type}`).toEqual(decoded(full));
      }
    }
  });

  it('compressNames answers a message it cannot read unchanged', () => {
    const cut = dnsPacket.encode(answer(query('leader.minkube', 'A'), sampleView())).subarray(0, 30);
    expect(compressNames(cut)).toBe(cut);
    expect(compressNames(Buffer.alloc(5))).toHaveLength(5);
  });

  it('EDNS (RFC 6891): a query with an OPT record gets one back, kept when the answer is truncated; two OPTs are FORMERR, a later version BADVERS', () => {
    const optOf = (p: Decoded): Record<string, unknown>[] => (p.additionals as unknown as Record<string, unknown>[]).filter((a) => a.type === 'OPT');
    // Without EDNS, none.
    expect(optOf(ask('leader.minkube', 'A'))).toEqual([]);
    const withEdns = decoded(dnsPacket.encode(answer(query('leader.minkube', 'A', { udpSize: 1232 }), sampleView())));
    expect(rcode(withEdns)).toBe('NOERROR');
    expect(withEdns.answers).toHaveLength(1);
    expect(optOf(withEdns)).toEqual([expect.objectContaining({ name: '.', udpPayloadSize: 4096, extendedRcode: 0, ednsVersion: 0, flag_do: false })]);
    // Truncated to 512 bytes: no answers, TC, and still the OPT.
    const many = Array.from({ length: 40 }, (_, i) => task(`t${String(i).padStart(3, '0')}abcdefghijkl`, `10.0.0.${i}`, { http: 20000 + i }));
    const v = new FakeView({ services: { big: { ports: ['http'], healthy: many } }, tasks: many });
    const q = query('_http._tcp.big.service.minkube', 'SRV', { udpSize: 512 });
    const udp = decoded(encodeResponse(answer(q, v), udpSizeLimit(q)));
    expect(udp.flag_tc).toBe(true);
    expect(optOf(udp)).toHaveLength(1);
    // Two OPT records, or EDNS version 1.
    const base = query('leader.minkube', 'A', { udpSize: 1232 });
    const twoOpts = { ...base, additionals: [...base.additionals!, ...base.additionals!] };
    expect(rcode(decoded(dnsPacket.encode(answer(twoOpts, sampleView()))))).toBe('FORMERR');
    const v1 = { ...base, additionals: [{ ...base.additionals![0]!, ednsVersion: 1 } as never] };
    const badvers = decoded(dnsPacket.encode(answer(v1, sampleView())));
    expect(rcode(badvers)).toBe('NOERROR');
    expect(badvers.answers).toEqual([]);
    expect(optOf(badvers)).toEqual([expect.objectContaining({ extendedRcode: 1, ednsVersion: 0 })]);
  });

  it('a query of another opcode is NOTIMP; two questions FORMERR; garbage with an id gets FORMERR', () => {
    const q = query('web.service.minkube', 'A');
    const notify = dnsPacket.decode(dnsPacket.encode({ ...q, flags: (4 << 11) }));
    expect(rcode(dnsPacket.decode(dnsPacket.encode(answer(notify, sampleView()))))).toBe('NOTIMP');
    const two = { ...q, questions: [q.questions![0]!, q.questions![0]!] };
    expect(rcode(dnsPacket.decode(dnsPacket.encode(answer(two, sampleView()))))).toBe('FORMERR');
    const garbage = Buffer.from([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 99]);
    const err = dnsPacket.decode(formatError(garbage)!);
    expect(err.id).toBe(0x1234);
    expect(rcode(err)).toBe('FORMERR');
    expect(formatError(Buffer.from([1, 2]))).toBeNull();
  });
});
