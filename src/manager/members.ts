// The managers' address book: who the members are comes from the Raft configuration (voters and learners); where
// they are comes from the config file, from the context of the config entries that added them, and from snapshots.
import { Packr } from 'msgpackr';
import { entryPrincipalFrom, type EntryPrincipal } from '../kv/commands.js';
import type { NodeId } from '../lib/ids.js';
import { nodeId } from '../lib/ids.js';
import { MinkubeError } from '../lib/errors.js';
import { decodeConfEntry } from '../raft/index.js';
import type { ConfState, Entry } from '../raft/types.js';

export interface MemberAddresses {
  readonly raftAddress: string;
  readonly apiAddress: string;
}

export interface Member extends MemberAddresses {
  readonly id: NodeId;
}

/** Who asked for a membership change, and in which request: for the audit log only, as in a command's envelope. */
export interface ChangeRequester {
  readonly pr?: EntryPrincipal;
  readonly reqId?: string;
}

/**
 * The context of an addLearner change: the new member's addresses, and who asked. A manager older than `pr` and
 * `reqId` reads the addresses and nothing else, so the same entry does the same everywhere.
 */
export function encodeMemberContext(a: MemberAddresses, by: ChangeRequester = {}): string {
  return JSON.stringify({ raftAddress: a.raftAddress, apiAddress: a.apiAddress, ...requesterFields(by) });
}

/**
 * The context of a remove: who asked, and when (the leader's clock). Every manager that applies it refuses, from then
 * on, a certificate of that id issued at or before that moment (RemovedMembers): the removed manager keeps its
 * certificate, and must not speak as a member with it. A manager older than `atMs` reads who asked and nothing else.
 */
export function encodeRemoveContext(by: ChangeRequester, atMs: number): string {
  return JSON.stringify({ ...requesterFields(by), atMs });
}

/** When a remove's context says it was asked for; undefined for one without (older managers', or none). */
function removedAtOf(context: string | undefined): number | undefined {
  if (context === undefined) return undefined;
  try {
    const atMs = (JSON.parse(context) as { atMs?: unknown } | null)?.atMs;
    return typeof atMs === 'number' && Number.isSafeInteger(atMs) && atMs > 0 ? atMs : undefined;
  } catch {
    return undefined;
  }
}

function requesterFields(by: ChangeRequester): ChangeRequester {
  return { ...(by.pr === undefined ? {} : { pr: by.pr }), ...(by.reqId === undefined ? {} : { reqId: by.reqId }) };
}

/** Who asked for a change, as its context says; nothing for a context without them (older managers', promotions). */
export function changeRequester(context: string | undefined): ChangeRequester {
  if (context === undefined) return {};
  let raw: { pr?: unknown; reqId?: unknown } | null;
  try {
    raw = JSON.parse(context) as typeof raw;
  } catch {
    return {};
  }
  const pr = entryPrincipalFrom(raw?.pr);
  const reqId = raw?.reqId;
  return { ...(pr === null ? {} : { pr }), ...(typeof reqId === 'string' ? { reqId } : {}) };
}

function decodeMemberContext(context: string | undefined): MemberAddresses | null {
  if (context === undefined) return null;
  try {
    const raw = JSON.parse(context) as Partial<MemberAddresses> | null;
    if (typeof raw?.raftAddress !== 'string' || typeof raw.apiAddress !== 'string') return null;
    return { raftAddress: raw.raftAddress, apiAddress: raw.apiAddress };
  } catch {
    return null;
  }
}

/**
 * The managers removed from the cluster, and when: learnt from applied (committed) removals only, so that a removal a
 * new leader drops never bans a member, and carried in snapshots. A removed manager may come back (emptied, `--join`)
 * under the same id with a new certificate; the old one, issued before its removal, stays refused.
 */
export class RemovedMembers {
  private readonly atMs = new Map<NodeId, number>();

