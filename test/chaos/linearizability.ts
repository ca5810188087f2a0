// A linearizability checker in the Wing & Gong style with Lowe's memoization, as Porcupine does it: a depth-first
// search over the order of concurrent operations, pruned by a cache of (set of linearized operations, model state).
// The model here is a key-value register with versions and compare-and-set, checked one key at a time.
import { SeededRandom } from '../../src/lib/random.js';

/** A sequential specification. `step` is deterministic: one outcome per (state, input, output). */
export interface Model<S, I, O> {
  init(): S;
  /**
   * The state after `input` answered `output` in `state`, or undefined if that answer is impossible there. A null
   * output is an unknown outcome (a timeout): the operation took effect, whatever it answered.
   */
  step(state: S, input: I, output: O | null): S | undefined;
  /** Equal states have equal keys: the memo table compares states by key. */
  key(state: S): string;
}

export interface Operation<I, O> {
  /** The caller's id, used in reports. */
  readonly id: number;
  readonly input: I;
  /** null: unknown outcome. It may take effect at any time after callMs, or never (then it linearizes last). */
  readonly output: O | null;
  readonly callMs: number;
  /** Ignored (taken as infinity) when the output is unknown. */
  readonly returnMs: number;
}

export interface CheckBudget {
  /** Search steps before giving up with 'unknown'. */
  readonly stepsMax?: number;
  /** performance.now() deadline, checked every few thousand steps. */
  readonly deadlineMs?: number;
}

export type CheckResult =
  | { readonly verdict: 'ok'; readonly steps: number }
  /** `longestPrefix`: the ids of the longest linearizable prefix the search found, in order. */
  | { readonly verdict: 'illegal'; readonly steps: number; readonly longestPrefix: readonly number[] }
  | { readonly verdict: 'unknown'; readonly steps: number; readonly reason: string };

/** One event of the search's doubly linked list: an operation's call, or its return. */
interface Entry {
  readonly op: number;
  readonly isCall: boolean;
  match: Entry | null;
  prev: Entry | null;
  next: Entry | null;
}

const defaultStepsMax = 5_000_000;

/** Decides whether the operations, as a history of one object, are linearizable with respect to the model. */
export function checkOperations<S, I, O>(model: Model<S, I, O>, ops: readonly Operation<I, O>[], budget: CheckBudget = {}): CheckResult {
  const stepsMax = budget.stepsMax ?? defaultStepsMax;
  const head = buildEntries(ops);
  const bits = new Bitset(ops.length);
  const zobrist = zobristTable(ops.length);
  const cache = new MemoCache();
  const calls: { entry: Entry; state: S }[] = [];
  let state = model.init();
  let hash = 0;
  let longest: number[] = [];
  let steps = 0;
  let entry = head.next;
  while (head.next !== null && entry !== null) {
    if (++steps > stepsMax) return { verdict: 'unknown', steps, reason: `the search took more than ${stepsMax} steps` };
    if ((steps & 0xfff) === 0 && budget.deadlineMs !== undefined && performance.now() > budget.deadlineMs) {
      return { verdict: 'unknown', steps, reason: 'the search ran out of time' };
    }
    if (entry.isCall) {
      const op = ops[entry.op]!;
      const next = model.step(state, op.input, op.output);
      if (next !== undefined) {
        bits.set(entry.op);
        const nextHash = (hash ^ zobrist[entry.op]!) >>> 0;
        if (cache.add(nextHash, bits, model.key(next))) {
          calls.push({ entry, state });
          if (calls.length > longest.length) longest = calls.map((c) => ops[c.entry.op]!.id);
          state = next;
          hash = nextHash;
          lift(entry);
          entry = head.next;
          continue;
        }
        bits.clear(entry.op);
      }
      entry = entry.next;
    } else {
      // An operation returned before any order could place it: undo the last choice and try the next candidate.
      const top = calls.pop();
      if (top === undefined) return { verdict: 'illegal', steps, longestPrefix: longest };
      state = top.state;
      bits.clear(top.entry.op);
      hash = (hash ^ zobrist[top.entry.op]!) >>> 0;
      unlift(top.entry);
      entry = top.entry.next;
    }
  }
  return { verdict: 'ok', steps };
}

