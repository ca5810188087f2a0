// A state machine restored lazily (prepareRestore: records kept as their snapshot bytes until read) behaves exactly
// as one restored whole (restore()): for any commands and reads after the restore, in any order, the same answers,
// and the same snapshot bytes at any point, whichever records were read or changed first. So does one that never
// restored: both compact their records into each snapshot they take (captureSnapshotParts), also when commands
// are applied, records read, other snapshots taken or the state restored between a capture's slices (of its encoding
// and of its compaction, stepped by hand); the reference never compacts.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeCommand, type Command } from '../../src/kv/commands.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';

const KEYS = 40;
const TASKS = 40;
const key = (i: number): string => `key-${String(i).padStart(3, '0')}`;
const taskId = (i: number): string => `t${String(i).padStart(17, '0')}`;
const spec = (i: number, ns?: string): { name: string; image: string; command: string[]; namespace?: string; resources?: { cpus: number } } => ({
  name: `job-${i}`, image: 'busybox', command: ['true'], ...(ns === undefined ? {} : { namespace: ns, resources: { cpus: 0.25 } }),
});

/** Yields that return only when the test steps them (tick), so commands land between a snapshot's slices. */
const pendingYields: (() => void)[] = [];
const steppedYield = (): Promise<void> => new Promise<void>((resolve) => pendingYields.push(resolve));
/** Lets every snapshot waiting at a yield go on to its next one. */
async function tick(): Promise<void> {
  for (const resume of pendingYields.splice(0)) resume();
  await new Promise((resolve) => setImmediate(resolve));
}
async function settled<T>(p: Promise<T>): Promise<T> {
  let done = false;
  p.then(() => (done = true), () => (done = true));
  while (!done) await tick();
  return p;
}
/** Slices of three records: a compaction of the 40 keys spans many yields. */
const stepped = { snapshotYield: steppedYield, compactSliceKeys: 3 };

/** A machine holding keys, tasks in several states (some in a namespace with resources), two workers and idempotency keys. */
function seeded(): KvStateMachine {
  const sm = new KvStateMachine(stepped);
  let index = 0;
  const run = (cmd: Command): void => {
    index++;
    const r = sm.apply(index, encodeCommand({ clientId: 'seed', seq: index, ...(index > 1 ? { ackSeq: index - 1 } : {}), cmd }));
    expect(r.ok, JSON.stringify(r)).toBe(true);
  };
  for (let i = 0; i < KEYS; i++) run({ op: 'put', key: key(i), value: `value ${i}` });
  for (const w of ['w1', 'w2']) run({ op: 'worker.register', workerId: w, apiAddress: `127.0.0.1:${w === 'w1' ? 1 : 2}`, runtime: 'memory', atMs: 1 });
  const tasks = Array.from({ length: TASKS }, (_, i) => ({ taskId: taskId(i), spec: spec(i, i % 3 === 0 ? 'team-a' : undefined), idempotencyKey: `k ${i}` }));
  run({ op: 'task.submitBatch', atMs: 1000, tasks });
  run({ op: 'task.place', term: 1, atMs: 2000, cursor: 'w2', placements: tasks.slice(0, 20).map((t, i) => ({ taskId: t.taskId, attempt: 1, workerId: i % 2 === 0 ? 'w1' : 'w2' })) });
  const reports = tasks.slice(0, 10).map((t, i) => ({ taskId: t.taskId, workerId: i % 2 === 0 ? 'w1' : 'w2', attempt: 1, term: 1, state: 'succeeded' as const, containerId: 'c', exitCode: 0, error: null, retryAtMs: 0 }));
  run({ op: 'task.report', atMs: 3000, reports });
  // Drained attempts and attempts draining (w2's placed tasks), in the snapshot's rows; w2 takes tasks again after.
  run({ op: 'worker.availability', workerId: 'w2', availability: 'drain', atMs: 3500 });
  const t11 = { taskId: taskId(11), workerId: 'w2', attempt: 1, term: 1, state: 'stopped' as const, containerId: 'c', exitCode: null, error: null, retryAtMs: 0 };
  run({ op: 'task.report', atMs: 3600, reports: [t11] });
  run({ op: 'worker.availability', workerId: 'w2', availability: 'active', atMs: 3700 });
  return sm;
}

type Step =
  | { kind: 'put'; k: number }
  | { kind: 'delete'; k: number }
  | { kind: 'submit'; t: number; sameSpec: boolean }
  | { kind: 'stop'; t: number }
  | { kind: 'place'; t: number }
  | { kind: 'remove'; t: number }
  | { kind: 'readKey'; k: number }
  | { kind: 'readTask'; t: number }
  | { kind: 'list' }
  | { kind: 'capture' }
  | { kind: 'begin' }
  | { kind: 'tick'; n: number }
  | { kind: 'readAll' }
  | { kind: 'restore' }
  | { kind: 'finish' };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('put' as const), k: fc.nat(KEYS + 5) }),
  fc.record({ kind: fc.constant('delete' as const), k: fc.nat(KEYS + 5) }),
  fc.record({ kind: fc.constant('submit' as const), t: fc.nat(TASKS + 5), sameSpec: fc.boolean() }),
  fc.record({ kind: fc.constant('stop' as const), t: fc.nat(TASKS + 5) }),
  fc.record({ kind: fc.constant('place' as const), t: fc.nat(TASKS + 5) }),
  fc.record({ kind: fc.constant('remove' as const), t: fc.nat(TASKS + 5) }),
  fc.record({ kind: fc.constant('readKey' as const), k: fc.nat(KEYS + 5) }),
  fc.record({ kind: fc.constant('readTask' as const), t: fc.nat(TASKS + 5) }),
  fc.constant({ kind: 'list' as const }),
  fc.constant({ kind: 'capture' as const }),
  fc.constant({ kind: 'begin' as const }),
  fc.record({ kind: fc.constant('tick' as const), n: fc.integer({ min: 1, max: 8 }) }),
  fc.constant({ kind: 'readAll' as const }),
  fc.constant({ kind: 'restore' as const }),
  fc.constant({ kind: 'finish' as const }),
);

