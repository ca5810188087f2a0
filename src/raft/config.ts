// The node's config: default limits from src/lib/limits.ts, and the checks a config and an initial state must pass.
import { MinkubeError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import type { LogIndex } from '../lib/ids.js';
import type { Entry, RaftConfig, RaftInitialState } from './types.js';

/** The limits every node starts with; tests and the simulator override single fields. */
export const defaultRaftLimits = {
  inflightAppendsMax: limits.raftInflightAppendsMax,
  entriesPerAppendMax: limits.raftEntriesPerAppendMax,
  appendBytesMax: limits.raftAppendBytesMax,
  uncommittedBytesMax: limits.raftUncommittedBytesMax,
  pendingReadsMax: limits.raftPendingReadsMax,
} as const satisfies Partial<RaftConfig>;

/** Throws CONFIG_INVALID on a config no cluster could run with. */
export function validateRaftConfig(config: RaftConfig): void {
  const fail = (why: string): never => {
    throw new MinkubeError('CONFIG_INVALID', `invalid raft config for ${String(config.id)}: ${why}`);
  };
  if (typeof config.id !== 'string' || config.id === '') fail('id must be a non-empty string');
  const learners = config.learners ?? [];
  if (config.join === true) {
    // A joiner learns its configuration from the leader; a bootstrap one could contradict the log it receives.
    if (config.voters.length > 0 || learners.length > 0) fail('a joining node has no bootstrap voters or learners');
  } else {
    if (config.voters.length === 0) fail('voters must not be empty');
    if (new Set([...config.voters, ...learners]).size !== config.voters.length + learners.length) fail('voters and learners must not repeat');
    if (!config.voters.includes(config.id) && !learners.includes(config.id)) fail(`id ${config.id} is not one of the voters or learners`);
  }
  const positive: (keyof RaftConfig)[] = [
    'electionTicks',
    'heartbeatTicks',
    'inflightAppendsMax',
    'entriesPerAppendMax',
    'appendBytesMax',
    'uncommittedBytesMax',
    'pendingReadsMax',
  ];
  for (const key of positive) {
    const v = config[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) fail(`${key} must be a positive integer`);
  }
  if (config.heartbeatTicks >= config.electionTicks) fail('heartbeatTicks must be less than electionTicks');
  if (typeof config.random?.int !== 'function') fail('random must be a Random');
}

/** The persisted state the core starts from: entries after the snapshot, commit and applied at least its index. */
export interface NormalizedInitialState {
  readonly entries: readonly Entry[];
  readonly commit: LogIndex;
  readonly applied: LogIndex;
}

/** Throws STORAGE_CORRUPT on a state no correct node could have persisted; drops entries the snapshot covers. */
export function validateInitialState(initial: RaftInitialState): NormalizedInitialState {
  const corrupt = (why: string): never => {
    throw new MinkubeError('STORAGE_CORRUPT', why);
  };
  const snap = initial.snapshot;
  let entries = initial.entries;
  if (snap !== undefined) {
    if (!Number.isSafeInteger(snap.index) || snap.index < 1 || snap.term < 1) corrupt(`the snapshot's index ${snap.index} or term ${snap.term} is invalid`);
    const first = entries[0];
    if (first !== undefined && first.index > snap.index + 1) corrupt(`the log starts at ${first.index}, after the snapshot at ${snap.index}`);
    const at = entries.find((e) => e.index === snap.index);
    if (at !== undefined && at.term !== snap.term) corrupt(`the entry at the snapshot's index ${snap.index} has term ${at.term}, not ${snap.term}`);
    if (first !== undefined && first.index <= snap.index) entries = entries.filter((e) => e.index > snap.index);
  } else if (entries.length > 0 && entries[0]!.index !== 1) {
    corrupt(`the log starts at ${entries[0]!.index} without a snapshot`);
  }
  const lastEntry = entries[entries.length - 1];
  const last = lastEntry?.index ?? snap?.index ?? 0;
  const lastTerm = lastEntry?.term ?? snap?.term ?? 0;
  // A snapshot holds only committed entries, and the state machine restored from it has applied them.
  const commit = Math.max(initial.hardState.commit, snap?.index ?? 0) as LogIndex;
  const applied = Math.max(initial.applied, snap?.index ?? 0) as LogIndex;
  if (commit > last) corrupt(`commit ${initial.hardState.commit} is beyond the last entry ${last}`);
  if (lastTerm > initial.hardState.term) corrupt(`the last entry's term ${lastTerm} is beyond the current term ${initial.hardState.term}`);
  if (applied > commit) corrupt(`applied ${initial.applied} is beyond commit ${initial.hardState.commit}`);
  return { entries, commit, applied };
}

