// Refusals of requests without a valid credential past their client address's anonymous bucket (429s), counted per
// address rather than written one by one: an outsider's flood costs the audit trail the first refusal in full and then
// at most one summary line per address per interval, however fast it comes, so it cannot rotate the trail away.
// A refusal of an authenticated caller never comes here: each of those stays a line of its own.
import type { AuditRefusalSummaryLine } from '../contracts/services.js';
import { isoAt, type Clock, type Timer } from '../lib/clock.js';
import { assert } from '../lib/assert.js';

/** The client of the one tally that counts, together, every address past clientsMax in an interval. */
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
   * Whether this refusal is to be written in full: the first of an address that had none in the last interval. The
   * others are counted, for the summary written when the interval ends.
   */
  refused(client: string, route: string): boolean {
    const key = this.tallies.has(client) || this.tallies.size < this.o.clientsMax ? client : otherClients;
    let tally = this.tallies.get(key);
    if (tally === undefined) {
      tally = { count: 0, sinceMs: 0, routes: new Map() };
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

  /** One line per address that had refusals counted; an address that had none is forgotten (its next is written in full). */
  private flush(): void {
    const time = isoAt(this.o.clock.nowMs());
    for (const [client, tally] of this.tallies) {
      if (tally.count === 0) {
        this.tallies.delete(client);
        continue;
      }
      const { count, sinceMs, routes } = tally;
      this.o.write({ time, principal: null, outcome: 'RATE_LIMITED', client, count, since: isoAt(sinceMs), routes: Object.fromEntries(routes) });
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
