// The placement policy contract: a pure function of (tasks to place, healthy workers, cursor) -> decisions. The
// leader's scheduling loop feeds it and commits what it answers; policies never see the network or the clock.
// A policy places a task only on an eligible worker (eligibility.ts: its constraints hold on the worker's labels
// and its resources fit in what is free there); a task no worker can take is left out of the decision.
import type { Constraint } from '../lib/constraints.js';

export interface PlacementTask {
  readonly id: string;
  readonly attempt: number;
  /**
   * The worker the previous attempt ran on: a retry goes elsewhere when another worker is eligible (a service's
   * replica only where that keeps its service as evenly spread, unless avoidFirmly).
   */
  readonly avoidWorkerId: string | null;
  /** The last two attempts both ran on avoidWorkerId: a replica's retry avoids it even against the spread. */
  readonly avoidFirmly?: boolean;
  readonly cpus?: number;
  readonly memoryMb?: number;
  /** Parsed constraints on worker labels (absent: none). */
  readonly constraints?: readonly Constraint[];
  /** Copies of one group (a service's replicas) are spread: see PlacementInput.spread. */
  readonly spreadGroup?: string;
}

/** Resources: CPU cores and MiB. */
export interface Resources {
  readonly cpus: number;
  readonly memoryMb: number;
}

export interface PlacementWorker {
  readonly id: string;
  /** Scheduled and running tasks. */
  readonly activeTasks: number;
  /** 0..1, null until the worker has reported two readings. */
  readonly cpuUtilization: number | null;
  readonly labels?: Readonly<Record<string, string>>;
  /** Capacity minus what its scheduled and running tasks reserve; absent: the worker reported no capacity (no limit). */
  readonly free?: Resources;
}

export interface PlacementInput {
  /** In the order they should be placed (oldest first). */
  readonly tasks: readonly PlacementTask[];
  /** Ready workers only, in id order. */
  readonly workers: readonly PlacementWorker[];
  /** Replicated policy state: round-robin keeps the last worker it chose. */
  readonly cursor: string | null;
  /**
   * group -> worker id -> the group's copies already placed there (meant to run). A task with a spreadGroup goes to
   * an eligible worker holding the fewest of its group (this decision's placements counted), the rotation breaking ties.
   */
  readonly spread?: ReadonlyMap<string, ReadonlyMap<string, number>>;
}

export interface PlacementDecision {
  readonly placements: readonly { readonly taskId: string; readonly attempt: number; readonly workerId: string }[];
  readonly cursor: string | null;
}

export interface PlacementPolicy {
  readonly name: string;
  place(input: PlacementInput): PlacementDecision;
}
