// The managers' address book: addresses learnt from addLearner config entries, the transport's peers for a
// configuration, and the snapshot envelope that carries the book with the state machine's bytes.
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { MinkubeError } from '../../src/lib/errors.js';
import { logIndex, nodeId, term, type NodeId } from '../../src/lib/ids.js';
import {
  changeRequester, decodeSnapshot, encodeMemberContext, encodeRemoveContext, encodeSnapshot, encodeSnapshotParts, MemberDirectory, RemovedMembers, type Member,
} from '../../src/manager/members.js';
import { applyConfChange, encodeConfEntry } from '../../src/raft/membership.js';
import type { ConfChange, Entry } from '../../src/raft/types.js';

const [m1, m2, m3, m4, m5] = ['m1', 'm2', 'm3', 'm4', 'm5'].map(nodeId) as [NodeId, NodeId, NodeId, NodeId, NodeId];
const member = (id: NodeId): Member => ({ id, raftAddress: `raft-${id}`, apiAddress: `api-${id}` });

let nextIndex = 1;
function configEntry(voters: NodeId[], learners: NodeId[], change: ConfChange | null): Entry {
  return { term: term(1), index: logIndex(nextIndex++), type: 'config', data: encodeConfEntry({ voters, learners, change }) };
}
const addLearner = (id: NodeId, context?: string): ConfChange => (context === undefined ? { type: 'addLearner', nodeId: id } : { type: 'addLearner', nodeId: id, context });
const addresses = (raftAddress: string, apiAddress: string): string => encodeMemberContext({ raftAddress, apiAddress });

describe('MemberDirectory', () => {
  it('learns addresses from addLearner config entries only, later entries winning', () => {
    const d = new MemberDirectory(m1, [member(m1), member(m2), member(m3)]);
    const command: Entry = { term: term(1), index: logIndex(nextIndex++), type: 'command', data: new TextEncoder().encode('{"raftAddress":"x","apiAddress":"y"}') };
    d.learnFromEntries([
      command,
      configEntry([m1, m2, m3], [m4], addLearner(m4, addresses('r4', 'a4'))),
      configEntry([m1, m2, m3, m4], [], { type: 'promote', nodeId: m4 }),
      configEntry([m1, m2, m3, m4], [m5], addLearner(m5)), // no context: nothing to learn
      configEntry([m1, m2, m3, m4], [], { type: 'remove', nodeId: m5 }),
      configEntry([m1, m2, m3, m4], [m5], addLearner(m5, 'not json')),
      configEntry([m1, m2, m3, m4], [m5], addLearner(m5, '{"raftAddress":1}')),
    ]);
    expect(d.get(m4)).toEqual({ raftAddress: 'r4', apiAddress: 'a4' });
    expect(d.get(m5)).toBeUndefined();
    d.learnFromEntries([configEntry([m1, m2, m3, m4], [m5], addLearner(m5, addresses('r5', 'a5'))), configEntry([m1, m2, m3, m4], [m5], addLearner(m5, addresses('r5b', 'a5b')))]);
    expect(d.get(m5)).toEqual({ raftAddress: 'r5b', apiAddress: 'a5b' });
    // The bootstrap members keep their addresses.
    expect(d.get(m2)).toEqual({ raftAddress: 'raft-m2', apiAddress: 'api-m2' });
  });

  it('reads the addresses alone from a context that also names who asked (what a manager older than the requester reads)', () => {
    const by = { pr: { a: '00000000000000a1', r: 'admin' }, reqId: 'req-1' };
    const context = encodeMemberContext({ raftAddress: 'r4', apiAddress: 'a4' }, by);
    expect(JSON.parse(context)).toEqual({ raftAddress: 'r4', apiAddress: 'a4', pr: by.pr, reqId: 'req-1' });
    const d = new MemberDirectory(m1, [member(m1), member(m2), member(m3)]);
    d.learnFromEntries([configEntry([m1, m2, m3], [m4], addLearner(m4, context))]);
    expect(d.get(m4)).toEqual({ raftAddress: 'r4', apiAddress: 'a4' });
    expect(changeRequester(context)).toEqual(by);
    // A remove's context changes nothing the core does with it.
    const remove: ConfChange = { type: 'remove', nodeId: m4, context: encodeRemoveContext({ pr: { n: 'm9', r: 'manager' }, reqId: 'req-2' }, 1_700_000_000_000) };
    expect(applyConfChange({ voters: [m1, m2, m3], learners: [m4] }, remove)).toEqual(applyConfChange({ voters: [m1, m2, m3], learners: [m4] }, { type: 'remove', nodeId: m4 }));
    expect(changeRequester(remove.context)).toEqual({ pr: { n: 'm9', r: 'manager' }, reqId: 'req-2' });
    // Contexts written before the requester, or by the cluster itself, name nobody; a malformed principal is left out.
    expect(changeRequester(addresses('r5', 'a5'))).toEqual({});
    expect(changeRequester(undefined)).toEqual({});
    expect(changeRequester('not json')).toEqual({});
    expect(changeRequester('{"pr":{"a":"x","r":"admin","extra":1},"reqId":"r"}')).toEqual({ reqId: 'r' });
  });

  it('gives the transport every voter and learner but itself, where an address is known', () => {
    const d = new MemberDirectory(m1, [member(m1), member(m2), member(m3), member(m5)]);
    d.set(m4, { raftAddress: 'raft-m4', apiAddress: 'api-m4' });
    const peers = d.peers({ voters: [m1, m2, nodeId('unknown')], learners: [m4] });
    expect([...peers].sort()).toEqual([
      [m2, 'raft-m2'],
      [m4, 'raft-m4'],
    ]);
    // m3 and m5 are known but not in the configuration.
    expect(peers.has(m3)).toBe(false);
    expect(peers.has(m5)).toBe(false);
  });

  it('a joiner that knows no configuration keeps every address it was given', () => {
    const d = new MemberDirectory(m4, [member(m1), member(m2), member(m3), member(m4)]);
    const peers = d.peers({ voters: [], learners: [] });
    expect([...peers.keys()].sort()).toEqual([m1, m2, m3]);
  });

  it("the addresses this node was given at start win over what the log or a snapshot says (another node may reach a peer elsewhere)", () => {
    const d = new MemberDirectory(m1, [member(m1), member(m2)]);
    d.set(m2, { raftAddress: 'elsewhere:1', apiAddress: 'elsewhere:2' });
    d.set(m3, { raftAddress: 'raft-m3', apiAddress: 'api-m3' });
    expect(d.get(m2)).toEqual({ raftAddress: member(m2).raftAddress, apiAddress: member(m2).apiAddress });
    expect(d.get(m3)).toEqual({ raftAddress: 'raft-m3', apiAddress: 'api-m3' });
  });

  it('set copies the addresses (a caller may reuse its object)', () => {
    const d = new MemberDirectory(m1, []);
    const a = { raftAddress: 'r', apiAddress: 'a' };
    d.set(m2, a);
    a.raftAddress = 'changed';
    expect(d.get(m2)).toEqual({ raftAddress: 'r', apiAddress: 'a' });
  });
});

