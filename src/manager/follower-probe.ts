// Whether another follower answers, as a follower's GET /status needs to know. Raft has followers say nothing to each
// other, so between two of them an open connection is all the transport knows, and a follower frozen by SIGSTOP (its
// kernel still accepts) looks reachable: /status on the other follower said "up" while the leader said "degraded".
// A probe asks the peer's GET /health with a short timeout; a verdict is kept for maxAgeMs, so a monitor polling
// /status costs each peer at most one request per maxAgeMs, and at most one probe per peer is in flight.
import type { Clock } from '../lib/clock.js';

export interface FollowerProbeOptions {
  clock: Clock;
  /** How long a verdict is kept. */
  maxAgeMs: number;
  /** Whether the manager at this API address answers GET /health in time (never rejects). */
  ask(apiAddress: string): Promise<boolean>;
}

export class FollowerProbe {
  private readonly verdicts = new Map<string, { answered: boolean; atMs: number }>();
  private readonly inFlight = new Map<string, Promise<boolean>>();

  constructor(private readonly o: FollowerProbeOptions) {}

  /** Whether the manager at `apiAddress` answered its latest probe, asking again when that one is too old. */
  answers(apiAddress: string): Promise<boolean> {
    const v = this.verdicts.get(apiAddress);
    if (v !== undefined && this.o.clock.nowMs() - v.atMs < this.o.maxAgeMs) return Promise.resolve(v.answered);
    let p = this.inFlight.get(apiAddress);
    if (p === undefined) {
      p = this.o.ask(apiAddress).then((answered) => {
        this.verdicts.set(apiAddress, { answered, atMs: this.o.clock.nowMs() });
        this.inFlight.delete(apiAddress);
        return answered;
      });
      this.inFlight.set(apiAddress, p);
    }
    return p;
  }

  /** Forgets verdicts of addresses no member has any more (bounded by the members). */
  keepOnly(apiAddresses: ReadonlySet<string>): void {
    for (const a of this.verdicts.keys()) if (!apiAddresses.has(a)) this.verdicts.delete(a);
  }
}
