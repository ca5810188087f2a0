// The service reconciler's decision function against a simulated cluster: the real state machine (service and task
// commands) with simulated workers that place, start, health-check, kill and lose replicas, and leader changes that
// delay decisions or apply them late. Properties, in words:
//  - a decision never leaves a service with more than replicas + parallelism copies (replicas not yet ended);
//  - once the faults stop, the service converges to `replicas` healthy replicas of its current version, no other
//    copies, and a finished rollout (stable or rolled-back);
//  - with its namespace's tasksMax at its replicas (no room for a surge), a decision never takes the namespace past
//    tasksMax (its copies, stopping ones included, are what the quota counts), and the service still converges.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeCommand, type Command } from '../../src/kv/commands.js';
import { KvStateMachine, type ApplyResult } from '../../src/kv/state-machine.js';
import type { ServiceRecord } from '../../src/contracts/service-model.js';
import type { TaskRecord, TaskSpec } from '../../src/contracts/task-model.js';
import { finalTaskStates } from '../../src/contracts/task-model.js';
import { SeededRandom, type Random } from '../../src/lib/random.js';
import { decide, replicaState, type Decision } from '../../src/manager/service-decide.js';

const tickMs = 100;

class Sim {
  index = 0;
  seq = 0;
  now = 1_000_000;
  ids = 0;
  readonly sm = new KvStateMachine();
  readonly workers = ['w1', 'w2', 'w3'];
  readonly down = new Set<string>();
  /** Versions whose health check always fails. */
  readonly bad = new Set<number>();
  held: { d: Decision; revision: number } | null = null;
  skip = 0;
  violations: string[] = [];

  /** The namespace's tasksMax, when it has one: decisions are given the room it leaves. */
  tasksMax: number | null = null;

  constructor(readonly rnd: Random, readonly name = 'web') {
    for (const w of this.workers) this.run({ op: 'worker.register', workerId: w, apiAddress: `127.0.0.1:${9000 + w.length}`, runtime: 'memory', atMs: this.now });
  }

  run(cmd: Command): ApplyResult {
    return this.sm.apply(++this.index, encodeCommand({ clientId: 'sim', seq: ++this.seq, cmd }));
  }

  get service(): ServiceRecord {
    return this.sm.services.service(this.name)!;
  }

  replicas(): TaskRecord[] {
    return [...this.sm.tasks.idsOfService(this.name)].sort().map((id) => this.sm.tasks.task(id)!);
  }

  copies(): number {
    return this.replicas().filter((t) => !finalTaskStates.has(t.state)).length;
  }

  spec(env: string): TaskSpec {
    return {
      image: 'img', env: { V: env }, ports: [{ name: 'http' }],
      healthCheck: { type: 'http', port: 'http', path: '/', intervalS: 0.1, timeoutS: 0.1, retries: 1, startPeriodS: 0 },
    };
  }

  /** Workers place, start, check and stop replicas: one step of each per tick. */
  world(): void {
    const ready = this.workers.filter((w) => !this.down.has(w));
    for (const t of this.replicas()) {
      const rep = { taskId: t.id, workerId: t.workerId ?? '', attempt: t.attempt, term: t.term, containerId: `c-${t.id}-${t.attempt}`, exitCode: null, error: null, retryAtMs: this.now + this.rnd.int(400) };
      if (t.state === 'pending' && t.desiredState === 'run' && t.notBeforeMs <= this.now && ready.length > 0) {
        const w = ready[this.rnd.int(ready.length)]!;
        this.run({ op: 'task.place', term: 1, atMs: this.now, cursor: w, placements: [{ taskId: t.id, attempt: t.attempt, workerId: w }] });
      } else if (t.state === 'scheduled' && t.desiredState === 'run') {
        this.run({ op: 'task.report', atMs: this.now, reports: [{ ...rep, state: 'running', health: 'starting' }] });
      } else if (t.state === 'running' && t.desiredState === 'run' && t.health === 'starting') {
        if (this.bad.has(t.service!.version)) {
          this.run({ op: 'task.report', atMs: this.now, reports: [{ ...rep, state: 'failed', error: { class: 'transient', message: 'unhealthy: http 503 from /' } }] });
        } else {
          this.run({ op: 'task.report', atMs: this.now, reports: [{ ...rep, state: 'running', health: 'healthy' }] });
        }
      } else if ((t.state === 'running' || t.state === 'scheduled') && t.desiredState === 'stop' && this.rnd.next() < 0.5) {
        this.run({ op: 'task.report', atMs: this.now, reports: [{ ...rep, state: 'stopped' }] });
      }
    }
  }

