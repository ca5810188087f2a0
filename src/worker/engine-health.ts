// The worker's judgement of its runtime's engine: unreachable from the moment one of its calls is refused or not
// answered within its deadline, answering again from the moment a call made since (or a ping) succeeds. While in doubt
// it pings the engine every limits.engineProbeIntervalMs, one ping at a time; its heartbeat says what it judges.
import type { Logger } from 'pino';
import type { EngineUnreachable } from '../contracts/worker.js';
import type { Clock, Timer } from '../lib/clock.js';
import { setIntervalOn } from '../lib/clock.js';
import { limits } from '../lib/limits.js';
import { classifyRuntimeError } from '../runtime/classify.js';
import type { ContainerRuntime } from '../runtime/types.js';

export interface EngineHealthOptions {
  clock: Clock;
  logger: Logger;
  /** Asks the engine whether it answers (ContainerRuntime.ping through watchedRuntime, so its outcome counts). */
  ping: () => Promise<void>;
  /** Called on every change of judgement (the heartbeat goes early). */
  onChange?: () => void;
  probeIntervalMs?: number;
}

export class EngineHealth {
  private down: (EngineUnreachable & { atMonoMs: number }) | null = null;
  private probe: Timer | null = null;
  private pinging = false;
  private closed = false;

  constructor(private readonly o: EngineHealthOptions) {}

  /** What the heartbeat says: undefined while the engine answers. */
  unreachable(): EngineUnreachable | undefined {
    return this.down === null ? undefined : { reason: this.down.reason, sinceMs: this.down.sinceMs };
  }

  /** One runtime call's outcome, started at `startedMonoMs`. */
  observe<T>(call: Promise<T>, startedMonoMs: number): Promise<T> {
    call.then(
      () => this.answered(startedMonoMs),
      (err: unknown) => this.failed(err),
    );
    return call;
  }

  /** Doubt without a failed call (at start): a ping decides. */
  check(): void {
    this.pingOnce();
  }

  close(): void {
    this.closed = true;
    this.probe?.cancel();
    this.probe = null;
  }

  private answered(startedMonoMs: number): void {
    // A call begun before the failure was seen says nothing of the engine since.
    if (this.down === null || startedMonoMs < this.down.atMonoMs) return;
    const forMs = this.o.clock.monoMs() - this.down.atMonoMs;
    this.down = null;
    this.probe?.cancel();
    this.probe = null;
    this.o.logger.info({ unreachableForMs: forMs }, 'the container engine answers again: tasks may be placed on this worker');
    this.o.onChange?.();
  }

  private failed(err: unknown): void {
    const failure = classifyRuntimeError(err);
    // Refused, or no answer within the call's deadline ("docker ... did not answer within 15000 ms"); an aborted call
    // (a watch or a log stream ended by the worker) or a slow pull says nothing of the engine.
    const noAnswer = failure.reason === 'timeout' && /did not answer within/.test(failure.message) && !/\bpull\b/.test(failure.message);
    if (failure.reason !== 'daemon-unreachable' && !noAnswer) return;
    if (this.down !== null || this.closed) return;
    const reason = failure.message.slice(0, limits.engineReasonCharsMax);
    this.down = { reason, sinceMs: this.o.clock.nowMs(), atMonoMs: this.o.clock.monoMs() };
    this.o.logger.warn({ reason }, 'the container engine does not answer: the heartbeats say so, and managers that understand it place no new task on this worker until it does');
    this.probe = setIntervalOn(this.o.clock, () => this.pingOnce(), this.o.probeIntervalMs ?? limits.engineProbeIntervalMs);
    this.o.onChange?.();
  }

  private pingOnce(): void {
    if (this.pinging || this.closed) return;
    this.pinging = true;
    this.o.ping().catch(() => undefined).finally(() => {
      this.pinging = false;
    });
  }
}

/**
 * The runtime with every call's outcome told to `health` (the Promise-returning methods; the rest pass through). Not
 * for the process runtime, which has no engine to lose.
 */
export function watchedRuntime(runtime: ContainerRuntime, health: EngineHealth, clock: Clock): ContainerRuntime {
  return new Proxy(runtime, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]): unknown => {
        const startedMonoMs = clock.monoMs();
        const out: unknown = (value as (...a: unknown[]) => unknown).apply(target, args);
        return out instanceof Promise ? health.observe(out, startedMonoMs) : out;
      };
    },
  });
}
