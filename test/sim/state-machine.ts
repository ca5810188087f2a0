// The simulated replicated state machine, pluggable per cluster: commands carry a unique id (clientId, seq) and the
// default machine applies each id's effect once, like a client session, so 'applied exactly once' can be checked.
// A snapshot is its whole state as bytes; restoring one replaces the state.
import type { Entry } from '../../src/raft/types.js';

/** A command's unique id: a client and its sequence number. */
export interface CommandId {
  readonly clientId: number;
  readonly seq: number;
}

export const commandHeaderBytes = 8;

/** Encodes a command: clientId and seq as two big-endian u32, then `payloadBytes` bytes derived from the id. */
export function encodeCommand(id: CommandId, payloadBytes = 0): Uint8Array {
  const data = new Uint8Array(commandHeaderBytes + payloadBytes);
  const view = new DataView(data.buffer);
  view.setUint32(0, id.clientId);
  view.setUint32(4, id.seq);
  for (let i = 0; i < payloadBytes; i++) data[commandHeaderBytes + i] = (id.clientId * 31 + id.seq + i) & 0xff;
  return data;
}

export function decodeCommand(data: Uint8Array): CommandId | null {
  if (data.byteLength < commandHeaderBytes) return null;
  const clientId = ((data[0]! << 24) | (data[1]! << 16) | (data[2]! << 8) | data[3]!) >>> 0;
  const seq = ((data[4]! << 24) | (data[5]! << 16) | (data[6]! << 8) | data[7]!) >>> 0;
  return { clientId, seq };
}

export const commandKey = (id: CommandId): string => `${id.clientId}:${id.seq}`;

/** A numeric key for maps on hot paths: exact while seq < 2^26 and clientId < 2^26. */
const numericKey = (id: CommandId): number => id.clientId * 0x4000000 + id.seq;

/** What applying one committed entry meant: the command it carried, and whether its effect happened now. */
export interface AppliedCommand extends CommandId {
  /** False when the id had been applied before (a retried proposal committed twice): the effect is skipped. */
  readonly effective: boolean;
}

/** One node's state machine. A restarted node gets a fresh one, restores its snapshot and re-applies the log after it. */
export interface SimStateMachine {
  apply(entry: Entry): AppliedCommand | null;
  /** The whole state as bytes (what a snapshot of this machine holds). */
  snapshot(): Uint8Array;
  /** Replaces the whole state with a snapshot's. */
  restore(data: Uint8Array): void;
  /** How many times the effect of command `id` was applied; exactly-once wants 1. */
  effectCount(id: CommandId): number;
  /** A digest of the state, equal on two nodes that applied the same commands. */
  digest(): string;
}

export type StateMachineFactory = () => SimStateMachine;

/** Applies each command id once, remembering every id it has seen (a client session without expiry). */
export class SessionStateMachine implements SimStateMachine {
  private readonly effects = new Map<number, number>();
  private hash = 0;
  private count = 0;

  apply(entry: Entry): AppliedCommand | null {
    if (entry.type !== 'command') return null;
    const id = decodeCommand(entry.data);
    if (id === null) return null;
    const key = numericKey(id);
    if (this.effects.has(key)) return { clientId: id.clientId, seq: id.seq, effective: false };
    this.effects.set(key, 1);
    this.count++;
    this.hash = (Math.imul(this.hash ^ id.clientId, 0x01000193) + id.seq) >>> 0;
    return { clientId: id.clientId, seq: id.seq, effective: true };
  }

  effectCount(id: CommandId): number {
    return this.effects.get(numericKey(id)) ?? 0;
  }

  digest(): string {
    return `${this.count}/${this.hash.toString(16)}`;
  }

  /** count, hash, then every applied command's numeric key, as float64s. */
  snapshot(): Uint8Array {
    const out = new Float64Array(2 + this.effects.size);
    out[0] = this.count;
    out[1] = this.hash;
    let i = 2;
    for (const key of this.effects.keys()) out[i++] = key;
    return new Uint8Array(out.buffer);
  }

  restore(data: Uint8Array): void {
    const values = new Float64Array(Uint8Array.from(data).buffer);
    this.count = values[0]!;
    this.hash = values[1]!;
    this.effects.clear();
    for (let i = 2; i < values.length; i++) this.effects.set(values[i]!, 1);
  }
}

/** Counts applied commands and nothing else: for benchmarks, where the state machine must cost next to nothing. */
export class CountingStateMachine implements SimStateMachine {
  applied = 0;

  apply(entry: Entry): AppliedCommand | null {
    if (entry.type === 'command') this.applied++;
    return null;
  }

  effectCount(): number {
    return 0;
  }

  digest(): string {
    return String(this.applied);
  }

  snapshot(): Uint8Array {
    return new Uint8Array(new Float64Array([this.applied]).buffer);
  }

  restore(data: Uint8Array): void {
    this.applied = new Float64Array(Uint8Array.from(data).buffer)[0]!;
  }
}
