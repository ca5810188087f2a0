// Refusals past a rate limit (429 RATE_LIMITED), counted per caller rather than written one by one: a request without a
// valid credential past its address's anonymous bucket is counted under the address, a token's past its bucket under
// the token and the address. A flood costs the audit trail the caller's first refusal in full and then at most one
// summary line per caller per interval, however fast it comes, so it cannot rotate the trail away. Every other refusal
// (a 401, a 403, a QUEUE_FULL) never comes here: each stays a line of its own, and comes no faster than the caller's
// bucket lets it.
import type { AuditPrincipal, AuditRefusalSummaryLine } from '../contracts/services.js';
import { isoAt, type Clock, type Timer } from '../lib/clock.js';
import { assert } from '../lib/assert.js';

/** The client of the one tally that counts, together, every caller past clientsMax in an interval (its principal null). */
export const otherClients = '*';
/** The route under which a tally counts the routes past routesMax. */
export const otherRoutes = '(other routes)';

export interface RefusalSummariesOptions {
  clock: Clock;
  intervalMs: number;
  clientsMax: number;
  routesMax: number;
  /** Writes a summary line (the audit log numbers it). */
  write(line: Omit<AuditRefusalSummaryLine, 'seq'>): void;
}

interface Tally {
  readonly principal: AuditPrincipal | null;
  readonly client: string;
  /** Refusals counted since the last summary; 0: the address had none in the last interval, and is forgotten at its end. */
  count: number;
  sinceMs: number;
  readonly routes: Map<string, number>;
}

export class RefusalSummaries {
  private readonly tallies = new Map<string, Tally>();
  private timer: Timer | null = null;

  constructor(private readonly o: RefusalSummariesOptions) {
    assert(o.intervalMs > 0 && o.clientsMax >= 1 && o.routesMax >= 1, 'refusal summaries need an interval, and room for an address and a route');
  }

  /**
   * Whether this refusal is to be written in full: the first of a caller (the principal, null without a valid
   * credential, at this address) that had none in the last interval. The others are counted, for the summary written
   * when the interval ends.
   */
  refused(principal: AuditPrincipal | null, client: string, route: string): boolean {
    const caller = principal === null ? client : `${client} ${'token' in principal ? `token ${principal.token}` : `node ${principal.node}`}`;
    const key = this.tallies.has(caller) || this.tallies.size < this.o.clientsMax ? caller : otherClients;
    let tally = this.tallies.get(key);
    if (tally === undefined) {
      tally = key === otherClients ? { principal: null, client: otherClients, count: 0, sinceMs: 0, routes: new Map() } : { principal, client, count: 0, sinceMs: 0, routes: new Map() };
      this.tallies.set(key, tally);
      this.arm();
      // The addresses past the bound are counted from their first refusal: writing each in full would be unbounded.
      if (key !== otherClients) return true;
    }
    this.count(tally, route);
    return false;
  }

  /** Writes what is counted now (the manager is closing): nothing counted is left unwritten. */
  close(): void {
    this.timer?.cancel();
    this.timer = null;
    this.flush();
  }

  private count(tally: Tally, route: string): void {
    if (tally.count === 0) tally.sinceMs = this.o.clock.nowMs();
    tally.count++;
    const key = tally.routes.has(route) || tally.routes.size < this.o.routesMax ? route : otherRoutes;
    tally.routes.set(key, (tally.routes.get(key) ?? 0) + 1);
  }

  /** One line per caller that had refusals counted; a caller that had none is forgotten (its next is written in full). */
  private flush(): void {
    const time = isoAt(this.o.clock.nowMs());
    for (const [key, tally] of this.tallies) {
      if (tally.count === 0) {
        this.tallies.delete(key);
        continue;
      }
      const { principal, client, count, sinceMs, routes } = tally;
      this.o.write({ time, principal, outcome: 'RATE_LIMITED', client, count, since: isoAt(sinceMs), routes: Object.fromEntries(routes) });
      tally.count = 0;
      tally.routes.clear();
    }
  }

  /** One timer for every address, running while any is counted. */
  private arm(): void {
    this.timer ??= this.o.clock.setTimeout(() => {
      this.timer = null;
      this.flush();
      if (this.tallies.size > 0) this.arm();
    }, this.o.intervalMs);
  }
}
