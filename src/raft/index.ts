// The Raft core's public surface: the node factory, config validation, default limits, the contract types, and the
// membership helpers (decodeConfEntry for a 'config' entry's data, forceNewCluster for disaster recovery).
export { defaultRaftLimits, validateRaftConfig } from './config.js';
export { decodeConfEntry, forceNewCluster } from './membership.js';
export { createRaftNode, waitsForSync } from './raft.js';
export type * from './types.js';
