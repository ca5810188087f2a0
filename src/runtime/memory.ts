// MemoryRuntime: an in-memory fake ContainerRuntime for scheduler and worker tests and the placement benchmark.
// Containers "run" on the injected clock for a chosen duration (or until stopped); failures can be injected.
import { systemClock, type Clock } from '../lib/clock.js';
import { labelsMatch, tailLines, validateRunSpec } from './spec.js';
import {
  RuntimeFailure, type ContainerInfo, type ContainerRuntime, type ExitStatus, type RunSpec, type RuntimeFailureReason,
} from './types.js';

/** What one container does. durationMs null: it runs until stopped. */
export interface MemoryBehaviour {
  durationMs: number | null;
  exitCode: number;
  logs: string;
  /** Written after the container started, each afterMs from its start (on the runtime's clock). */
  laterOutput?: ReadonlyArray<{ afterMs: number; text: string }>;
  /** run() fails with this instead of starting anything. */
  runFailure?: RuntimeFailureReason;
  /** At durationMs the OOM killer ends it, as the kernel ends a Docker container over its memory limit (exit 137). */
  oomKilled?: boolean;
}

export type MemoryOp = 'ping' | 'run' | 'wait' | 'stop' | 'remove' | 'inspect' | 'list' | 'logs' | 'followLogs';

interface MemoryContainer {
  info: ContainerInfo;
  logs: string;
  timer?: { cancel(): void };
  /** Timers of laterOutput not yet written. */
  outputTimers: Array<{ cancel(): void }>;
  waiters: Array<() => void>;
  /** Woken on every write and at the exit (followLogs). */
  readers: Set<() => void>;
}

/** The "machine" the containers live on: runtimes built on the same host see the same containers (re-adoption). */
export class MemoryHost {
  readonly containers = new Map<string, MemoryContainer>();
  /** name -> id: run() checks name conflicts in O(1), for benchmarks with many containers. */
  readonly names = new Map<string, string>();
  nextId = 1;
}

export interface MemoryRuntimeOptions {
  host?: MemoryHost;
  clock?: Clock;
  /** Per-spec behaviour; anything it leaves out comes from the defaults below. */
  behave?: (spec: RunSpec) => Partial<MemoryBehaviour>;
  durationMsDefault?: number | null;
  exitCodeDefault?: number;
  /** Exit code of a container ended by stop() (SIGTERM's 128 + 15 by default). */
  stopExitCode?: number;
  /**
   * What engine() answers (absent: none, as the process runtime): runtimes given one string are one engine to the
   * worker, which leaves its containers to another instance of its id there once replaced (give them one host too).
   */
  engine?: string;
}

export class MemoryRuntime implements ContainerRuntime {
  readonly kind = 'memory' as const;
  readonly host: MemoryHost;
  /** How many times each operation was called: for tests that assert what the worker asked for. */
  readonly calls: Record<MemoryOp, number> = { ping: 0, run: 0, wait: 0, stop: 0, remove: 0, inspect: 0, list: 0, logs: 0, followLogs: 0 };
  private readonly clock: Clock;
  private readonly behave: (spec: RunSpec) => MemoryBehaviour;
  private readonly stopExitCode: number;
  private readonly injected: Array<{ op: MemoryOp; reason: RuntimeFailureReason }> = [];
  private unreachable = false;
  private readonly engineId: string | undefined;

  constructor(opts: MemoryRuntimeOptions = {}) {
    this.host = opts.host ?? new MemoryHost();
    this.engineId = opts.engine;
    this.clock = opts.clock ?? systemClock;
    const defaults = { durationMs: opts.durationMsDefault ?? null, exitCode: opts.exitCodeDefault ?? 0, logs: '' };
    this.behave = (spec) => ({ ...defaults, ...(opts.behave?.(spec) ?? {}) });
    this.stopExitCode = opts.stopExitCode ?? 143;
  }

  /** The next call of op fails with reason (once per injection, in order). */
  failNext(op: MemoryOp, reason: RuntimeFailureReason): void {
    this.injected.push({ op, reason });
  }

  /** While set, every call fails as if the daemon were down. */
  setUnreachable(unreachable: boolean): void {
    this.unreachable = unreachable;
  }

  async ping(): Promise<void> {
    this.enter('ping');
  }

  /** The identity it was given; undefined while unreachable, as a Docker engine that does not answer. */
  async engine(): Promise<string | undefined> {
    return this.unreachable ? undefined : this.engineId;
  }

  async run(spec: RunSpec): Promise<{ id: string }> {
    this.enter('run');
    validateRunSpec(spec, { commandRequired: false });
    const behaviour = this.behave(spec);
    if (behaviour.runFailure !== undefined) {
      throw new RuntimeFailure(behaviour.runFailure, `memory runtime: run ${spec.name} fails (${behaviour.runFailure})`);
    }
    if (this.host.names.has(spec.name)) throw new RuntimeFailure('name-conflict', `the name ${spec.name} is already in use`);
    const id = `m-${String(this.host.nextId++).padStart(8, '0')}`;
    const c: MemoryContainer = {
      info: {
        id, name: spec.name, image: spec.image, labels: { ...spec.labels }, state: 'running', exitCode: null,
        startedAt: this.clock.nowMs(),
      },
      logs: behaviour.logs,
      outputTimers: [],
      waiters: [],
      readers: new Set(),
    };
    for (const out of behaviour.laterOutput ?? []) {
      c.outputTimers.push(this.clock.setTimeout(() => this.write(c, out.text), out.afterMs));
    }
    this.host.containers.set(id, c);
    this.host.names.set(spec.name, id);
    if (behaviour.durationMs !== null) {
      const oomKilled = behaviour.oomKilled === true;
      c.timer = this.clock.setTimeout(() => this.finish(c, oomKilled ? 137 : behaviour.exitCode, oomKilled), behaviour.durationMs);
    }
    return { id };
  }

