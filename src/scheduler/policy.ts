// The placement policy contract: a pure function of (tasks to place, healthy workers, cursor) -> decisions. The
// leader's scheduling loop feeds it and commits what it answers; policies never see the network or the clock.

export interface PlacementTask {
  readonly id: string;
  readonly attempt: number;
  /** The worker the previous attempt ran on: a retry goes elsewhere when another worker is ready. */
  readonly avoidWorkerId: string | null;
  readonly cpus?: number;
  readonly memoryMb?: number;
}

export interface PlacementWorker {
  readonly id: string;
  /** Scheduled and running tasks. */
  readonly activeTasks: number;
  /** 0..1, null until the worker has reported two readings. */
  readonly cpuUtilization: number | null;
}

export interface PlacementInput {
  /** In the order they should be placed (oldest first). */
  readonly tasks: readonly PlacementTask[];
  /** Ready workers only, in id order. */
  readonly workers: readonly PlacementWorker[];
  /** Replicated policy state: round-robin keeps the last worker it chose. */
  readonly cursor: string | null;
}

export interface PlacementDecision {
  readonly placements: readonly { readonly taskId: string; readonly attempt: number; readonly workerId: string }[];
  readonly cursor: string | null;
}

export interface PlacementPolicy {
  readonly name: string;
  place(input: PlacementInput): PlacementDecision;
}