  faults(): void {
    const running = this.replicas().filter((t) => t.state === 'running');
    if (running.length > 0 && this.rnd.next() < 0.08) {
      const t = running[this.rnd.int(running.length)]!;
      this.run({ op: 'task.report', atMs: this.now, reports: [{ taskId: t.id, workerId: t.workerId!, attempt: t.attempt, term: t.term, state: 'failed', containerId: null, exitCode: 137, error: null, retryAtMs: this.now + this.rnd.int(500) }] });
    }
    if (this.rnd.next() < 0.02) {
      const w = this.workers[this.rnd.int(this.workers.length)]!;
      const stored = this.sm.tasks.storedWorker(w)!;
      const lost = this.sm.tasks.activeOn(w).map((t) => ({ taskId: t.id, attempt: t.attempt, retryAtMs: this.now + this.rnd.int(500) }));
      this.run({ op: 'worker.state', workerId: w, state: 'down', atMs: this.now, ifHeartbeats: stored.heartbeats, lost });
      this.down.add(w);
    }
    if (this.down.size > 0 && this.rnd.next() < 0.05) this.revive();
    if (this.rnd.next() < 0.03) this.skip = 1 + this.rnd.int(10); // a leader change: no decisions for a while
  }

  revive(): void {
    for (const w of this.down) this.run({ op: 'worker.register', workerId: w, apiAddress: `127.0.0.1:${9000 + w.length}`, runtime: 'memory', atMs: this.now });
    this.down.clear();
  }

  /** Users scale and update, but only a settled service gets a broken version (so its previous one works). */
  user(version: { n: number }): void {
    const s = this.service;
    const settled = s.rollout.state === 'stable' || s.rollout.state === 'rolled-back';
    const r = this.rnd.next();
    if (r < 0.02) this.run({ op: 'service.update', name: this.name, atMs: this.now, replicas: 1 + this.rnd.int(6) });
    else if (r < 0.03 && settled) {
      const v = this.nextVersion(version);
      if (this.rnd.next() < 0.4) this.bad.add(v);
      this.run({ op: 'service.update', name: this.name, atMs: this.now, spec: this.spec(`v${version.n}`) });
    }
  }

  private nextVersion(version: { n: number }): number {
    version.n++;
    return Math.max(...this.service.versions.map((v) => v.version)) + 1;
  }

  /** One leader pass: decide on the applied state; a leader change may hold the decision and apply it late. */
  leader(): void {
    if (this.held !== null) {
      this.apply(this.held.d, this.held.revision);
      this.held = null;
    }
    if (this.skip > 0) {
      this.skip--;
      return;
    }
    const s = this.service;
    const spec = s.versions.find((v) => v.version === s.version)!.spec;
    const room = this.tasksMax === null ? Number.POSITIVE_INFINITY : this.sm.quotas.room(spec, (ns) => this.sm.tasks.usage.of(ns));
    const d = decide(s, this.replicas().map(replicaState), this.now, room);
    if (d.create === 0 && d.stop.length === 0 && d.rollout === undefined && d.revert !== true) return;
    if (this.rnd.next() < 0.05) this.held = { d, revision: s.revision };
    else this.apply(d, s.revision);
  }