describe('RemovedMembers', () => {
  const removal = (id: NodeId, context: string | undefined): Entry => configEntry([m1, m2], [], context === undefined ? { type: 'remove', nodeId: id } : { type: 'remove', nodeId: id, context });

  it("refuses a removed manager's certificates issued up to its removal, and not those issued after (a rejoin)", () => {
    const r = new RemovedMembers();
    r.learnFromApplied(removal(m4, encodeRemoveContext({ reqId: 'x' }, 10_000)));
    expect(r.removedAtMs(m4)).toBe(10_000);
    expect(r.refusal(m4, 9_000)).toMatch(/^its certificate was issued before m4 was removed from the cluster \(1970-01-01T00:00:10\.000Z\): a removed manager comes back only with an empty data directory and --join/);
    expect(r.refusal(m4, 10_000)).not.toBeNull();
    expect(r.refusal(m4, 10_001)).toBeNull();
    expect(r.refusal(m3, 0)).toBeNull();
    // Removed again later: the later moment counts; an older removal learnt after it changes nothing.
    r.learnFromApplied(removal(m4, encodeRemoveContext({}, 20_000)));
    r.learnFromApplied(removal(m4, encodeRemoveContext({}, 15_000)));
    expect(r.removedAtMs(m4)).toBe(20_000);
  });

  it('learns nothing from a removal without a time (an older manager\'s), from other changes or from commands', () => {
    const r = new RemovedMembers();
    r.learnFromApplied(removal(m4, undefined));
    r.learnFromApplied(removal(m4, '{"reqId":"r"}'));
    r.learnFromApplied(removal(m4, 'not json'));
    r.learnFromApplied(removal(m4, '{"atMs":-5}'));
    r.learnFromApplied(configEntry([m1, m2], [m4], addLearner(m4, encodeRemoveContext({}, 5))));
    r.learnFromApplied({ term: term(1), index: logIndex(nextIndex++), type: 'command', data: new Uint8Array([1]) });
    expect(r.entries()).toEqual([]);
  });

  it('travels in the snapshot envelope; an envelope without removals is what older managers wrote', () => {
    const d = new MemberDirectory(m1, [member(m1), member(m2)]);
    const state = new Uint8Array([9, 8, 7]);
    const decoded = decodeSnapshot(encodeSnapshot(d.entries(), state, [[m4, 1234], [m5, 5678]]));
    expect(decoded.removed).toEqual([[m4, 1234], [m5, 5678]]);
    expect(Buffer.from(decoded.state).equals(Buffer.from(state))).toBe(true);
    expect(decodeSnapshot(encodeSnapshot(d.entries(), state)).removed).toEqual([]);
    expect(Buffer.from(encodeSnapshot(d.entries(), state, [])).equals(Buffer.from(encodeSnapshot(d.entries(), state)))).toBe(true);
  });
});

