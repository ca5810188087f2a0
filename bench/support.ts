// Shared pieces of the benchmarks: a keep-alive HTTP(S) client, percentiles, and printing a table plus a JSON line.
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { formatTable } from '../src/cli/output.js';
import type { SummaryRow } from './summary.js';

/** The process's user + system CPU time in ms (Linux /proc, in ticks of USER_HZ = 100; NaN elsewhere). */
export function cpuMsOf(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return NaN;
  }
}

export function percentile(sortedMs: readonly number[], p: number): number {
  if (sortedMs.length === 0) return NaN;
  const i = Math.min(sortedMs.length - 1, Math.max(0, Math.ceil((p / 100) * sortedMs.length) - 1));
  return sortedMs[i]!;
}

export interface HttpResult {
  status: number;
  body: string;
}

/** How to reach a closed cluster (or etcd with TLS): the CA to trust, and a token or a client certificate. */
export interface BenchTls {
  readonly ca: string;
  readonly token?: string;
  readonly cert?: string;
  readonly key?: string;
}

/**
 * A small keep-alive JSON client: the load generator must cost less CPU than the servers it measures. With `tls`
 * it speaks https (https:// URLs only): one handshake per connection, and a reconnect resumes the TLS session (the
 * agent keeps the tickets).
 */
export class BenchClient {
  private readonly agent: Agent;
  private readonly send1: typeof request;
  private readonly authorization: Record<string, string>;
  /** Handshakes made and how many of them resumed a session: a keep-alive load makes one per connection. */
  readonly handshakes = { full: 0, resumed: 0 };

  /** headers: sent on every request besides the token (a traceparent, say). */
  constructor(maxSockets: number, tls?: BenchTls, headers: Readonly<Record<string, string>> = {}) {
    const common = { keepAlive: true, maxSockets, maxFreeSockets: maxSockets };
    if (tls === undefined) {
      this.agent = new Agent(common);
      this.send1 = request;
      this.authorization = { ...headers };
      return;
    }
    const identity = tls.cert === undefined ? {} : { cert: tls.cert, key: tls.key };
    const agent = new HttpsAgent({ ...common, ca: tls.ca, ...identity, maxCachedSessions: maxSockets });
    this.agent = agent;
    this.send1 = httpsRequest as unknown as typeof request;
    this.authorization = tls.token === undefined ? { ...headers } : { ...headers, authorization: `Bearer ${tls.token}` };
  }

  /** Counts handshakes on this connection (https only). */
  private countHandshake(socket: Socket): void {
    const tls = socket as TLSSocket;
    if (typeof tls.isSessionReused !== 'function' || this.counted.has(tls)) return;
    this.counted.add(tls);
    tls.once('secureConnect', () => (tls.isSessionReused() ? this.handshakes.resumed++ : this.handshakes.full++));
  }

  private readonly counted = new WeakSet<object>();

  send(url: URL, method: string, body: string | null, timeoutMs = 5000): Promise<HttpResult> {
    return new Promise((resolve, reject) => {
      const req = this.send1(
        {
          agent: this.agent,
          host: url.hostname,
          port: url.port,
          path: url.pathname + url.search,
          method,
          headers: body === null ? this.authorization : { ...this.authorization, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
          timeout: timeoutMs,
        },
        (res) => {
          let data = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (data += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
          res.on('error', reject);
        },
      );
      req.once('socket', (socket) => this.countHandshake(socket));
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end(body ?? undefined);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** A titled Markdown table of rows (the first row's keys are the columns), numbers right-aligned. */
export function printTable(title: string, rows: readonly Record<string, string | number>[]): void {
  console.log(`\n${title}`);
  if (rows.length === 0) return;
  const cols = Object.keys(rows[0]!);
  const numeric = (i: number): boolean => rows.every((r) => typeof r[cols[i]!] === 'number');
  console.log(formatTable([cols, ...rows.map((r) => cols.map((c) => String(r[c])))], { markdown: true, numeric }));
}

export function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

export function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

export function flag(name: string): boolean {
  return process.argv.includes(`--${name}`);
}

/**
 * The last line a benchmark prints: its results as one JSON object, with `summary`, its headline numbers, which
 * bench/run.ts gathers into one table.
 */
export function printResult(bench: string, data: Record<string, unknown>, summary: readonly SummaryRow[]): void {
  console.log(JSON.stringify({ bench, ...data, summary }));
}