/** Calls and returns sorted by time; at equal times calls first, so touching operations count as concurrent. */
function buildEntries<I, O>(ops: readonly Operation<I, O>[]): Entry {
  const events: { atMs: number; entry: Entry }[] = [];
  ops.forEach((op, i) => {
    const call: Entry = { op: i, isCall: true, match: null, prev: null, next: null };
    const ret: Entry = { op: i, isCall: false, match: null, prev: null, next: null };
    call.match = ret;
    const returnMs = op.output === null ? Infinity : op.returnMs;
    events.push({ atMs: op.callMs, entry: call }, { atMs: Math.max(returnMs, op.callMs), entry: ret });
  });
  events.sort((a, b) => a.atMs - b.atMs || Number(b.entry.isCall) - Number(a.entry.isCall) || a.entry.op - b.entry.op);
  const head: Entry = { op: -1, isCall: false, match: null, prev: null, next: null };
  let last = head;
  for (const { entry } of events) {
    last.next = entry;
    entry.prev = last;
    last = entry;
  }
  return head;
}

/** Takes a call and its return out of the list (dancing links: unlift puts them back in reverse order). */
function lift(call: Entry): void {
  call.prev!.next = call.next;
  call.next!.prev = call.prev;
  const ret = call.match!;
  ret.prev!.next = ret.next;
  if (ret.next !== null) ret.next.prev = ret.prev;
}

function unlift(call: Entry): void {
  const ret = call.match!;
  ret.prev!.next = ret;
  if (ret.next !== null) ret.next.prev = ret;
  call.prev!.next = call;
  call.next!.prev = call;
}

class Bitset {
  readonly words: Uint32Array;
  constructor(size: number) {
    this.words = new Uint32Array(Math.ceil(size / 32));
  }
  set(i: number): void {
    this.words[i >>> 5]! |= 1 << (i & 31);
  }
  clear(i: number): void {
    this.words[i >>> 5]! &= ~(1 << (i & 31));
  }
}

/** Random words per operation, XORed into a hash of the linearized set as it changes. Seeded: runs are repeatable. */
function zobristTable(n: number): Uint32Array {
  const random = new SeededRandom(0x5eed);
  const table = new Uint32Array(n);
  for (let i = 0; i < n; i++) table[i] = random.int(0x100000000);
  return table;
}

/** (linearized set, state) pairs seen: buckets by hash and state key, compared exactly so a collision costs nothing. */
class MemoCache {
  private readonly buckets = new Map<string, Uint32Array[]>();

  /** Adds the pair; false if it was there already. */
  add(hash: number, bits: Bitset, stateKey: string): boolean {
    const key = `${hash}|${stateKey}`;
    const bucket = this.buckets.get(key);
    if (bucket === undefined) {
      this.buckets.set(key, [bits.words.slice()]);
      return true;
    }
    if (bucket.some((b) => sameWords(b, bits.words))) return false;
    bucket.push(bits.words.slice());
    return true;
  }
}