  async wait(id: string, opts: { signal?: AbortSignal } = {}): Promise<ExitStatus> {
    this.enter('wait');
    const c = this.host.containers.get(id);
    if (c === undefined) throw new RuntimeFailure('container-not-found', `no such container: ${id}`);
    if (c.info.state !== 'exited') await this.untilExited(c, opts.signal);
    return c.info.oomKilled === true ? { exitCode: c.info.exitCode, oomKilled: true } : { exitCode: c.info.exitCode };
  }

  async stop(id: string, _timeoutMs: number): Promise<void> {
    this.enter('stop');
    const c = this.host.containers.get(id);
    if (c !== undefined && c.info.state !== 'exited') this.finish(c, this.stopExitCode);
  }

  async remove(id: string): Promise<void> {
    this.enter('remove');
    const c = this.host.containers.get(id);
    if (c === undefined) return;
    if (c.info.state !== 'exited') this.finish(c, 137);
    this.host.containers.delete(id);
    this.host.names.delete(c.info.name);
  }

  async inspect(id: string): Promise<ContainerInfo | null> {
    this.enter('inspect');
    const c = this.host.containers.get(id);
    return c === undefined ? null : { ...c.info, labels: { ...c.info.labels } };
  }

  async list(labelFilter: Record<string, string>): Promise<ContainerInfo[]> {
    this.enter('list');
    return [...this.host.containers.values()]
      .filter((c) => labelsMatch(c.info.labels, labelFilter))
      .map((c) => ({ ...c.info, labels: { ...c.info.labels } }));
  }

  async logs(id: string, opts: { tailLines?: number } = {}): Promise<string> {
    this.enter('logs');
    const c = this.host.containers.get(id);
    if (c === undefined) throw new RuntimeFailure('container-not-found', `no such container: ${id}`);
    return opts.tailLines === undefined ? c.logs : tailLines(c.logs, opts.tailLines);
  }

  async followLogs(id: string, opts: { tailLines?: number; signal: AbortSignal }): Promise<AsyncIterable<Uint8Array>> {
    this.enter('followLogs');
    const c = this.host.containers.get(id);
    if (c === undefined) throw new RuntimeFailure('container-not-found', `no such container: ${id}`);
    const first = opts.tailLines === undefined ? c.logs : tailLines(c.logs, opts.tailLines);
    let offset = c.logs.length;
    const { signal } = opts;
    const host = this.host;
    async function* follow(c: MemoryContainer): AsyncGenerator<Uint8Array> {
      if (first !== '') yield Buffer.from(first);
      for (;;) {
        if (signal.aborted) return;
        if (c.logs.length > offset) {
          const text = c.logs.slice(offset);
          offset = c.logs.length;
          yield Buffer.from(text);
          continue;
        }
        if (c.info.state === 'exited' || host.containers.get(id) !== c) return;
        await new Promise<void>((resolve) => {
          const wake = (): void => {
            c.readers.delete(wake);
            signal.removeEventListener('abort', wake);
            resolve();
          };
          c.readers.add(wake);
          signal.addEventListener('abort', wake, { once: true });
        });
      }
    }
    return follow(c);
  }

  /** Appends output to a running container, as its process would write it. */
  writeOutput(id: string, text: string): void {
    const c = this.host.containers.get(id);
    if (c === undefined || c.info.state === 'exited') throw new RuntimeFailure('container-not-found', `no running container ${id}`);
    this.write(c, text);
  }

  async close(): Promise<void> {}

  private write(c: MemoryContainer, text: string): void {
    c.logs += text;
    this.wakeReaders(c);
  }

  private wakeReaders(c: MemoryContainer): void {
    for (const wake of [...c.readers]) wake();
  }

  private enter(op: MemoryOp): void {
    this.calls[op]++;
    if (this.unreachable) throw new RuntimeFailure('daemon-unreachable', 'memory runtime: set unreachable');
    const i = this.injected.findIndex((f) => f.op === op);
    if (i === -1) return;
    const [failure] = this.injected.splice(i, 1);
    if (failure !== undefined) throw new RuntimeFailure(failure.reason, `memory runtime: injected ${failure.reason} on ${op}`);
  }

  private finish(c: MemoryContainer, exitCode: number, oomKilled = false): void {
    c.timer?.cancel();
    for (const t of c.outputTimers.splice(0)) t.cancel();
    c.info = { ...c.info, state: 'exited', exitCode, finishedAt: this.clock.nowMs(), ...(oomKilled ? { oomKilled } : {}) };
    for (const wake of c.waiters.splice(0)) wake();
    this.wakeReaders(c);
  }

  private untilExited(c: MemoryContainer, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const onAbort = (): void => reject(new RuntimeFailure('timeout', `wait for ${c.info.id} abandoned`, { cause: signal?.reason }));
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      c.waiters.push(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }
}