  apply(d: Decision, revision: number): void {
    const create = Array.from({ length: d.create }, () => `t${String(++this.ids).padStart(8, '0')}`);
    const cmd: Command = { op: 'service.reconcile', name: this.name, atMs: this.now, ifRevision: revision, create, stop: [...d.stop] };
    const full = { ...cmd, ...(d.rollout === undefined ? {} : { rollout: d.rollout }), ...(d.revert === true ? { revert: true as const } : {}) };
    // A decision made on an older revision (held across a user's change) is dropped at apply: it created nothing, and
    // the copies a scale-down leaves above the new bound are the next decision's to stop.
    const applied = this.service.revision === revision;
    const r = this.run(full);
    expect(r.ok).toBe(true);
    const s = this.service;
    if (applied && d.create > 0 && this.copies() > s.replicas + s.update.parallelism) {
      this.violations.push(`at ${this.now}: ${this.copies()} copies > ${s.replicas} + ${s.update.parallelism}`);
    }
    const used = this.sm.tasks.usage.of('default').tasks;
    if (applied && d.create > 0 && this.tasksMax !== null && used > this.tasksMax) this.violations.push(`at ${this.now}: the namespace holds ${used} > tasksMax ${this.tasksMax}`);
  }

  converged(): boolean {
    const s = this.service;
    const live = this.replicas().filter((t) => !finalTaskStates.has(t.state));
    const healthy = live.filter((t) => t.desiredState === 'run' && t.state === 'running' && t.health === 'healthy' && t.service!.version === s.version);
    return healthy.length === s.replicas && live.length === s.replicas && (s.rollout.state === 'stable' || s.rollout.state === 'rolled-back');
  }
}

function simulate(seed: number, replicas: number, parallelism: number, order: 'stop-first' | 'start-first', quota = false): { sim: Sim; healedInTicks: number } {
  const sim = new Sim(new SeededRandom(seed));
  if (quota) {
    // No room for a surge: scaling up past it is refused (QUOTA_EXCEEDED), which the simulated user ignores.
    sim.tasksMax = replicas;
    sim.run({ op: 'quota.set', namespace: 'default', tasksMax: replicas });
  }
  sim.run({
    op: 'service.create', name: 'web', atMs: sim.now, replicas, spec: sim.spec('v0'),
    update: { parallelism, delayS: 0, monitorS: 0.3, failureAction: 'rollback', order },
  });
  const version = { n: 0 };
  for (let i = 0; i < 600; i++) {
    sim.now += tickMs;
    sim.faults();
    sim.user(version);
    sim.world();
    sim.leader();
  }
  // Heal: every worker back, no more faults or changes.
  sim.revive();
  sim.skip = 0;
  for (let i = 1; i <= 3000; i++) {
    sim.now += tickMs;
    sim.world();
    sim.leader();
    if (sim.converged()) return { sim, healedInTicks: i };
  }
  return { sim, healedInTicks: -1 };
}

/** A run of the simulation: its seed, replicas, update.parallelism and update.order. */
const scenarioArbitraries = [
  fc.integer({ min: 0, max: 0x7fffffff }),
  fc.integer({ min: 1, max: 6 }),
  fc.integer({ min: 1, max: 3 }),
  fc.constantFrom<'stop-first' | 'start-first'>('stop-first', 'start-first'),
] as const;

describe('service reconciler decision (property)', () => {
  it('never exceeds replicas + parallelism copies, and converges to replicas healthy of the current version after faults', () => {
    fc.assert(
      fc.property(
        ...scenarioArbitraries,
        (seed, replicas, parallelism, order) => {
          const { sim, healedInTicks } = simulate(seed, replicas, parallelism, order);
          const s = sim.service;
          const context = `seed ${seed}, replicas ${replicas}, parallelism ${parallelism}, ${order}; service ${JSON.stringify({ replicas: s.replicas, version: s.version, rollout: s.rollout })}`;
          expect(sim.violations, context).toEqual([]);
          expect(healedInTicks, `did not converge: ${context}; replicas ${JSON.stringify(sim.replicas().filter((t) => !finalTaskStates.has(t.state)).map((t) => [t.id, t.service, t.state, t.desiredState, t.health]))}`).toBeGreaterThan(0);
        },
      ),
      // CI's counterexample: a held decision dropped at apply after a scale from 6 to 4 was counted as a create.
      { numRuns: 60, examples: [[7, 5, 1, 'stop-first']] },
    );
  });

  it('with tasksMax at its replicas, never takes the namespace past tasksMax (a start-first rollout goes stop-first), and still converges', () => {
    fc.assert(
      fc.property(
        ...scenarioArbitraries,
        (seed, replicas, parallelism, order) => {
          const { sim, healedInTicks } = simulate(seed, replicas, parallelism, order, true);
          const context = `seed ${seed}, replicas ${replicas}, parallelism ${parallelism}, ${order}, tasksMax ${replicas}; rollout ${JSON.stringify(sim.service.rollout)}`;
          expect(sim.violations, context).toEqual([]);
          expect(healedInTicks, `did not converge: ${context}`).toBeGreaterThan(0);
        },
      ),
      { numRuns: 40, examples: [[1, 3, 1, 'start-first'], [2, 4, 2, 'stop-first']] },
    );
  });
});