function commandOf(s: Step, at: number): Command | null {
  switch (s.kind) {
    case 'put':
      return { op: 'put', key: key(s.k), value: `new ${at}` };
    case 'delete':
      return { op: 'delete', key: key(s.k) };
    case 'submit':
      return { op: 'task.submit', taskId: taskId(1000 + at), spec: spec(s.sameSpec ? s.t : s.t + 500), atMs: 5000 + at, idempotencyKey: `k ${s.t}` };
    case 'stop':
      return { op: 'task.stop', taskId: taskId(s.t), atMs: 5000 + at };
    case 'place':
      return { op: 'task.place', term: 2, atMs: 5000 + at, cursor: 'w1', placements: [{ taskId: taskId(s.t), attempt: 1, workerId: 'w1' }] };
    case 'remove':
      return { op: 'task.remove', taskIds: [taskId(s.t)], atMs: 5000 + at };
    case 'readKey':
    case 'readTask':
    case 'list':
    case 'capture':
    case 'begin':
    case 'tick':
    case 'readAll':
    case 'restore':
    case 'finish':
      return null;
  }
}

describe('a lazily restored state machine', () => {
  it('answers and snapshots as one restored whole, whatever is read or changed after, and so does a live one', async () => {
    const bytes = seeded().snapshot();
    const equalBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 40 }), async (steps) => {
        pendingYields.length = 0;
        const lazy = new KvStateMachine(stepped);
        (await lazy.prepareRestore(bytes, async () => {}))();
        const live = seeded();
        const whole = new KvStateMachine({ ...stepped, compactOnSnapshot: false });
        whole.restore(bytes);
        const tried = [lazy, live];
        let index = whole.appliedIndex;
        // Captures begun and not finished yet: their encodings (and compactions) run at a later 'finish'.
        let begun: { whole: () => Promise<Uint8Array>; tried: (() => Promise<Uint8Array>)[] } | null = null;
        for (const [i, s] of steps.entries()) {
          const cmd = commandOf(s, i);
          if (cmd !== null) {
            index++;
            const entry = encodeCommand({ clientId: 'p', seq: i + 1, cmd });
            const expected = whole.apply(index, entry);
            for (const sm of tried) expect(sm.apply(index, entry)).toEqual(expected);
          } else if (s.kind === 'readKey') {
            for (const sm of tried) expect(sm.get(key(s.k))).toEqual(whole.get(key(s.k)));
          } else if (s.kind === 'readTask') {
            for (const sm of tried) expect(sm.tasks.task(taskId(s.t))).toEqual(whole.tasks.task(taskId(s.t)));
          } else if (s.kind === 'list') {
            for (const sm of tried) {
              expect(sm.list('key-0', { limit: 7 })).toEqual(whole.list('key-0', { limit: 7 }));
              expect(sm.tasks.listTasks({ limit: 9 }).items).toEqual(whole.tasks.listTasks({ limit: 9 }).items);
            }
          } else if (s.kind === 'begin') {
            begun ??= { whole: whole.captureSnapshot(), tried: tried.map((sm) => sm.captureSnapshot()) };
          } else if (s.kind === 'tick') {
            for (let n = 0; n < s.n; n++) await tick();
          } else if (s.kind === 'readAll') {
            for (let k = 0; k < KEYS + 5; k++) for (const sm of tried) expect(sm.get(key(k))).toEqual(whole.get(key(k)));
          } else if (s.kind === 'restore') {
            // A restore while a capture is open: the capture still encodes (and compacts nothing of) the old state.
            whole.restore(bytes);
            for (const sm of tried) (await sm.prepareRestore(bytes, async () => {}))();
            index = whole.appliedIndex;
          } else if (s.kind === 'finish') {
            if (begun === null) continue;
            const expected = await settled(begun.whole());
            for (const encode of begun.tried) expect(equalBytes(await settled(encode()), expected)).toBe(true);
            begun = null;
          } else {
            const expected = await settled(whole.captureSnapshot()());
            for (const sm of tried) expect(equalBytes(await settled(sm.captureSnapshot()()), expected)).toBe(true);
          }
          for (const sm of tried) for (const ns of ['team-a', 'default']) expect(sm.tasks.usage.of(ns)).toEqual(whole.tasks.usage.of(ns));
        }
        if (begun !== null) await settled(Promise.all([begun.whole(), ...begun.tried.map((encode) => encode())]));
        for (const sm of tried) {
          expect(sm.tasks.taskCount).toBe(whole.tasks.taskCount);
          expect(sm.tasks.countIn('pending')).toBe(whole.tasks.countIn('pending'));
          expect(sm.tasks.activeCount('w1')).toBe(whole.tasks.activeCount('w1'));
          expect(equalBytes(await settled(sm.captureSnapshot()()), await settled(whole.captureSnapshot()()))).toBe(true);
          expect(equalBytes(sm.snapshot(), whole.snapshot())).toBe(true);
          // Everything read back after a last compaction: every record decodes from its row to what the reference holds.
          await settled(sm.captureSnapshot()());
          for (let k = 0; k < KEYS + 5; k++) expect(sm.get(key(k))).toEqual(whole.get(key(k)));
          for (let t = 0; t < TASKS + 5; t++) expect(sm.tasks.task(taskId(t))).toEqual(whole.tasks.task(taskId(t)));
          expect(equalBytes(sm.snapshot(), whole.snapshot())).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});
