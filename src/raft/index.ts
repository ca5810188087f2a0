// The Raft core's public surface: the node factory, config validation, default limits and the contract types.
export { createRaftNode, defaultRaftLimits, validateRaftConfig } from './raft.js';
export type * from './types.js';
