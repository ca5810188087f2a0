// `minkube audit`: the answering manager's audit trail (committed changes and refused requests) as a table, or the
// page as JSON. Admin tokens only, as the route is.
import { InvalidArgumentError, type Command } from 'commander';
import type { AuditLine, AuditPrincipal, Page } from '../contracts/services.js';
import { limits } from '../lib/limits.js';
import { apiClientFor } from './connection.js';
import { formatTable, printJson, printLine, type Output } from './output.js';

export interface AuditFlags {
  /** An ISO time or milliseconds, as the route takes it. */
  since?: string;
  principal?: string;
  limit?: number;
  cursor?: string;
  /** Show worker.heartbeat lines too (left out by the manager unless asked). */
  heartbeats?: boolean;
}

/** One line per worker per second: shown only with --heartbeats, so that they do not bury everything else. */
const heartbeatOp = 'worker.heartbeat';

const unitMs: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** '10m' (ten minutes ago) or an ISO time -> the ISO time to send. A commander parser: a bad one is a usage error. */
export function parseSince(text: string, nowMs = Date.now()): string {
  const ago = /^([1-9][0-9]{0,9})([smhd])$/.exec(text);
  if (ago !== null) return new Date(nowMs - Number(ago[1]) * unitMs[ago[2]!]!).toISOString();
  const ms = /^[0-9]{4}-[0-9]{2}-[0-9]{2}T/.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(ms)) throw new InvalidArgumentError('expected a duration ago (30s, 10m, 2h, 7d) or an ISO time (2030-01-01T12:00:00Z).');
  return new Date(ms).toISOString();
}

function parseLimit(text: string): number {
  const n = /^[1-9][0-9]{0,5}$/.test(text) ? Number(text) : 0;
  if (n < 1 || n > limits.listLimitMax) throw new InvalidArgumentError(`expected an integer from 1 to ${limits.listLimitMax}.`);
  return n;
}

export async function runAudit(apiUrl: string, flags: AuditFlags, out: Output): Promise<void> {
  const query = new URLSearchParams();
  const { heartbeats, ...params } = flags;
  for (const [name, value] of Object.entries(params)) if (value !== undefined) query.set(name, String(value));
  if (heartbeats !== true) query.set('excludeOp', heartbeatOp);
  const path = query.size === 0 ? '/v1/audit' : `/v1/audit?${query.toString()}`;
  const client = apiClientFor(apiUrl, { readRetries: 2 });
  const page = await client.request<Page<AuditLine>>('GET', path);
  // Each manager keeps its own trail (and its own cursors): say whose this is when it is not the first one's.
  if (client.movedOn) process.stderr.write(`the audit trail of ${client.baseUrl} (the first manager named did not answer)\n`);
  if (out.json) {
    printJson(page);
    return;
  }
  const rows = [['TIME', 'PRINCIPAL', 'OP/ROUTE', 'TARGET', 'OUTCOME', 'REQUEST']];
  for (const l of page.items) rows.push(rowOf(l));
  printLine(formatTable(rows));
  // On stderr: the table stays the whole of stdout, for grep and the like.
  if (page.nextCursor !== null) process.stderr.write(`more lines follow: add --cursor ${page.nextCursor}\n`);
}

/** TIME, PRINCIPAL, OP/ROUTE, TARGET, OUTCOME, REQUEST; a summary of refusals names its routes, its client and its count. */
function rowOf(l: AuditLine): string[] {
  if ('count' in l) return [l.time, principalText(l.principal), Object.keys(l.routes).join(','), l.client, `${l.outcome} x${l.count} since ${l.since}`, '-'];
  if ('target' in l && 'route' in l) return [l.time, principalText(l.principal), l.route, l.target ?? '-', l.outcome, l.requestId ?? '-'];
  if ('route' in l) return [l.time, principalText(l.principal), l.route, '-', l.outcome, l.requestId];
  return [l.time, principalText(l.principal), l.op, l.target ?? '-', l.outcome, l.requestId ?? '-'];
}

function principalText(p: AuditPrincipal | null): string {
  if (p === null) return '-';
  return 'token' in p ? `${p.token} (${p.role})` : `node ${p.node} (${p.role})`;
}

/** Registers `audit` on the program (main.ts calls this, as it does for the other groups). */
export function addAuditCommand(program: Command, globals: (cmd: Command) => { api: string; out: Output }): void {
  program
    .command('audit')
    .description("the answering manager's audit trail: committed changes (who, what, outcome, request id) and refused requests; the newest lines unless --since or --cursor")
    .option('--since <when>', 'from this time on: a duration ago (30s, 10m, 2h, 7d) or an ISO time', (t: string) => parseSince(t))
    .option('--principal <id>', 'only lines of this token accessor or node id')
    .option('--limit <n>', `at most this many lines (1..${limits.listLimitMax}, default ${limits.listLimitDefault})`, parseLimit)
    .option('--cursor <c>', 'the lines after a page that said "more lines follow"')
    .option('--heartbeats', `show the ${heartbeatOp} lines too (one per worker per second), left out by default; the file keeps them either way`)
    .action(async (flags: AuditFlags, cmd: Command) => {
      const g = globals(cmd);
      await runAudit(g.api, flags, g.out);
    });
}
