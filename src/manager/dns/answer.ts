// The DNS answers of a manager, as pure functions: answer(query, view) -> response, and the encoding of a response
// within a size limit (truncated with the TC bit when it does not fit). The server around them only moves bytes.
//
// Names (all under minkube., case-insensitive):
//   <service>.service.minkube              A/AAAA: the hosts of the service's healthy replicas
//   _<port>._tcp.<service>.service.minkube SRV: each healthy replica's host port, target <task-id>.task.minkube
//   <task-id>.task.minkube                 A/AAAA: the host of a placed task
//   <manager-id>.manager.minkube           A/AAAA: a manager's API host
//   leader.minkube                         A/AAAA: the leader's API host
//   _api._tcp.minkube                      SRV: every manager's API port, target <manager-id>.manager.minkube
// minkube. itself answers SOA and NS. An unknown name is NXDOMAIN and a known name without the asked type NODATA
// (NOERROR, no answer), both with the SOA in the authority section; a name outside minkube. is REFUSED.
import dnsPacket, { type Answer, type DecodedPacket, type Packet, type Question } from 'dns-packet';
import { compressNames } from './compress.js';
import type { DnsAddress, DnsTask, DnsView } from './view.js';

export const dnsZone = 'minkube';
/** Every record's TTL (and the SOA's negative-caching TTL): answers follow a task's death within seconds. */
export const dnsTtlS = 5;
/** Answers per response at most (A and SRV each); a service's further replicas are left out. */
export const dnsAnswersMax = 64;
/** A UDP answer without EDNS fits in 512 bytes (RFC 1035); with EDNS in what the client says, up to this. */
export const dnsUdpSizeMax = 4096;
export const dnsUdpSizeDefault = 512;

const rcodeOf = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
/** BADVERS (16) >> 4: what an OPT record's extended-RCODE byte holds for it. */
const badversUpperBits = 1;
type Rcode = keyof typeof rcodeOf;

type Records = { readonly answers: Answer[]; readonly additionals: Answer[] } | 'nxdomain';

/** The response to one decoded query. Pure: the same query and view give the same packet. */
export function answer(query: DecodedPacket, view: DnsView): Packet {
  // RFC 6891: a query with EDNS gets an OPT record back (this server's UDP size, version 0, no DNSSEC), kept even in a
  // truncated answer; one with more than one OPT is malformed, and one of a later EDNS version is told BADVERS.
  const opts = (query.additionals ?? []).filter((a) => a.type === 'OPT');
  const optOut = (extendedRcode = 0): Answer[] =>
    opts.length === 0 ? [] : [{ type: 'OPT', name: '.', udpPayloadSize: dnsUdpSizeMax, extendedRcode, ednsVersion: 0, flags: 0, flag_do: false, options: [] }];
  const base = (rcode: Rcode, extra: Partial<Packet> = {}): Packet => ({
    type: 'response',
    id: query.id ?? 0,
    // AA; RD echoed; the opcode echoed (bits 11-14); no recursion offered.
    flags: dnsPacket.AUTHORITATIVE_ANSWER | (query.flag_rd ? dnsPacket.RECURSION_DESIRED : 0) | (opcodeBits(query) << 11) | rcodeOf[rcode],
    questions: query.questions ?? [],
    answers: [],
    authorities: [],
    ...extra,
    additionals: [...(extra.additionals ?? []), ...optOut()],
  });
  if (query.type !== 'query') return base('FORMERR');
  if (opts.length > 1) return base('FORMERR');
  if (opts.length === 1 && (opts[0] as { ednsVersion?: number }).ednsVersion !== 0) {
    // BADVERS is extended RCODE 16: the header's 4 bits are 0, the OPT's upper 8 bits are 1.
    return { ...base('NOERROR'), additionals: optOut(badversUpperBits) };
  }
  if (opcodeBits(query) !== 0) return base('NOTIMP');
  const questions = query.questions ?? [];
  if (questions.length !== 1) return base('FORMERR');
  const q = questions[0]!;
  if (q.class !== 'IN' && q.class !== 'ANY') return base('REFUSED');
  const labels = q.name.toLowerCase().replace(/\.$/, '').split('.');
  if (labels.at(-1) !== dnsZone) return base('REFUSED');
  if (view.catchingUp()) return base('SERVFAIL');
  const records = lookup(labels.slice(0, -1), q, view);
  if (records === 'nxdomain') return base('NXDOMAIN', { authorities: [soa(view)] });
  const answers = records.answers.slice(0, dnsAnswersMax);
  if (answers.length === 0) return base('NOERROR', { authorities: [soa(view)] });
  return base('NOERROR', { answers, additionals: records.additionals.slice(0, dnsAnswersMax) });
}

