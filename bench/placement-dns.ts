// Placement and DNS costs in one process, no I/O but the DNS server's loopback UDP: the round-robin policy placing
// tasks over 100 workers plain and with constraints and resources (placements/s, and the ratio), the pure DNS
// answer for an SRV of a 100-replica service (answers/s), and queries through the UDP server one at a time
// (queries/s, node:dgram client). `npx tsx bench/placement-dns.ts [--tasks 20000] [--queries 5000]`
import { createSocket } from 'node:dgram';
import dnsPacket, { type DecodedPacket } from 'dns-packet';
import { pino } from 'pino';
import { parseConstraint, type Constraint } from '../src/lib/constraints.js';
import { answer, encodeResponse } from '../src/manager/dns/answer.js';
import { DnsServer } from '../src/manager/dns/server.js';
import type { DnsManager, DnsService, DnsTask, DnsView } from '../src/manager/dns/view.js';
import type { PlacementTask, PlacementWorker } from '../src/scheduler/policy.js';
import { roundRobin } from '../src/scheduler/round-robin.js';
import { arg, printResult, printTable, round } from './support.js';
import { freePort } from '../test/support/wait.js';

const tasksN = Number(arg('tasks', '20000'));
const queriesN = Number(arg('queries', '5000'));

function placements(withRules: boolean): number {
  const zone = parseConstraint('zone==a') as Constraint;
  const notHdd = parseConstraint('disk!=hdd') as Constraint;
  const workers: PlacementWorker[] = Array.from({ length: 100 }, (_, i) => ({
    id: `w${String(i).padStart(3, '0')}`, activeTasks: 0, cpuUtilization: null,
    ...(withRules ? { labels: { zone: i % 2 === 0 ? 'a' : 'b', disk: i % 3 === 0 ? 'hdd' : 'ssd' }, free: { cpus: 1e6, memoryMb: 1e9 } } : {}),
  }));
  const t0 = performance.now();
  let placed = 0;
  let cursor: string | null = null;
  for (let b = 0; b < tasksN; b += 1000) {
    const tasks: PlacementTask[] = Array.from({ length: 1000 }, (_, i) => ({
      id: `t${b + i}`, attempt: 1, avoidWorkerId: null, ...(withRules ? { constraints: [zone, notHdd], cpus: 0.1, memoryMb: 64 } : {}),
    }));
    const d = roundRobin.place({ tasks, workers, cursor });
    placed += d.placements.length;
    cursor = d.cursor;
  }
  return placed / ((performance.now() - t0) / 1000);
}

const replicas: DnsTask[] = Array.from({ length: 100 }, (_, i) => ({ id: `t${String(i).padStart(17, '0')}`, address: { family: 4, ip: `10.0.${i >> 8}.${i & 255}` }, ports: new Map([['http', 20000 + i]]) }));
const view: DnsView = {
  service: (name: string): DnsService | undefined => (name === 'web' ? { portNames: new Set(['http']), healthy: replicas } : undefined),
  task: (id: string) => replicas.find((r) => r.id === id),
  managers: (): DnsManager[] => [{ id: 'm1', address: { family: 4, ip: '127.0.0.1' }, apiPort: 8001 }],
  leaderId: () => 'm1',
  serial: () => 1,
  catchingUp: () => false,
};

function answersPerS(): number {
  const q = dnsPacket.decode(dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'SRV', name: '_http._tcp.web.service.minkube' }] })) as DecodedPacket;
  const n = 20_000;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) encodeResponse(answer(q, view), 65_535);
  return n / ((performance.now() - t0) / 1000);
}

async function udpQueriesPerS(): Promise<number> {
  const port = await freePort();
  const server = await DnsServer.start({ host: '127.0.0.1', port, view, logger: pino({ level: 'silent' }) });
  const client = createSocket('udp4');
  const query = dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'leader.minkube' }] });
  const t0 = performance.now();
  for (let i = 0; i < queriesN; i++) {
    await new Promise<void>((resolve) => {
      client.once('message', () => resolve());
      client.send(query, port, '127.0.0.1');
    });
  }
  const rate = queriesN / ((performance.now() - t0) / 1000);
  client.close();
  await server.close();
  return rate;
}

const plain = placements(false);
const ruled = placements(true);
const answers = answersPerS();
const udp = await udpQueriesPerS();
printTable(`placement and DNS (${tasksN} tasks over 100 workers; SRV of 100 replicas; ${queriesN} UDP queries one at a time)`, [
  { metric: 'round-robin placements/s, no constraints', value: round(plain, 0) },
  { metric: 'round-robin placements/s, 2 constraints + resources', value: round(ruled, 0) },
  { metric: 'ratio (with rules / plain)', value: round(ruled / plain, 2) },
  { metric: 'DNS answers/s, SRV of 100 replicas (pure, encoded)', value: round(answers, 0) },
  { metric: 'DNS queries/s over UDP, one at a time', value: round(udp, 0) },
]);
printResult('placement-dns', { tasks: tasksN, queries: queriesN, plain, ruled, answers, udp }, [
  { metric: `placements/s with 2 constraints + resources, ${tasksN} tasks, 100 workers`, unit: 'placements/s', value: round(ruled, 0), better: 'higher' },
  { metric: 'DNS queries/s over UDP, one at a time', unit: 'queries/s', value: round(udp, 0), better: 'higher' },
]);
