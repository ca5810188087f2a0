// `task why`: for a task waiting to be placed, one verdict per worker ("down", "draining", "paused", "engine unreachable: ...",
// "label zone!=a (it is b)", "no room: cpus 2 > 1.5 free", or eligible). Pure, from the same eligibility rules the policies place by.
import { ineligibility } from './eligibility.js';
import type { PlacementTask, PlacementWorker } from './policy.js';

export interface ExplainWorker extends PlacementWorker {
  readonly state: 'ready' | 'unreachable' | 'down';
  /** Absent: active. */
  readonly availability?: 'active' | 'pause' | 'drain';
  /** Present while the worker says its engine does not answer: "engine unreachable: <reason> since <time>". */
  readonly engineUnreachable?: string;
}

/** Why a worker an operator took out of service takes nothing new (worker drain, worker pause), or null. */
export function unavailability(availability: ExplainWorker['availability']): string | null {
  if (availability === 'drain') return 'draining';
  if (availability === 'pause') return 'paused';
  return null;
}

export interface WorkerVerdict {
  readonly workerId: string;
  readonly eligible: boolean;
  /** Why not, or "eligible". */
  readonly reason: string;
}

export function explainPlacement(task: PlacementTask, workers: readonly ExplainWorker[]): WorkerVerdict[] {
  return workers.map((w) => {
    if (w.state !== 'ready') return { workerId: w.id, eligible: false, reason: w.state };
    const why = unavailability(w.availability) ?? w.engineUnreachable ?? ineligibility(task, w);
    return why === null ? { workerId: w.id, eligible: true, reason: 'eligible' } : { workerId: w.id, eligible: false, reason: why };
  });
}