/** The records of a name under the zone (labels without the zone's own), or nxdomain. */
function lookup(labels: readonly string[], q: Question, view: DnsView): Records {
  const name = [...labels, dnsZone].join('.');
  const want = (t: string): boolean => typeOf(q) === t || typeOf(q) === 'ANY';
  const none = { answers: [], additionals: [] };
  const [first, second, third, fourth] = labels;
  if (labels.length === 0) {
    const answers: Answer[] = [];
    if (want('SOA')) answers.push(soa(view));
    if (want('NS')) answers.push({ type: 'NS', name, ttl: dnsTtlS, class: 'IN', data: `ns.${dnsZone}` });
    return { answers, additionals: [] };
  }
  // Empty non-terminals: names that exist only because names below them do.
  if (labels.length === 1 && (first === 'service' || first === 'task' || first === 'manager' || first === '_tcp')) return none;
  if (labels.length === 1 && first === 'leader') {
    const leader = view.managers().find((m) => m.id.toLowerCase() === view.leaderId()?.toLowerCase());
    return leader === undefined ? none : { answers: addressRecords(name, leader.address === null ? [] : [leader.address], q), additionals: [] };
  }
  if (labels.length === 2 && first === '_api' && second === '_tcp') return managerSrv(name, q, view);
  if (labels.length === 2 && second === 'task') {
    const t = view.task(first!);
    return t === undefined ? 'nxdomain' : { answers: addressRecords(name, t.address === null ? [] : [t.address], q), additionals: [] };
  }
  if (labels.length === 2 && second === 'manager') {
    const m = view.managers().find((x) => x.id.toLowerCase() === first);
    return m === undefined ? 'nxdomain' : { answers: addressRecords(name, m.address === null ? [] : [m.address], q), additionals: [] };
  }
  if (labels.length === 2 && second === 'service') {
    const s = view.service(first!);
    if (s === undefined) return 'nxdomain';
    return { answers: addressRecords(name, distinct(s.healthy.map((t) => t.address)), q), additionals: [] };
  }
  if (labels.length === 4 && fourth === 'service' && second === '_tcp' && first!.startsWith('_')) {
    const s = view.service(third!);
    const port = first!.slice(1);
    if (s === undefined || !s.portNames.has(port)) return 'nxdomain';
    return want('SRV') ? serviceSrv(name, port, s.healthy) : none;
  }
  // _tcp.web.service.minkube and the like exist as empty non-terminals when the service does.
  if (labels.length === 3 && first === '_tcp' && third === 'service' && view.service(second!) !== undefined) return none;
  return 'nxdomain';
}

function serviceSrv(name: string, port: string, replicas: readonly DnsTask[]): Records {
  const answers: Answer[] = [];
  const additionals: Answer[] = [];
  for (const t of replicas) {
    const hostPort = t.ports.get(port);
    if (hostPort === undefined) continue;
    const target = `${t.id.toLowerCase()}.task.${dnsZone}`;
    answers.push({ type: 'SRV', name, ttl: dnsTtlS, class: 'IN', data: { priority: 0, weight: 1, port: hostPort, target } });
    if (t.address !== null) additionals.push(addressRecord(target, t.address));
  }
  return { answers, additionals };
}