describe('the snapshot envelope', () => {
  it('round-trips the address book and the state bytes', () => {
    const d = new MemberDirectory(m1, [member(m1), member(m2)]);
    d.set(m4, { raftAddress: 'raft-m4', apiAddress: 'api-m4' });
    const state = new Uint8Array([0, 1, 2, 250, 255]);
    const decoded = decodeSnapshot(encodeSnapshot(d.entries(), state));
    expect(decoded.members.sort((a, b) => a.id.localeCompare(b.id))).toEqual([member(m1), member(m2), member(m4)]);
    expect(Buffer.from(decoded.state).equals(Buffer.from(state))).toBe(true);
  });

  it('round-trips an empty book and empty state', () => {
    const decoded = decodeSnapshot(encodeSnapshot(new MemberDirectory(m1, []).entries(), new Uint8Array(0)));
    expect(decoded.members).toEqual([]);
    expect(decoded.state).toHaveLength(0);
  });

  it.each([0, 255, 256, 65_535, 65_536, 1_000_003])('writes the bytes msgpackr writes for { v, members, state } (a %i-byte state), in a buffer of its own', (n) => {
    const d = new MemberDirectory(m1, [member(m1), member(m2)]);
    const state = Uint8Array.from({ length: n }, (_, i) => i & 0xff);
    const bytes = encodeSnapshot(d.entries(), state);
    const rows = d.entries().map(([id, a]) => [id, a.raftAddress, a.apiAddress]);
    expect(Buffer.from(bytes).equals(Buffer.from(new Packr({ useRecords: false, moreTypes: false }).pack({ v: 1, members: rows, state })))).toBe(true);
    // Not a view of a larger buffer a packer keeps (that kept twice a big snapshot's size alive).
    expect(bytes.buffer.byteLength).toBeLessThan(bytes.length + 8192);
  });

  it.each([0, 255, 65_536])('encodeSnapshotParts gives the parts of encodeSnapshot, the state parts as they are (a %i-byte state)', (n) => {
    const d = new MemberDirectory(m1, [member(m1), member(m2)]);
    const state = Uint8Array.from({ length: n }, (_, i) => (i * 7) & 0xff);
    const stateParts = [state.subarray(0, n >> 1), new Uint8Array(0), state.subarray(n >> 1)];
    const parts = encodeSnapshotParts(d.entries(), stateParts);
    expect(Buffer.concat(parts).equals(Buffer.from(encodeSnapshot(d.entries(), state)))).toBe(true);
    expect(parts.slice(-3).every((p, i) => p === stateParts[i])).toBe(true);
  });

  const packr = new Packr({ useRecords: false, moreTypes: false });
  it.each<[string, Uint8Array]>([
    ['garbage bytes', new Uint8Array([0xc1, 0xff, 0x00, 0x13])],
    ['no bytes', new Uint8Array(0)],
    ['a msgpack string', packr.pack('hello')],
    ['another version', packr.pack({ v: 2, members: [], state: new Uint8Array(1) })],
    ['members that are not a list', packr.pack({ v: 1, members: 'm1', state: new Uint8Array(1) })],
    ['state that is not bytes', packr.pack({ v: 1, members: [], state: 'abc' })],
    ['a member with two fields', packr.pack({ v: 1, members: [['m1', 'raft']], state: new Uint8Array(1) })],
    ['a member with a numeric address', packr.pack({ v: 1, members: [['m1', 'raft', 7]], state: new Uint8Array(1) })],
    ['removals that are not a list', packr.pack({ v: 1, members: [], removed: 'm4', state: new Uint8Array(1) })],
    ['a removal without its time', packr.pack({ v: 1, members: [], removed: [['m4']], state: new Uint8Array(1) })],
  ])('refuses %s with STORAGE_CORRUPT', (_what, bytes) => {
    let thrown: unknown;
    try {
      decodeSnapshot(bytes);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(MinkubeError);
    expect((thrown as MinkubeError).code).toBe('STORAGE_CORRUPT');
  });
});
