// The arrows between src/ folders (STYLE.md's picture): each folder may import only the folders listed for it here.
// Plain JavaScript so that eslint.config.js (which fences every arrow from it) can read it as well as
// test/architecture/layers.test.ts (which checks cycles). A new arrow is a decision: add it here, in the same change,
// with the reason.

/** Who may import whom; lib is below everything. */
export const allowed = {
  lib: [],
  raft: ['lib'],
  storage: ['lib', 'raft'],
  transport: ['lib', 'raft'],
  security: ['lib'],
  config: ['lib'],
  runtime: ['lib'],
  scheduler: ['lib'],
  // What the parts promise each other: types and wire shapes (Raft's snapshot metadata, a policy's rules).
  contracts: ['lib', 'raft', 'security'],
  // The state machine stores the task model and checks policies it replicates.
  kv: ['lib', 'contracts', 'security'],
  client: ['lib', 'contracts'],
  manager: ['lib', 'raft', 'storage', 'transport', 'kv', 'scheduler', 'contracts', 'client', 'security', 'config'],
  worker: ['lib', 'runtime', 'contracts', 'client'],
  // Routes validate with the state machine's spec rules and the config's address rule; they know no driver.
  api: ['lib', 'contracts', 'security', 'kv', 'config'],
  daemon: ['lib', 'config', 'contracts', 'security', 'client', 'api', 'manager', 'worker', 'runtime', 'storage', 'transport', 'kv'],
  cli: ['lib', 'config', 'contracts', 'security', 'client', 'daemon'],
};
