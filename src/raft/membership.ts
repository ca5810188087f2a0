// Cluster configurations: the data of 'config' entries (the whole new configuration, so any node learns it from one
// entry), the rules of a single-server change, and forceNewCluster for disaster recovery. Pure functions.
import { assert } from '../lib/assert.js';
import { MinkubeError } from '../lib/errors.js';
import type { LogIndex, NodeId, Term } from '../lib/ids.js';
import type { ConfChange, ConfChangeRejection, ConfEntryData, ConfState, Entry, RaftInitialState } from './types.js';

const CONF_ENTRY_VERSION = 1;
const CONTEXT_CHARS_MAX = 4096;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const emptyConfState: ConfState = Object.freeze({ voters: Object.freeze([]), learners: Object.freeze([]) });

export function encodeConfEntry(data: ConfEntryData): Uint8Array {
  return encoder.encode(JSON.stringify({ v: CONF_ENTRY_VERSION, voters: data.voters, learners: data.learners, change: data.change }));
}

const isIdList = (x: unknown): x is NodeId[] => Array.isArray(x) && x.every((id) => typeof id === 'string' && id !== '');

/** The configuration a 'config' entry installs. Throws (an assertion: entries are written by cores) on bad data. */
export function decodeConfEntry(data: Uint8Array): ConfEntryData {
  const raw = JSON.parse(decoder.decode(data)) as { v?: unknown; voters?: unknown; learners?: unknown; change?: unknown } | null;
  assert(raw !== null && typeof raw === 'object' && raw.v === CONF_ENTRY_VERSION, 'a config entry of an unknown version');
  assert(isIdList(raw.voters) && isIdList(raw.learners), 'a config entry without voters and learners');
  const all = new Set([...raw.voters, ...raw.learners]);
  assert(all.size === raw.voters.length + raw.learners.length, 'a config entry names a node twice');
  const c = raw.change as { type?: unknown; nodeId?: unknown; context?: unknown } | null | undefined;
  let change: ConfChange | null = null;
  if (c !== null && c !== undefined) {
    assert(c.type === 'addLearner' || c.type === 'promote' || c.type === 'remove', 'a config entry with an unknown change');
    assert(typeof c.nodeId === 'string', 'a config entry whose change names no node');
    change = typeof c.context === 'string' ? { type: c.type, nodeId: c.nodeId as NodeId, context: c.context } : { type: c.type, nodeId: c.nodeId as NodeId };
  }
  return { voters: raw.voters, learners: raw.learners, change };
}

export function sameConf(a: ConfState, b: ConfState): boolean {
  if (a === b) return true;
  if (a.voters.length !== b.voters.length || a.learners.length !== b.learners.length) return false;
  return a.voters.every((id) => b.voters.includes(id)) && a.learners.every((id) => b.learners.includes(id));
}

/** The configuration after `change`, or why it cannot apply to `conf`. */
export function applyConfChange(conf: ConfState, change: ConfChange): ConfState | ConfChangeRejection {
  const id = change.nodeId;
  if (typeof id !== 'string' || id === '') return 'INVALID_CHANGE';
  if (change.context !== undefined && (typeof change.context !== 'string' || change.context.length > CONTEXT_CHARS_MAX)) return 'INVALID_CHANGE';
  const voter = conf.voters.includes(id);
  const learner = conf.learners.includes(id);
  switch (change.type) {
    case 'addLearner':
      if (voter || learner) return 'ALREADY_MEMBER';
      return { voters: conf.voters, learners: [...conf.learners, id] };
    case 'promote':
      if (voter) return 'NOT_A_LEARNER';
      if (!learner) return 'UNKNOWN_MEMBER';
      return { voters: [...conf.voters, id], learners: conf.learners.filter((x) => x !== id) };
    case 'remove':
      if (!voter && !learner) return 'UNKNOWN_MEMBER';
      // With no voter left nobody could ever be elected again.
      if (voter && conf.voters.length === 1) return 'LAST_VOTER';
      return { voters: conf.voters.filter((x) => x !== id), learners: conf.learners.filter((x) => x !== id) };
    default:
      return 'INVALID_CHANGE';
  }
}

/**
 * Disaster recovery: rewrites one survivor's persisted state so that it starts as the only voter of a new cluster,
 * with everything in its log (and snapshot) kept and committed. A config entry { voters: [id] } is appended in a new
 * term that no other node ever used. The caller persists the returned hard state and the last entry (like a Ready)
 * before starting the node with it; the other members' data must never be used with this cluster again.
 */
export function forceNewCluster(initial: RaftInitialState, id: NodeId): RaftInitialState {
  if (typeof id !== 'string' || id === '') throw new MinkubeError('CONFIG_INVALID', 'forceNewCluster needs the node id');
  const snap = initial.snapshot;
  const entries = snap === undefined ? initial.entries : initial.entries.filter((e) => e.index > snap.index);
  const lastEntry = entries[entries.length - 1];
  const lastIndex = lastEntry?.index ?? snap?.index ?? 0;
  const lastTerm = lastEntry?.term ?? snap?.term ?? 0;
  const t = (Math.max(initial.hardState.term, lastTerm) + 1) as Term;
  const conf: Entry = {
    term: t,
    index: (lastIndex + 1) as LogIndex,
    type: 'config',
    data: encodeConfEntry({ voters: [id], learners: [], change: null }),
  };
  const out: RaftInitialState = {
    hardState: { term: t, vote: null, commit: conf.index },
    entries: [...entries, conf],
    applied: initial.applied,
  };
  return snap === undefined ? out : { ...out, snapshot: snap };
}
