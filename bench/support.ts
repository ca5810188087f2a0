// Shared pieces of the benchmarks: a keep-alive HTTP client, percentiles, and printing a table plus a JSON line.
import { Agent, request } from 'node:http';
import type { SummaryRow } from './summary.js';

export function percentile(sortedMs: readonly number[], p: number): number {
  if (sortedMs.length === 0) return NaN;
  const i = Math.min(sortedMs.length - 1, Math.max(0, Math.ceil((p / 100) * sortedMs.length) - 1));
  return sortedMs[i]!;
}

export interface HttpResult {
  status: number;
  body: string;
}

/** A small keep-alive JSON client: the load generator must cost less CPU than the servers it measures. */
export class BenchClient {
  private readonly agent: Agent;

  constructor(maxSockets: number) {
    this.agent = new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  }

  send(url: URL, method: string, body: string | null, timeoutMs = 5000): Promise<HttpResult> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          agent: this.agent,
          host: url.hostname,
          port: url.port,
          path: url.pathname + url.search,
          method,
          headers: body === null ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
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
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end(body ?? undefined);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

export function printTable(title: string, rows: readonly Record<string, string | number>[]): void {
  console.log(`\n${title}`);
  if (rows.length === 0) return;
  const cols = Object.keys(rows[0]!);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const line = (cells: string[]): string => '| ' + cells.map((s, i) => s.padStart(width[i]!)).join(' | ') + ' |';
  console.log(line(cols));
  console.log('|' + width.map((w) => '-'.repeat(w + 2)).join('|') + '|');
  for (const r of rows) console.log(line(cols.map((c) => String(r[c]))));
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
