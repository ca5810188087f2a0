// The Raft core's public surface: the node factory, config validation, default limits and the contract types.
export { defaultRaftLimits, validateRaftConfig } from './config.js';
export { decodeConfEntry, forceNewCluster } from './membership.js';
export { createRaftNode } from './raft.js';
export type * from './types.js';
