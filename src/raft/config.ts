// The node's config: default limits from src/lib/limits.ts, and the checks a config and an initial state must pass.
import { MinkubeError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import type { RaftConfig, RaftInitialState } from './types.js';

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
  if (config.voters.length === 0) fail('voters must not be empty');
  if (new Set(config.voters).size !== config.voters.length) fail('voters must not repeat');
  if (!config.voters.includes(config.id)) fail(`id ${config.id} is not one of the voters`);
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

export function validateInitialState(initial: RaftInitialState): void {
  const last = initial.entries.length === 0 ? 0 : initial.entries[initial.entries.length - 1]!.index;
  const lastTerm = initial.entries.length === 0 ? 0 : initial.entries[initial.entries.length - 1]!.term;
  if (initial.hardState.commit > last) {
    throw new MinkubeError('STORAGE_CORRUPT', `commit ${initial.hardState.commit} is beyond the last entry ${last}`);
  }
  if (lastTerm > initial.hardState.term) {
    throw new MinkubeError('STORAGE_CORRUPT', `the last entry's term ${lastTerm} is beyond the current term ${initial.hardState.term}`);
  }
  if (initial.applied > initial.hardState.commit) {
    throw new MinkubeError('STORAGE_CORRUPT', `applied ${initial.applied} is beyond commit ${initial.hardState.commit}`);
  }
}

