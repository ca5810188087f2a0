// Placement policies: pure functions the leader's scheduling loop calls.
import { leastLoaded } from './least-loaded.js';
import type { PlacementPolicy } from './policy.js';
import { roundRobin } from './round-robin.js';

export * from './policy.js';
export { leastLoaded, roundRobin };

export const placementPolicies: Readonly<Record<string, PlacementPolicy>> = { [roundRobin.name]: roundRobin, [leastLoaded.name]: leastLoaded };