function managerSrv(name: string, q: Question, view: DnsView): Records {
  if (typeOf(q) !== 'SRV' && typeOf(q) !== 'ANY') return { answers: [], additionals: [] };
  const answers: Answer[] = [];
  const additionals: Answer[] = [];
  for (const m of view.managers()) {
    // An id that is not one DNS label (a dot in it, or too long) has no name of its own to point at.
    if (!isLabel(m.id)) continue;
    const target = `${m.id.toLowerCase()}.manager.${dnsZone}`;
    answers.push({ type: 'SRV', name, ttl: dnsTtlS, class: 'IN', data: { priority: 0, weight: 1, port: m.apiPort, target } });
    if (m.address !== null) additionals.push(addressRecord(target, m.address));
  }
  return { answers, additionals };
}

function addressRecords(name: string, addresses: readonly DnsAddress[], q: Question): Answer[] {
  return addresses.filter((a) => typeOf(q) === 'ANY' || typeOf(q) === (a.family === 4 ? 'A' : 'AAAA')).map((a) => addressRecord(name, a));
}

function addressRecord(name: string, a: DnsAddress): Answer {
  return { type: a.family === 4 ? 'A' : 'AAAA', name, ttl: dnsTtlS, class: 'IN', data: a.ip };
}

function distinct(addresses: readonly (DnsAddress | null)[]): DnsAddress[] {
  const seen = new Map<string, DnsAddress>();
  for (const a of addresses) if (a !== null && !seen.has(a.ip)) seen.set(a.ip, a);
  return [...seen.values()];
}

function soa(view: DnsView): Answer {
  return {
    type: 'SOA', name: dnsZone, ttl: dnsTtlS, class: 'IN',
    data: { mname: `ns.${dnsZone}`, rname: `hostmaster.${dnsZone}`, serial: view.serial() >>> 0, refresh: 60, retry: 10, expire: 3600, minimum: dnsTtlS },
  };
}

function isLabel(s: string): boolean {
  return s.length >= 1 && s.length <= 63 && !s.includes('.');
}

/** dns-packet decodes type 255 as 'ANY', which its types leave out. */
function typeOf(q: Question): string {
  return q.type as string;
}

function opcodeBits(p: DecodedPacket): number {
  return ((p.flags ?? 0) >> 11) & 0xf;
}

/** The UDP size limit a query asks for: its EDNS payload size within 512..dnsUdpSizeMax, else 512. */
export function udpSizeLimit(query: DecodedPacket): number {
  const opt = query.additionals?.find((a) => a.type === 'OPT');
  if (opt === undefined || !('udpPayloadSize' in opt)) return dnsUdpSizeDefault;
  return Math.min(dnsUdpSizeMax, Math.max(dnsUdpSizeDefault, opt.udpPayloadSize));
}

/**
 * Encodes a response within `sizeMax` bytes, names compressed. One that does not fit goes without its additional records, then as the
 * header and question with the TC bit set, telling the client to ask again over TCP (RFC 2181 9).
 */
export function encodeResponse(p: Packet, sizeMax: number): Buffer {
  const full = compressNames(dnsPacket.encode(p));
  if (full.length <= sizeMax) return full;
  // The OPT record stays: it is how a client knows the server speaks EDNS (RFC 6891 7).
  const opt = (p.additionals ?? []).filter((a) => a.type === 'OPT');
  const lean = compressNames(dnsPacket.encode({ ...p, additionals: opt }));
  if (lean.length <= sizeMax) return lean;
  return compressNames(dnsPacket.encode({ ...p, flags: (p.flags ?? 0) | dnsPacket.TRUNCATED_RESPONSE, answers: [], authorities: [], additionals: opt }));
}

/** A FORMERR for bytes that do not decode, when at least their id can be read; else null (dropped). */
export function formatError(bytes: Buffer): Buffer | null {
  if (bytes.length < 12) return null;
  // QR set, opcode kept, FORMERR; no question echoed (it did not decode).
  const flags = 0x8000 | (bytes.readUInt16BE(2) & 0x7800) | rcodeOf.FORMERR;
  const out = Buffer.alloc(12);
  out.writeUInt16BE(bytes.readUInt16BE(0), 0);
  out.writeUInt16BE(flags, 2);
  return out;
}