function sameWords(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---- the key-value register with versions ----

/**
 * A key's state: absent, or a value at a version (the log index of its last write). Versions only grow, so a write
 * that answers a version not above the current one cannot be placed there.
 */
export type RegisterState = { readonly value: string; readonly version: number } | null;

export type RegisterInput =
  | { readonly op: 'read' }
  /** A put; with ifVersion a compare-and-set (0: the key must not exist). `assumedVersion`: see resolveVersions. */
  | { readonly op: 'put'; readonly value: string; readonly ifVersion?: number; readonly assumedVersion?: number }
  | { readonly op: 'delete'; readonly ifVersion?: number };

export type RegisterOutput =
  /** A read that found the key. */
  | { readonly kind: 'value'; readonly value: string; readonly version: number }
  /** A read, or a delete, that found no key (404). */
  | { readonly kind: 'absent' }
  /** A put or delete that was applied, with the version it answered. */
  | { readonly kind: 'written'; readonly version: number }
  /** A compare-and-set refused (409): the version did not match. */
  | { readonly kind: 'mismatch' };

export const registerModel: Model<RegisterState, RegisterInput, RegisterOutput> = {
  init: () => null,
  key: (s) => (s === null ? '-' : `${s.version}:${s.value}`),
  step(s, input, output) {
    switch (input.op) {
      case 'read':
        if (output === null) return s;
        if (output.kind === 'absent') return s === null ? s : undefined;
        if (output.kind === 'value') return s !== null && s.value === output.value && s.version === output.version ? s : undefined;
        return undefined;
      case 'put':
        return stepPut(s, input, output);
      case 'delete':
        return stepDelete(s, input, output);
    }
  },
};

function stepPut(s: RegisterState, input: Extract<RegisterInput, { op: 'put' }>, output: RegisterOutput | null): RegisterState | undefined {
  const current = s?.version ?? 0;
  const matches = input.ifVersion === undefined || input.ifVersion === current;
  if (output === null) return matches ? { value: input.value, version: input.assumedVersion ?? Number.NaN } : s;
  if (output.kind === 'written') return matches && output.version > current ? { value: input.value, version: output.version } : undefined;
  if (output.kind === 'mismatch') return input.ifVersion !== undefined && !matches ? s : undefined;
  return undefined;
}

function stepDelete(s: RegisterState, input: Extract<RegisterInput, { op: 'delete' }>, output: RegisterOutput | null): RegisterState | undefined {
  const current = s?.version ?? 0;
  const matches = input.ifVersion === undefined || input.ifVersion === current;
  if (output === null) return matches ? null : s;
  if (output.kind === 'written') return matches && s !== null && output.version > current ? null : undefined;
  if (output.kind === 'absent') return matches && s === null ? s : undefined;
  if (output.kind === 'mismatch') return input.ifVersion !== undefined && !matches ? s : undefined;
  return undefined;
}

export type RegisterOperation = Operation<RegisterInput, RegisterOutput>;

/**
 * Gives every put of unknown outcome the version it would have had. Written values are unique, so a read that saw
 * the value saw that put's version. A put nobody saw gets a version no one can name (negative, unique): no
 * compare-and-set can match it, which is right, since no client could have learned it.
 */
export function resolveVersions(ops: readonly RegisterOperation[]): RegisterOperation[] {
  const seen = new Map<string, number>();
  for (const op of ops) if (op.output?.kind === 'value') seen.set(op.output.value, op.output.version);
  return ops.map((op) => {
    if (op.input.op !== 'put' || op.output !== null || op.input.assumedVersion !== undefined) return op;
    return { ...op, input: { ...op.input, assumedVersion: seen.get(op.input.value) ?? -(op.id + 1) } };
  });
}

/** Checks each key's history on its own (linearizability is compositional); keys are checked in name order. */
export function checkRegisterHistories(
  byKey: ReadonlyMap<string, readonly RegisterOperation[]>,
  budget: CheckBudget = {},
): Map<string, CheckResult> {
  const results = new Map<string, CheckResult>();
  for (const key of [...byKey.keys()].sort()) {
    results.set(key, checkOperations(registerModel, resolveVersions(byKey.get(key)!), budget));
  }
  return results;
}

/** Lines that explain an illegal verdict: the longest linearizable prefix's tail, its state, and what could not follow. */
export function explainIllegal<S, I, O>(model: Model<S, I, O>, ops: readonly Operation<I, O>[], prefix: readonly number[], show: (op: Operation<I, O>) => string): string[] {
  const byId = new Map(ops.map((op) => [op.id, op]));
  let state = model.init();
  for (const id of prefix) state = model.step(state, byId.get(id)!.input, byId.get(id)!.output) ?? state;
  const placed = new Set(prefix);
  const rest = ops.filter((op) => !placed.has(op.id));
  // The candidates to go next: every remaining operation called before the first remaining return.
  const firstReturnMs = Math.min(...rest.map((op) => (op.output === null ? Infinity : op.returnMs)));
  const candidates = rest.filter((op) => op.callMs <= firstReturnMs);
  return [
    `longest linearizable prefix: ${prefix.length} of ${ops.length} operations; its last ones:`,
    ...prefix.slice(-8).map((id) => `  ${show(byId.get(id)!)}`),
    `state after it: ${model.key(state)}`,
    'none of these can go next:',
    ...candidates.slice(0, 12).map((op) => `  ${show(op)}`),
  ];
}
