// Whether another follower answers, as a follower's GET /status needs to know. Raft has followers say nothing to each
// other, so between two of them an open connection is all the transport knows, and a follower frozen by SIGSTOP (its
// kernel still accepts) looks reachable: /status on the other follower said "up" while the leader said "degraded".
// A probe asks the peer's GET /health; a verdict is kept for ageMsMax, so a monitor polling /status costs each peer
// at most one request per ageMsMax, and at most one probe per peer is in flight. A probe not answered within
// timeoutMs counts as no answer at once, whatever its request does (a new connection to a frozen process can wait
// in its TLS handshake past the request's own deadline): /status never waits longer than that.
import type { Clock } from '../lib/clock.js';

export interface FollowerProbeOptions {
  clock: Clock;
  /** How long a verdict is kept. */
  ageMsMax: number;
  /** How long a probe is waited for. */
  timeoutMs: number;
  /** Whether the manager at this API address answers GET /health (never rejects). */
  ask(apiAddress: string): Promise<boolean>;
}

export class FollowerProbe {
  /** Ages and waits here are on clock.monoMs(): a wall-clock step must not keep a stale verdict or drop a fresh one. */
  private readonly verdicts = new Map<string, { answered: boolean; atMs: number }>();
  /** The probe under way per address, and when it began. */
  private readonly inFlight = new Map<string, { answer: Promise<boolean>; sinceMs: number }>();

  constructor(private readonly o: FollowerProbeOptions) {}

  /** Whether the manager at `apiAddress` answered its latest probe, asking again when that one is too old. */
  answers(apiAddress: string): Promise<boolean> {
    const now = this.o.clock.monoMs();
    const v = this.verdicts.get(apiAddress);
    if (v !== undefined && now - v.atMs < this.o.ageMsMax) return Promise.resolve(v.answered);
    let probe = this.inFlight.get(apiAddress);
    if (probe === undefined) {
      const answer = this.o.ask(apiAddress).then((answered) => {
        this.verdicts.set(apiAddress, { answered, atMs: this.o.clock.monoMs() });
        this.inFlight.delete(apiAddress);
        return answered;
      });
      probe = { answer, sinceMs: now };
      this.inFlight.set(apiAddress, probe);
    }
    // Still waiting after timeoutMs: no answer, now and until that probe ends (no second one meanwhile).
    const leftMs = probe.sinceMs + this.o.timeoutMs - now;
    if (leftMs <= 0) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const timer = this.o.clock.setTimeout(() => resolve(false), leftMs);
      void probe.answer.then((answered) => {
        timer.cancel();
        resolve(answered);
      });
    });
  }

  /** Forgets verdicts of addresses no member has any more (bounded by the members). */
  keepOnly(apiAddresses: ReadonlySet<string>): void {
    for (const a of this.verdicts.keys()) if (!apiAddresses.has(a)) this.verdicts.delete(a);
  }
}