  /** When `id` was last removed, or undefined. */
  removedAtMs(id: NodeId | string): number | undefined {
    return this.atMs.get(id as NodeId);
  }

  /** Why a certificate of `id` issued at `issuedAtMs` may not speak for it, or null when it may. */
  refusal(id: NodeId | string, issuedAtMs: number): string | null {
    const at = this.atMs.get(id as NodeId);
    if (at === undefined || issuedAtMs > at) return null;
    return `its certificate was issued before ${id} was removed from the cluster (${new Date(at).toISOString()}): a removed manager comes back only with an empty data directory and --join, which gives it a new certificate`;
  }

  note(id: NodeId, atMs: number): void {
    if (atMs > (this.atMs.get(id) ?? 0)) this.atMs.set(id, atMs);
  }

  /** Learns the removals among applied entries. */
  learnFromApplied(e: Entry): void {
    if (e.type !== 'config') return;
    const change = decodeConfEntry(e.data).change;
    if (change?.type !== 'remove') return;
    const atMs = removedAtOf(change.context);
    if (atMs !== undefined) this.note(change.nodeId, atMs);
  }

  entries(): [NodeId, number][] {
    return [...this.atMs];
  }
}

export class MemberDirectory {
  /** Never shrinks: a removed member's addresses cost nothing and a log truncation may bring it back. */
  private readonly addresses = new Map<NodeId, MemberAddresses>();
  /**
   * Ids whose addresses this node was given at start (its config file): they win over what the log and snapshots
   * say, since another node may reach a peer at another address (NAT, proxies) than this one does.
   */
  private readonly pinned = new Set<NodeId>();

  constructor(
    readonly selfId: NodeId,
    initial: readonly Member[],
  ) {
    for (const m of initial) {
      this.addresses.set(m.id, { raftAddress: m.raftAddress, apiAddress: m.apiAddress });
      this.pinned.add(m.id);
    }
  }

  get(id: NodeId): MemberAddresses | undefined {
    return this.addresses.get(id);
  }

  /** Learns a member's addresses, unless this node was given them at start. */
  set(id: NodeId, a: MemberAddresses): void {
    if (this.pinned.has(id)) return;
    this.addresses.set(id, { raftAddress: a.raftAddress, apiAddress: a.apiAddress });
  }

  /** Learns the addresses carried by config entries (appended or loaded), in log order. */
  learnFromEntries(entries: readonly Entry[]): void {
    for (const e of entries) {
      if (e.type !== 'config') continue;
      const change = decodeConfEntry(e.data).change;
      if (change?.type !== 'addLearner') continue;
      const a = decodeMemberContext(change.context);
      if (a !== null) this.set(change.nodeId, a);
    }
  }

  /**
   * The transport's peers for a configuration: every voter and learner but this node, where an address is known. A
   * joining node knows no configuration yet: it keeps every address it was given, so the leader can reach it.
   */
  peers(conf: ConfState): Map<NodeId, string> {
    const peers = new Map<NodeId, string>();
    const ids = conf.voters.length === 0 ? [...this.addresses.keys()] : [...conf.voters, ...conf.learners];
    for (const id of ids) {
      const a = this.addresses.get(id);
      if (id !== this.selfId && a !== undefined) peers.set(id, a.raftAddress);
    }
    return peers;
  }

  entries(): [NodeId, MemberAddresses][] {
    return [...this.addresses];
  }
}

// ---- the snapshot envelope: the state machine's bytes and the address book as of the snapshot ----

const SNAPSHOT_ENVELOPE_VERSION = 1;
const packr = new Packr({ useRecords: false, moreTypes: false });

/**
 * `members`: the address book as of the snapshot (MemberDirectory.entries(), taken with the state); `removed`: the
 * managers removed by then, and when (RemovedMembers.entries()).
 */
export function encodeSnapshot(members: readonly [NodeId, MemberAddresses][], state: Uint8Array, removed: readonly [NodeId, number][] = []): Uint8Array {
  return Buffer.concat(encodeSnapshotParts(members, [state], removed));
}

