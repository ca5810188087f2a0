// What the leader knows of the command version each member understands (as etcd's cluster version): it proposes
// nothing newer than the lowest, so no member ever meets an entry it stops on (KvStateMachine.applyEntry). Members
// are asked their GET /health by every manager, whatever its role (so a new leader knows them at once), one request
// in flight per member; everyone is asked again on a membership or leadership change, and every retryMs while one is
// unknown or older than this manager. A member that does not say
// (a build before the field, or one not answering yet) counts as commandVersionUnsaid.
import type { Clock, Timer } from '../lib/clock.js';
import type { Logger } from 'pino';
import type { fitCommand } from '../kv/commands.js';
import { MinkubeError } from '../lib/errors.js';

export interface ClusterVersionOptions {
  self: string;
  /** This manager's command version. */
  own: number;
  /** What a member that does not say counts as. */
  unsaid: number;
  clock: Clock;
  logger: Pick<Logger, 'warn' | 'info'>;
  /** How long until members not known to be at `own` are asked again. */
  retryMs: number;
  /** The command version a member says it understands; null when it did not answer; `unsaid` when it answered without one. Never rejects. */
  ask(member: string): Promise<number | null>;
}

export class ClusterVersion {
  /** The latest answer per member (absent: no answer yet since the last change). */
  private readonly said = new Map<string, number>();
  private readonly inFlight = new Set<string>();
  private members: readonly string[] = [];
  private leading = false;
  private closed = false;
  /** lowest() as last computed (it is asked on every proposal); null once anything it rests on changes. */
  private lowestCached: { version: number; older: string[] } | null = null;
  private timer: Timer | null = null;
  private lastLogged = '';

  constructor(private readonly o: ClusterVersionOptions) {}

  /**
   * Leadership or membership changed. Every manager asks, whatever its role, and keeps what members said across
   * leadership changes: a manager elected leader then knows its members' versions at once, rather than counting each
   * as `unsaid` until it answers (a worker registering in that moment lost its engine). A leadership change asks
   * everyone again; a member removed is forgotten.
   */
  update(leading: boolean, members: readonly string[]): void {
    const sameMembers = members.length === this.members.length && members.every((m) => this.members.includes(m));
    if (sameMembers && leading === this.leading) return;
    this.leading = leading;
    this.members = [...members];
    this.lowestCached = null;
    for (const m of [...this.said.keys()]) if (!members.includes(m)) this.said.delete(m);
    if (!leading) this.lastLogged = '';
    this.askAll();
  }

  /** The version each member is counted at (this one's own included); empty when not leading. */
  versions(): Map<string, number> {
    const out = new Map<string, number>();
    if (!this.leading) return out;
    for (const m of this.members) out.set(m, m === this.o.self ? this.o.own : (this.said.get(m) ?? this.o.unsaid));
    return out;
  }

  /** What a member said, as far as this manager knows, whatever its role (undefined: not asked or no answer yet). */
  versionOf(member: string): number | undefined {
    if (member === this.o.self) return this.o.own;
    return this.said.get(member);
  }

  /** The highest version every member understands (this manager's own when not leading: the leader judges). */
  lowest(): { version: number; older: string[] } {
    if (!this.leading) return { version: this.o.own, older: [] };
    if (this.lowestCached !== null) return this.lowestCached;
    let version = this.o.own;
    for (const v of this.versions().values()) version = Math.min(version, v);
    const older = [...this.versions()].filter(([, v]) => v < this.o.own).map(([m]) => m).sort();
    this.lowestCached = { version, older };
    return this.lowestCached;
  }

  close(): void {
    this.leading = false;
    this.closed = true;
    this.lowestCached = null;
    this.cancel();
  }

  private askAll(): void {
    for (const m of this.members) if (m !== this.o.self) this.askOne(m);
    this.logChange();
    this.scheduleRetry();
  }

  private askOne(member: string): void {
    if (this.closed || this.inFlight.has(member)) return;
    this.inFlight.add(member);
    void this.o.ask(member).then((v) => {
      this.inFlight.delete(member);
      if (this.closed || !this.members.includes(member)) return;
      if (v !== null) this.said.set(member, v);
      this.lowestCached = null;
      this.logChange();
    });
  }

  private scheduleRetry(): void {
    if (this.timer !== null || this.closed) return;
    this.timer = this.o.clock.setTimeout(() => {
      this.timer = null;
      if (this.closed) return;
      const pending = this.members.filter((m) => m !== this.o.self && (this.said.get(m) ?? this.o.unsaid) < this.o.own);
      for (const m of pending) this.askOne(m);
      if (pending.length > 0) this.scheduleRetry();
    }, this.o.retryMs);
  }

  private cancel(): void {
    this.timer?.cancel();
    this.timer = null;
  }

  /** Logs once per change of the cluster's version or of who holds it back. */
  private logChange(): void {
    if (!this.leading) return;
    const { version, older } = this.lowest();
    const key = `${version}:${older.join(',')}`;
    if (key === this.lastLogged) return;
    const first = this.lastLogged === '';
    this.lastLogged = key;
    if (older.length > 0) {
      const said = older.map((m) => `${m} (${this.said.has(m) ? `command version ${this.said.get(m)}` : `has not said yet, counted as ${this.o.unsaid}`})`);
      this.o.logger.warn({ commandVersion: version, own: this.o.own, older }, `the cluster runs at command version ${version} because ${said.join(', ')} ${older.length === 1 ? 'is' : 'are'} older than this manager (${this.o.own}): commands newer than ${version} are refused or proposed without their newer fields until ${older.length === 1 ? 'it is' : 'they are'} upgraded`);
    } else if (!first) {
      this.o.logger.info({ commandVersion: version }, `every member understands command version ${version}`);
    }
  }
}

/**
 * The driver's fit (RaftNodeDriver options): a command proposed as the members' lowest version takes it; one that
 * cannot be made so is refused, naming the members to upgrade.
 */
export function fitToCluster(cv: Pick<ClusterVersion, 'lowest'>, fit: typeof fitCommand): (data: Uint8Array) => { readonly data: Uint8Array } | { readonly error: MinkubeError } {
  return (data) => {
    const { version, older } = cv.lowest();
    const r = fit(data, version);
    if ('data' in r) return r;
    const message = `this command is of command version ${r.newer}, and ${older.join(', ')} of this cluster ${older.length === 1 ? 'understands' : 'understand'} only ${version}: upgrade ${older.join(', ')} first (minkube status shows each manager's command version)`;
    return { error: new MinkubeError('UPGRADE_REQUIRED', message, { details: { commandVersion: r.newer, clusterCommandVersion: version, upgrade: older } }) };
  };
}

/** What a member's GET /health says: its commandVersion, `unsaid` for an answer without one, null for no answer. */
export function commandVersionSaid(status: number, text: string, unsaid: number): number | null {
  if (status < 200 || status > 299) return null;
  try {
    const v = (JSON.parse(text) as { commandVersion?: unknown }).commandVersion;
    return typeof v === 'number' && Number.isSafeInteger(v) && v >= 1 ? v : unsaid;
  } catch {
    return unsaid;
  }
}
