// The wire format: frames split and joined at any byte, length limits enforced before buffering, and every field of
// every message type validated before it can reach the Raft core.
import { Packr, Unpackr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { nodeId } from '../../src/lib/ids.js';
import type { Message } from '../../src/raft/types.js';
import { FrameDecoder, WIRE_VERSION, decodePayload, encodeFrame, validateMessage, type Frame } from '../../src/transport/codec.js';
import { plainMessages, sampleMessages } from './conformance.js';

const [a, b] = [nodeId('n1'), nodeId('n2')];
const raw = new Packr({ useRecords: false });
const frameOf = (payload: unknown): Buffer => {
  const body = raw.pack(payload);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
};

describe('encodeFrame / FrameDecoder', () => {
  const frames: Frame[] = [
    { v: WIRE_VERSION, kind: 'hello', from: a, to: b },
    { v: WIRE_VERSION, kind: 'raft', messages: sampleMessages(a, b) },
    { v: WIRE_VERSION, kind: 'raft', messages: [] },
  ];
  const stream = Buffer.concat(frames.map(encodeFrame));

  const decodeAll = (chunks: Buffer[]): Frame[] => {
    const d = new FrameDecoder(1 << 20);
    const out = chunks.flatMap((c) => d.push(c)).map(decodePayload);
    expect(d.bufferedBytes).toBe(0);
    return out.map((f) => {
      if (typeof f === 'string') throw new Error(f);
      return f;
    });
  };
  const plain = (fs: Frame[]): unknown[] => fs.map((f) => (f.kind === 'raft' ? { ...f, messages: plainMessages(f.messages) } : f));

  it('decodes several frames from one chunk', () => {
    expect(plain(decodeAll([stream]))).toEqual(plain(frames));
  });

  it('decodes frames split at every byte boundary', () => {
    for (const size of [1, 2, 3, 5, 7, 64]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < stream.length; i += size) chunks.push(stream.subarray(i, i + size));
      expect(plain(decodeAll(chunks))).toEqual(plain(frames));
    }
  });

  it('makes every frame self-contained: a decoder that saw no earlier frame reads any later one', () => {
    // One encoder serves every connection, so a frame must never lean on record definitions sent on another.
    for (let i = 0; i < 200; i++) encodeFrame(frames[i % 3]!);
    for (const f of frames) {
      const fresh = new Unpackr({ useRecords: true, mapsAsObjects: true });
      const decoded = fresh.unpack(encodeFrame(f).subarray(4)) as Frame;
      expect(plain([decoded])).toEqual(plain([f]));
    }
  });

  it('keeps the bytes of an unfinished frame buffered', () => {
    const d = new FrameDecoder(1 << 20);
    expect(d.push(stream.subarray(0, 10))).toHaveLength(0);
    expect(d.bufferedBytes).toBe(6);
  });

  it('rejects a declared length over the limit as soon as the length arrives', () => {
    const d = new FrameDecoder(1000);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(1001, 0);
    expect(() => d.push(head)).toThrow(/1001 bytes, over the limit of 1000/);
  });

  it('holds the first frame to its own limit (a hello), and the frames after it, in the same chunk too, to the frame limit', () => {
    const frameOfBytes = (n: number): Buffer => {
      const b = Buffer.alloc(4 + n, 1);
      b.writeUInt32BE(n, 0);
      return b;
    };
    expect(() => new FrameDecoder(1000, 100).push(frameOfBytes(101))).toThrow(/a first frame declares 101 bytes, over the limit of 100/);
    const d = new FrameDecoder(1000, 100);
    expect(d.push(Buffer.concat([frameOfBytes(100), frameOfBytes(1000)])).map((p) => p.length)).toEqual([100, 1000]);
    expect(() => d.push(frameOfBytes(1001))).toThrow(/^a frame declares 1001 bytes, over the limit of 1000/);
  });

  it('rejects an empty frame', () => {
    expect(() => new FrameDecoder(1000).push(Buffer.alloc(4))).toThrow(/empty frame/);
  });
});