describe('service reconciler decision (examples)', () => {
  const base = (o: Partial<ServiceRecord> = {}): ServiceRecord => ({
    name: 'web', replicas: 3, version: 2, previousVersion: 1,
    versions: [{ version: 1, spec: { image: 'a' }, createdAtMs: 0 }, { version: 2, spec: { image: 'b' }, createdAtMs: 100 }],
    update: { parallelism: 1, delayS: 0, monitorS: 5, failureAction: 'rollback', order: 'stop-first' },
    rollout: { state: 'updating', fromVersion: 1, startedAtMs: 100, monitorUntilMs: 0, message: null },
    revision: 3, createdAtMs: 0, updatedAtMs: 100, ...o,
  });
  const replica = (id: string, version: number, o: Partial<ReturnType<typeof replicaState>> = {}): ReturnType<typeof replicaState> => ({
    id, version, state: 'running', desiredState: 'run', healthy: true, unhealthy: false, failed: false, reason: null, createdAtMs: version === 1 ? 10 : 200, ...o,
  });
  const old = [replica('a', 1), replica('b', 1), replica('c', 1)];

  it('stop-first: one old replica stops as one new starts; the next batch waits for monitorS', () => {
    expect(decide(base(), old, 1000)).toMatchObject({ create: 1, stop: ['c'], rollout: { monitorUntilMs: null } });
    const s = base({ rollout: { state: 'updating', fromVersion: 1, startedAtMs: 100, monitorUntilMs: null, message: null } });
    const mixed = [replica('a', 1), replica('b', 1), replica('d', 2)];
    expect(decide(s, mixed, 2000)).toMatchObject({ create: 0, stop: [], rollout: { monitorUntilMs: 7000 }, wakeAtMs: 7000 });
    expect(decide(base({ rollout: { ...s.rollout, monitorUntilMs: 7000 } }), mixed, 3000)).toEqual({ create: 0, stop: [], wakeAtMs: 7000 });
  });

  it('stop-first: the next batch stops its old replica while the last one still stops, and starts its replacement when that one ends', () => {
    // c (version 1) still stops (a long stop grace); d replaced it and is healthy and watched long enough.
    const s = base({ rollout: { state: 'updating', fromVersion: 1, startedAtMs: 100, monitorUntilMs: 7000, message: null } });
    const draining = [replica('a', 1), replica('b', 1), replica('c', 1, { desiredState: 'stop' }), replica('d', 2)];
    // 4 copies = replicas + parallelism: no room for b's replacement yet, but b stops now (2 healthy remain: a and d).
    expect(decide(s, draining, 8000)).toMatchObject({ create: 0, stop: ['b'], rollout: { monitorUntilMs: null } });
    const next = base({ rollout: { ...s.rollout, monitorUntilMs: null } });
    const stillBoth = [replica('a', 1), replica('b', 1, { desiredState: 'stop' }), replica('c', 1, { desiredState: 'stop' }), replica('d', 2)];
    // Both still stopping: no room, and the batch is not healthy without its replacement, so a stays.
    expect(decide(next, stillBoth, 8500)).toEqual({ create: 0, stop: [], wakeAtMs: null });
    // c ended: its room goes to b's replacement.
    expect(decide(next, [replica('a', 1), replica('b', 1, { desiredState: 'stop' }), replica('d', 2)], 9000)).toEqual({ create: 1, stop: [], wakeAtMs: null });
  });

  it('start-first: the new replica starts before any old one stops, and each healthy new one retires an old one', () => {
    const s = base({ update: { ...base().update, order: 'start-first' } });
    expect(decide(s, old, 1000)).toMatchObject({ create: 1, stop: [] });
    const starting = [...old, replica('d', 2, { healthy: false })];
    expect(decide({ ...s, rollout: { ...s.rollout, monitorUntilMs: null } }, starting, 1100)).toEqual({ create: 0, stop: [], wakeAtMs: null });
    expect(decide({ ...s, rollout: { ...s.rollout, monitorUntilMs: null } }, [...old, replica('d', 2)], 1200)).toMatchObject({ stop: ['c'] });
  });

  it('a scale down stops the copies beyond replicas, which count until they end: no copy starts meanwhile (README: at most as many as before)', () => {
    const stable = base({ version: 1, rollout: { state: 'stable', fromVersion: null, startedAtMs: 0, monitorUntilMs: null, message: null } });
    const six = ['a', 'b', 'c', 'd', 'e', 'f'].map((id) => replica(id, 1));
    const down = decide({ ...stable, replicas: 2 }, six, 1000);
    expect(down).toMatchObject({ create: 0 });
    expect(down.stop).toHaveLength(4);
    const stopping = six.map((r) => (down.stop.includes(r.id) ? { ...r, desiredState: 'stop' as const } : r));
    expect(decide({ ...stable, replicas: 2 }, stopping, 1100)).toEqual({ create: 0, stop: [], wakeAtMs: null });
    // Scaled up again to 4 while those 4 stop: 6 copies >= 4 + 1, so none starts until they have ended.
    expect(decide({ ...stable, replicas: 4 }, stopping, 1200)).toEqual({ create: 0, stop: [], wakeAtMs: null });
    expect(decide({ ...stable, replicas: 4 }, stopping.filter((r) => r.desiredState === 'run'), 1300)).toEqual({ create: 2, stop: [], wakeAtMs: null });
  });

  it('start-first with no room in the namespace for a copy more goes stop-first, and a replacement waits for room', () => {
    const s = base({ update: { ...base().update, order: 'start-first' } });
    expect(decide(s, old, 1000, 1)).toMatchObject({ create: 1, stop: [] });
    expect(decide(s, old, 1000, 0)).toMatchObject({ create: 0, stop: ['c'] });
    // c still stops, and counts in the namespace: d waits for it to end.
    const next = { ...s, rollout: { ...s.rollout, monitorUntilMs: null } };
    expect(decide(next, [replica('a', 1), replica('b', 1), replica('c', 1, { desiredState: 'stop' })], 1100, 0)).toEqual({ create: 0, stop: [], wakeAtMs: null });
    expect(decide(next, [replica('a', 1), replica('b', 1)], 1200, 1)).toEqual({ create: 1, stop: [], wakeAtMs: null });
    // A scale up, or a paused service's missing replica, waits likewise.
    const stable = base({ version: 1, rollout: { state: 'stable', fromVersion: null, startedAtMs: 0, monitorUntilMs: null, message: null } });
    expect(decide({ ...stable, replicas: 5 }, old, 1000, 1)).toEqual({ create: 1, stop: [], wakeAtMs: null });
    expect(decide({ ...stable, rollout: { ...stable.rollout, state: 'paused' } }, old.slice(1), 1000, 0)).toEqual({ create: 0, stop: [], wakeAtMs: null });
  });

  it('a failing new replica rolls back, or pauses with failureAction pause', () => {
    const failing = [replica('a', 1), replica('b', 1), replica('d', 2, { unhealthy: true, healthy: false, reason: 'unhealthy: http 503 from /' })];
    expect(decide(base(), failing, 1000)).toMatchObject({ revert: true, rollout: { message: 'rolled back: replica d of version 2 failed: unhealthy: http 503 from /' } });
    const paused = decide(base({ update: { ...base().update, failureAction: 'pause' } }), failing, 1000);
    expect(paused).toMatchObject({ create: 0, stop: [], rollout: { state: 'paused', message: 'paused: replica d of version 2 failed: unhealthy: http 503 from /' } });
    expect(paused.revert).toBeUndefined();
    // No reason known: what happened, still.
    const bare = [replica('a', 1), replica('b', 1), replica('d', 2, { unhealthy: true, healthy: false })];
    expect(decide(base(), bare, 1000).rollout?.message).toBe('rolled back: replica d of version 2 turned unhealthy');
  });

  it("the message carries the health check's reason of a replica still running unhealthy, from its history, bounded", () => {
    // As the store keeps it: the verdict on attempt 1 is in its history only (no error while it runs).
    const record = (reason: string, o: Partial<TaskRecord> = {}): TaskRecord => ({
      id: 'd', spec: { image: 'b', healthCheck: { type: 'http', port: 'http', intervalS: 1, timeoutS: 1, retries: 1, startPeriodS: 0 } }, state: 'running', desiredState: 'run',
      workerId: 'w1', attempt: 1, term: 1, containerId: 'c', exitCode: null, error: null, notBeforeMs: 0, createdAt: new Date(200).toISOString(), updatedAt: new Date(300).toISOString(),
      history: [
        { state: 'pending', attempt: 1, atMs: 200, workerId: null },
        { state: 'running', attempt: 1, atMs: 250, workerId: 'w1', reason: 'running on w1' },
        { state: 'running', attempt: 1, atMs: 300, workerId: 'w1', reason },
      ],
      service: { name: 'web', version: 2 }, health: 'unhealthy', ...o,
    });
    const d = replicaState(record('unhealthy: http 404 from /nope'));
    expect(d).toMatchObject({ unhealthy: true, reason: 'unhealthy: http 404 from /nope' });
    expect(decide(base(), [replica('a', 1), replica('b', 1), d], 1000).rollout?.message).toBe('rolled back: replica d of version 2 failed: unhealthy: http 404 from /nope');
    // An earlier attempt's verdict is not this one's: its error (how it ended) is the reason then.
    const later = record('unhealthy: old', { attempt: 2, error: { class: 'transient', message: 'exited with code 1' } });
    expect(replicaState(later).reason).toBe('exited with code 1');
    const long = decide(base(), [replica('a', 1), replica('b', 1), replicaState(record(`unhealthy: ${'x'.repeat(5000)}`))], 1000).rollout!.message!;
    expect(long.length).toBeLessThan(300);
    expect(long).toMatch(/^rolled back: replica d of version 2 failed: unhealthy: x+…$/);
  });

  it('a replica its worker drain is stopping counts as healthy for no rollout: a stop-first batch does not stop another beside it', () => {
    const rec = (id: string, draining: boolean): TaskRecord => ({
      id, spec: { image: 'b' }, state: 'running', desiredState: 'run', workerId: 'w1', attempt: 1, term: 1, containerId: 'c', exitCode: null, error: null,
      notBeforeMs: 0, createdAt: new Date(200).toISOString(), updatedAt: new Date(300).toISOString(), history: [], service: { name: 'web', version: 1 },
      ...(draining ? { draining: true } : {}),
    });
    expect(replicaState(rec('a', true)).healthy).toBe(false);
    expect(replicaState(rec('b', false)).healthy).toBe(true);
    // 2 replicas, parallelism 1, an update to version 2 under way: with one old replica draining, no other healthy
    // one may stop (only 1 healthy; replicas - parallelism = 1 must stay).
    const s = { ...base(), replicas: 2 };
    const d = decide(s, [replicaState(rec('a', true)), replicaState(rec('b', false))], 1000);
    expect(d.stop).not.toContain('b');
  });

  it("judges a version by its replicas' own failures, not by a worker lost or an assignment that could not be delivered", () => {
    const record = (attempt: number, error: TaskRecord['error'], o: Partial<TaskRecord> = {}): TaskRecord => ({
      id: 'd', spec: { image: 'b' }, state: 'pending', desiredState: 'run', workerId: null, attempt, term: 1, containerId: null, exitCode: null, error,
      notBeforeMs: 0, createdAt: new Date(200).toISOString(), updatedAt: new Date(300).toISOString(), history: [], service: { name: 'web', version: 2 }, ...o,
    });
    const machinery = [
      'the assignment to worker w2 failed: cannot reach http://127.0.11.5:21032/v1/tasks (ECONNREFUSED)',
      'worker w2 was lost',
      'preempted by high-priority task t1',
      'the container c1 disappeared',
    ];
    for (const message of machinery) {
      const d = replicaState(record(2, { class: 'transient', message }));
      expect(d.failed, message).toBe(false);
      expect(decide(base(), [replica('a', 1), replica('b', 1), d], 1000).revert, message).toBeUndefined();
    }
    const own = [
      { class: 'permanent' as const, message: 'the container exited with code 1' },
      { class: 'permanent' as const, message: 'image b is not present' },
      { class: 'transient' as const, message: 'unhealthy: http 404 from /healthz' },
    ];
    for (const error of own) {
      const d = replicaState(record(2, error));
      expect(d.failed, error.message).toBe(true);
      expect(decide(base(), [replica('a', 1), replica('b', 1), d], 1000), error.message).toMatchObject({ revert: true, rollout: { message: `rolled back: replica d of version 2 failed: ${error.message}` } });
    }
    // A first attempt has not failed, whatever its record says; a later one without an error is taken as failed.
    expect(replicaState(record(1, null)).failed).toBe(false);
    expect(replicaState(record(3, null)).failed).toBe(true);
  });

  it('a rollback asked for pauses when a replica of the version it goes to fails; an automatic one replaces the replica', () => {
    // After an automatic rollback from 2 to 1, the previous version is 2, the one that failed: `service rollback` goes there.
    const asked = base({ rollout: { state: 'rolling-back', fromVersion: 1, startedAtMs: 100, monitorUntilMs: null, message: null } });
    const failing = [replica('a', 1), replica('d', 2, { failed: true, healthy: false, state: 'pending', reason: 'image b is not present' })];
    const paused = decide(asked, failing, 1000);
    expect(paused).toMatchObject({ create: 0, stop: [], rollout: { state: 'paused', message: 'paused: replica d of version 2 failed: image b is not present' } });
    expect(paused.revert).toBeUndefined();
    const automatic = base({ rollout: { ...asked.rollout, message: 'rolled back: replica x of version 3 failed' } });
    expect(decide(automatic, failing, 1000).rollout?.state).not.toBe('paused');
  });

  it('scales down the least useful first and never above replicas + parallelism', () => {
    const s = base({ version: 1, previousVersion: null, rollout: { state: 'stable', fromVersion: null, startedAtMs: 0, monitorUntilMs: null, message: null }, replicas: 1 });
    const d = decide(s, [replica('a', 1), replica('b', 1, { state: 'pending', healthy: false }), replica('c', 1, { healthy: false })], 1000);
    expect(d).toMatchObject({ create: 0, stop: ['b', 'c'] });
    const up = decide({ ...s, replicas: 5 }, [replica('a', 1), replica('x', 1, { desiredState: 'stop' }), replica('y', 1, { desiredState: 'stop' })], 1000);
    expect(up.create).toBe(3); // 5 + 1 copies at most: 3 alive or stopping already
  });

  it('scales down keeping the spread: of equals, one on the worker holding most goes first (6 to 2 left both on one worker: outside tester)', () => {
    const s = base({ version: 1, previousVersion: null, rollout: { state: 'stable', fromVersion: null, startedAtMs: 0, monitorUntilMs: null, message: null }, replicas: 2 });
    // The newest first, as before, would stop d, e, f and c, leaving a and b on w1.
    const six = ['a', 'b', 'c', 'd', 'e', 'f'].map((id, i) => replica(id, 1, { createdAtMs: 10 + i, workerId: i < 2 ? 'w1' : i < 4 ? 'w2' : 'w3' }));
    const d = decide(s, six, 1000);
    const kept = six.filter((r) => !d.stop.includes(r.id)).map((r) => r.workerId);
    expect(new Set(kept).size).toBe(2);
    // Usefulness still comes first: an unhealthy replica goes before a healthy one on a more crowded worker.
    const mixed = [replica('a', 1, { workerId: 'w1' }), replica('b', 1, { workerId: 'w1' }), replica('c', 1, { workerId: 'w2', healthy: false, unhealthy: true })];
    expect(decide({ ...s, replicas: 2 }, mixed, 1000)).toMatchObject({ stop: ['c'] });
  });
});
