// Placement policies: round-robin over ready workers from the replicated cursor, retries avoiding their last worker,
// and least-loaded as a second policy behind the same interface.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { leastLoaded, roundRobin, type PlacementTask, type PlacementWorker } from '../../src/scheduler/index.js';
import { explainPlacement } from '../../src/scheduler/explain.js';

const worker = (id: string, activeTasks = 0, cpuUtilization: number | null = null): PlacementWorker => ({ id, activeTasks, cpuUtilization });
const task = (id: string, avoidWorkerId: string | null = null, attempt = 1): PlacementTask => ({ id, attempt, avoidWorkerId });
const workers = [worker('w1'), worker('w2'), worker('w3')];

describe('round-robin', () => {
  it('takes the workers in id order from the start and keeps the last one as the cursor', () => {
    const d = roundRobin.place({ tasks: ['a', 'b', 'c', 'd'].map((id) => task(id)), workers, cursor: null });
    expect(d.placements.map((p) => p.workerId)).toEqual(['w1', 'w2', 'w3', 'w1']);
    expect(d.cursor).toBe('w1');
    expect(d.placements[0]).toEqual({ taskId: 'a', attempt: 1, workerId: 'w1' });
  });

  it('continues after the cursor, so batches (and a new leader) carry on the rotation', () => {
    const first = roundRobin.place({ tasks: [task('a'), task('b')], workers, cursor: null });
    const second = roundRobin.place({ tasks: [task('c'), task('d')], workers, cursor: first.cursor });
    expect([...first.placements, ...second.placements].map((p) => p.workerId)).toEqual(['w1', 'w2', 'w3', 'w1']);
  });

  it('a cursor naming a worker that is gone continues with the next id', () => {
    const d = roundRobin.place({ tasks: [task('a'), task('b')], workers: [worker('w1'), worker('w3')], cursor: 'w2' });
    expect(d.placements.map((p) => p.workerId)).toEqual(['w3', 'w1']);
    expect(roundRobin.place({ tasks: [task('a')], workers, cursor: 'w9' }).placements[0]!.workerId).toBe('w1');
  });

  it('a retry skips the worker of its previous attempt unless it is the only one', () => {
    expect(roundRobin.place({ tasks: [task('a', 'w1', 2), task('b')], workers, cursor: null }).placements.map((p) => p.workerId)).toEqual(['w2', 'w3']);
    expect(roundRobin.place({ tasks: [task('a', 'w1', 2)], workers: [worker('w1')], cursor: null }).placements[0]!.workerId).toBe('w1');
  });

  it('a service replica goes to the eligible worker holding the fewest of its service, the rotation breaking ties', () => {
    const web = (id: string, avoid: string | null = null): PlacementTask => ({ ...task(id, avoid), spreadGroup: 'web' });
    const spread = new Map([['web', new Map([['w1', 2], ['w2', 1], ['w3', 2]])]]);
    // a fills w2; then all hold 2 and the rotation (after w2) gives w3, w1; a task of no service keeps to the rotation.
    const d = roundRobin.place({ tasks: [web('a'), web('b'), web('c'), task('x')], workers, cursor: null, spread });
    expect(d.placements.map((p) => p.workerId)).toEqual(['w2', 'w3', 'w1', 'w2']);
    // A new service (no copies yet) spreads exactly as round-robin does.
    const fresh = roundRobin.place({ tasks: ['a', 'b', 'c', 'd'].map((id) => ({ ...task(id), spreadGroup: 'api' })), workers, cursor: 'w1', spread });
    expect(fresh.placements.map((p) => p.workerId)).toEqual(['w2', 'w3', 'w1', 'w2']);
    // Not on an ineligible worker however few it holds.
    const full = [worker('w1'), { ...worker('w2'), free: { cpus: 0, memoryMb: 0 } }, worker('w3')];
    expect(roundRobin.place({ tasks: [{ ...web('a'), cpus: 1 }], workers: full, cursor: null, spread }).placements[0]!.workerId).toBe('w1');
  });

  it("a replica's retry keeps the spread: its previous worker loses only ties, unless its last two attempts both ran there", () => {
    const web = (id: string, avoid: string | null, firmly = false): PlacementTask => ({ ...task(id, avoid, 3), spreadGroup: 'web', ...(firmly ? { avoidFirmly: true } : {}) });
    // The tester's case: two workers, one replica each; w2's replica died. Its retry goes back to w2 (0), not onto w1 (1).
    const two = [worker('w1'), worker('w2')];
    const oneLeft = new Map([['web', new Map([['w1', 1]])]]);
    expect(roundRobin.place({ tasks: [web('a', 'w2')], workers: two, cursor: null, spread: oneLeft }).placements[0]!.workerId).toBe('w2');
    // A worker that failed it twice in a row is avoided even so: it goes where the others are.
    expect(roundRobin.place({ tasks: [web('a', 'w2', true)], workers: two, cursor: null, spread: oneLeft }).placements[0]!.workerId).toBe('w1');
    // Among workers holding as few, the previous one loses the tie, wherever the rotation stands.
    const even = new Map([['web', new Map([['w1', 1], ['w2', 1], ['w3', 2]])]]);
    expect(roundRobin.place({ tasks: [web('a', 'w1')], workers, cursor: 'w3', spread: even }).placements[0]!.workerId).toBe('w2');
    expect(roundRobin.place({ tasks: [web('a', 'w2')], workers, cursor: null, spread: even }).placements[0]!.workerId).toBe('w1');
    // Alone eligible, it is taken.
    expect(roundRobin.place({ tasks: [web('a', 'w1', true)], workers: [worker('w1')], cursor: null, spread: even }).placements[0]!.workerId).toBe('w1');
  });

  it('places no more than a worker holds (1,000 scheduled or running), counting this decision, and leaves the rest pending', () => {
    const tasks = Array.from({ length: 5 }, (_, i) => task(`t${i}`));
    const d = roundRobin.place({ tasks, workers: [worker('w1', 998), worker('w2', 1000)], cursor: null });
    expect(d.placements.map((p) => p.workerId)).toEqual(['w1', 'w1']);
    expect(explainPlacement(task('x'), [{ ...worker('w2', 1000), state: 'ready' }])).toEqual([{ workerId: 'w2', eligible: false, reason: 'full: 1000 tasks scheduled or running, the most a worker holds' }]);
    expect(leastLoaded.place({ tasks, workers: [worker('w1', 999), worker('w2', 1000)], cursor: null }).placements.map((p) => p.workerId)).toEqual(['w1']);
  });

  it('no workers or no tasks: no placements, cursor unchanged', () => {
    expect(roundRobin.place({ tasks: [task('a')], workers: [], cursor: 'w2' })).toEqual({ placements: [], cursor: 'w2' });
    expect(roundRobin.place({ tasks: [], workers, cursor: 'w2' })).toEqual({ placements: [], cursor: 'w2' });
  });

  it('property: over any number of tasks without retries, loads differ by at most one', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 0, max: 100 }), fc.constantFrom(null, 'w0', 'w3'), (n, count, cursor) => {
        const ws = Array.from({ length: n }, (_, i) => worker(`w${i}`));
        const d = roundRobin.place({ tasks: Array.from({ length: count }, (_, i) => task(`t${i}`)), workers: ws, cursor });
        const load = ws.map((w) => d.placements.filter((p) => p.workerId === w.id).length);
        expect(Math.max(...load) - Math.min(...load)).toBeLessThanOrEqual(1);
        expect(d.placements).toHaveLength(count);
      }),
    );
  });
});

describe('least-loaded', () => {
  it('fills the emptiest worker first, CPU breaking ties, and leaves the cursor alone', () => {
    const d = leastLoaded.place({ tasks: [task('a'), task('b'), task('c')], workers: [worker('w1', 2, 0.1), worker('w2', 0, 0.9), worker('w3', 0, 0.2)], cursor: 'x' });
    expect(d.placements.map((p) => p.workerId)).toEqual(['w3', 'w2', 'w3']);
    expect(d.cursor).toBe('x');
  });
});