describe('decodePayload', () => {
  const payload = (x: unknown): Buffer => frameOf(x).subarray(4);

  it.each([
    ['garbage', Buffer.from([0xc1, 0xc1]), /undecodable/],
    ['a truncated map', payload({ v: 1, kind: 'hello', from: 'n1', to: 'n2' }).subarray(0, 8), /undecodable/],
    ['a number', payload(42), /not a map/],
    ['another version', payload({ v: 2, kind: 'hello', from: 'n1', to: 'n2' }), /unsupported wire version 2/],
    ['an unknown kind', payload({ v: 1, kind: 'gossip' }), /unknown frame kind/],
    ['a hello without from', payload({ v: 1, kind: 'hello', to: 'n2' }), /hello.from/],
    ['raft without messages', payload({ v: 1, kind: 'raft' }), /raft.messages/],
    ['a bad message', payload({ v: 1, kind: 'raft', messages: [{ type: 'timeoutNow', from: 'n1', to: 'n2', term: 1 }, { type: 'timeoutNow', from: 'n1', to: '', term: 1 }] }), /messages\[1\]: timeoutNow.to/],
  ])('rejects %s', (_name, bytes, reason) => {
    const r = decodePayload(bytes);
    expect(typeof r).toBe('string');
    expect(r).toMatch(reason);
  });
});

describe('validateMessage', () => {
  const samples = sampleMessages(a, b);

  it.each(samples.map((m) => [m.type, m] as const))('accepts a valid %s message after a wire roundtrip', (_type, m) => {
    const back = validateMessage(raw.unpack(raw.pack(m)));
    expect(typeof back).not.toBe('string');
    expect(plainMessages([back as Message])).toEqual(plainMessages([m]));
  });

  it('keeps only the known fields', () => {
    const m = validateMessage({ ...samples[6]!, extra: 'x', __proto__: { polluted: true } });
    expect(m).toEqual({ type: 'timeoutNow', from: a, to: b, term: 7 });
  });

  /** Every field of every message type, broken one at a time, is rejected with the field's name. */
  const breakages: [string, unknown][] = [
    ['a string', 'x'],
    ['a negative number', -1],
    ['a fraction', 1.5],
    ['null', null],
    ['an unsafe integer', 2 ** 53],
  ];
  const cases = samples.flatMap((m) =>
    Object.keys(m)
      .filter((k) => k !== 'type')
      .flatMap((field) => breakages.map(([how, value]) => [`${m.type}.${field} as ${how}`, { ...m, [field]: value }, field] as const)),
  );

  it.each(cases)('rejects %s', (_name, broken, field) => {
    const original = samples.find((m) => m.type === (broken as Message).type)! as unknown as Record<string, unknown>;
    const value = (broken as Record<string, unknown>)[field];
    // A few breakages are valid values for some fields (a string context): skip those.
    if (typeof original[field] === 'string' && typeof value === 'string') return;
    const r = validateMessage(broken);
    expect(typeof r).toBe('string');
    expect(r).toContain(field);
  });

  it.each([
    ['not a map', [1], /must be a map/],
    ['an unknown type', { ...samples[6], type: 'gossip' }, /unknown message type "gossip"/],
    ['an empty node id', { ...samples[6], from: '' }, /timeoutNow.from/],
    ['a huge node id', { ...samples[6], from: 'x'.repeat(300) }, /timeoutNow.from/],
    ['a huge context', { ...samples[2], context: 'x'.repeat(5000) }, /heartbeat.context/],
    ['an entry of unknown type', withEntry({ type: 'magic' }), /entries\[0\].type/],
    ['an entry without bytes', withEntry({ data: 'text' }), /entries\[0\].data/],
    ['an entry with a negative index', withEntry({ index: -42 }), /entries\[0\].index/],
    ['an entry that is not a map', { ...samples[0], entries: [7] }, /an entry at \[0\]/],
    ['entries out of sequence', withEntry({ index: 50 }), /index 50, expected 42/],
    ['an entry from a later term', withEntry({ term: 8 }), /term 8 is outside \[6, 7\]/],
    ['an entry older than prevLogTerm', withEntry({ term: 5 }), /term 5 is outside \[6, 7\]/],
    ['prevLogTerm above the term', { ...samples[0], prevLogTerm: 9, entries: [] }, /prevLogTerm 9 is above the term 7/],
    ['propose entries that are not bytes', { ...samples[7], entries: ['a'] }, /propose.entries/],
    ['a boolean given as a number', { ...samples[5], granted: 1 }, /voteResponse.granted: expected a boolean/],
  ])('rejects %s', (_name, m, reason) => {
    const r = validateMessage(m);
    expect(typeof r).toBe('string');
    expect(r).toMatch(reason);
  });

  function withEntry(patch: Record<string, unknown>): unknown {
    const append = samples[0] as Extract<Message, { type: 'append' }>;
    return { ...append, entries: [{ ...append.entries[0], ...patch }, ...append.entries.slice(1)] };
  }
});
