// The DNS view of a manager's applied state: services from the service store (or, without one, from the task records
// that name one) and their healthy replicas (running, its health check if it has one said healthy, and not being
// stopped: a replica the cluster is stopping, by a rollout, a scale-down, a stop, a removal or its worker's drain, and
// every replica of a removed service, leaves DNS at once, not when its stop grace ends), placed tasks, the managers
// and the leader.
// Rebuilt when the applied index moved, at most every rebuildIntervalMs: answers may trail the state by that much,
// well inside their 5 s TTL, and a burst of queries costs one pass over the live tasks.
import type { TaskRecord } from '../../contracts/task-model.js';
import type { ServiceRecord } from '../../contracts/service-model.js';
import type { TaskStore } from '../../kv/task-store.js';
import { stopWanted } from '../../kv/task-rules.js';
import type { Clock } from '../../lib/clock.js';
import { addressOfHostPort, portOfHostPort, type DnsAddress, type DnsManager, type DnsService, type DnsTask, type DnsView } from './view.js';

export interface StateViewOptions {
  store: TaskStore;
  clock: Clock;
  appliedIndex: () => number;
  leaderId: () => string | null;
  /** Every member (voters and learners) with its API address. */
  members: () => readonly { id: string; apiAddress: string }[];
  /** The services the service store holds: they exist (and their ports) even with no replica left. */
  services?: () => Iterable<ServiceRecord>;
  /** Whether this manager has caught up with the cluster since it started (DnsView.catchingUp); default yes. */
  caughtUp?: () => boolean;
  rebuildIntervalMs?: number;
}

interface Built {
  readonly services: Map<string, { portNames: Set<string>; healthy: DnsTask[] }>;
  readonly tasks: Map<string, DnsTask>;
}

const liveStates = ['pending', 'scheduled', 'running', 'lost'] as const;

export class StateDnsView implements DnsView {
  private built: Built | null = null;
  private builtIndex = -1;
  private builtAtMs = -Infinity;

  constructor(private readonly o: StateViewOptions) {}

  service(name: string): DnsService | undefined {
    return this.current().services.get(name);
  }

  task(id: string): DnsTask | undefined {
    return this.current().tasks.get(id);
  }

  managers(): readonly DnsManager[] {
    return this.o.members().map((m) => ({ id: m.id, address: addressOfHostPort(m.apiAddress), apiPort: portOfHostPort(m.apiAddress) }));
  }

  leaderId(): string | null {
    return this.o.leaderId();
  }

  serial(): number {
    return this.o.appliedIndex();
  }

  catchingUp(): boolean {
    return this.o.caughtUp?.() === false;
  }

  private current(): Built {
    const index = this.o.appliedIndex();
    // Monotonic: after a wall-clock step back the view would not be rebuilt for the length of the step.
    const now = this.o.clock.monoMs();
    if (this.built === null || (index !== this.builtIndex && now - this.builtAtMs >= (this.o.rebuildIntervalMs ?? 250))) {
      this.built = this.build();
      this.builtIndex = index;
      this.builtAtMs = now;
    }
    return this.built;
  }

  private build(): Built {
    const { store } = this.o;
    const services: Built['services'] = new Map();
    const tasks: Built['tasks'] = new Map();
    for (const r of this.o.services?.() ?? []) {
      const ports = r.versions.find((v) => v.version === r.version)?.spec.ports ?? [];
      services.set(r.name.toLowerCase(), { portNames: new Set(ports.map((p) => p.name.toLowerCase())), healthy: [] });
    }
    for (const state of liveStates) {
      for (const id of store.idsIn(state)) {
        const t = store.task(id)!;
        const placed = (t.state === 'scheduled' || t.state === 'running') && t.workerId !== null ? this.dnsTask(t) : null;
        if (placed !== null) tasks.set(t.id.toLowerCase(), placed);
        if (t.service === undefined) continue;
        const key = t.service.name.toLowerCase();
        let s = services.get(key);
        if (s === undefined) {
          // A service the store no longer holds was removed: its replicas still stopping are not announced.
          if (this.o.services !== undefined) continue;
          services.set(key, (s = { portNames: new Set(), healthy: [] }));
        }
        for (const p of t.spec.ports ?? []) s.portNames.add(p.name.toLowerCase());
        // Being stopped is what a worker is told (stopWanted): a drained replica still wants to run, elsewhere, but
        // this attempt is stopping, and goes on answering for its whole stop grace otherwise.
        if (placed !== null && isHealthy(t) && !stopWanted(t)) s.healthy.push(placed);
      }
    }
    for (const s of services.values()) s.healthy.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return { services, tasks };
  }

  private dnsTask(t: TaskRecord): DnsTask {
    const ports = new Map<string, number>();
    for (const p of t.ports ?? []) ports.set(p.name.toLowerCase(), p.hostPort);
    // The ports' address is where the task listens; without ports, its worker's host.
    let address: DnsAddress | null = null;
    const first = t.ports?.[0];
    if (first !== undefined) address = addressOfHostPort(first.address);
    if (address === null && t.workerId !== null) {
      const w = this.o.store.storedWorker(t.workerId);
      if (w !== undefined) address = addressOfHostPort(w.apiAddress);
    }
    return { id: t.id, address, ports };
  }
}

/** Healthy: running, and healthy by its check when it has one. */
export function isHealthy(t: TaskRecord): boolean {
  return t.state === 'running' && (t.spec.healthCheck === undefined || t.health === 'healthy');
}