/**
 * encodeSnapshot's bytes as parts, the state's parts (in order) among them, none copied: the manager writes them to
 * the snapshot's file one after the other.
 */
export function encodeSnapshotParts(members: readonly [NodeId, MemberAddresses][], state: readonly Uint8Array[], removed: readonly [NodeId, number][] = []): Uint8Array[] {
  const rows = members.map(([id, a]) => [id, a.raftAddress, a.apiAddress]);
  // The bytes packr.pack({ v, members, [removed,] state }) gives, built without it: msgpackr packs into a buffer it
  // keeps and grows by doubling, and answers a view of it, so packing a 38 MiB state kept 76 MiB alive for good.
  // `removed` only when there is one, so a snapshot without any is byte for byte what older managers wrote.
  const envelope = removed.length === 0 ? { v: SNAPSHOT_ENVELOPE_VERSION, members: rows } : { v: SNAPSHOT_ENVELOPE_VERSION, members: rows, removed: removed.map(([id, at]) => [id, at]) };
  const head = Uint8Array.prototype.slice.call(packr.pack(envelope));
  const keys = Object.keys(envelope).length;
  let n = 0;
  for (const part of state) n += part.length;
  const bin = n < 0x100 ? [0xc4, n] : n < 0x1_0000 ? [0xc5, n >> 8, n & 0xff] : [0xc6, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
  // { v, members[, removed] } is a map of 2 or 3 (msgpackr writes an object's header as map16): one more entry follows.
  if (head[0] !== 0xde || head[1] !== 0 || head[2] !== keys) throw new Error(`encodeSnapshot: unexpected map header 0x${Buffer.from(head.subarray(0, 3)).toString('hex')}`);
  head[2] = keys + 1;
  return [head, stateKey, Uint8Array.from(bin), ...state];
}

/** The key "state" as msgpack (a fixstr). */
const stateKey = Uint8Array.from([0xa5, ...Buffer.from('state')]);

/** The parts of a snapshot; STORAGE_CORRUPT when the bytes are not one. */
export function decodeSnapshot(bytes: Uint8Array): { members: Member[]; removed: [NodeId, number][]; state: Uint8Array } {
  let raw: { v?: unknown; members?: unknown; removed?: unknown; state?: unknown };
  try {
    raw = packr.unpack(bytes) as typeof raw;
  } catch (err) {
    throw new MinkubeError('STORAGE_CORRUPT', `the snapshot cannot be decoded: ${(err as Error).message}`, { cause: err });
  }
  if (raw?.v !== SNAPSHOT_ENVELOPE_VERSION || !Array.isArray(raw.members) || !(raw.state instanceof Uint8Array)) {
    throw new MinkubeError('STORAGE_CORRUPT', 'the snapshot has an unknown format');
  }
  const members: Member[] = [];
  for (const m of raw.members as unknown[]) {
    if (!Array.isArray(m) || m.length !== 3 || !m.every((x) => typeof x === 'string')) throw new MinkubeError('STORAGE_CORRUPT', 'the snapshot has a malformed member');
    const [id, raftAddress, apiAddress] = m as [string, string, string];
    members.push({ id: nodeId(id), raftAddress, apiAddress });
  }
  const removed: [NodeId, number][] = [];
  if (raw.removed !== undefined) {
    if (!Array.isArray(raw.removed)) throw new MinkubeError('STORAGE_CORRUPT', 'the snapshot has a malformed list of removed members');
    for (const r of raw.removed as unknown[]) {
      if (!Array.isArray(r) || r.length !== 2 || typeof r[0] !== 'string' || !Number.isSafeInteger(r[1])) throw new MinkubeError('STORAGE_CORRUPT', 'the snapshot has a malformed removed member');
      removed.push([nodeId(r[0] as string), r[1] as number]);
    }
  }
  return { members, removed, state: raw.state };
}
