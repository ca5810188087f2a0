// A worker restarted over a data directory holding the output it kept of ended tasks: it takes charge of every such
// file, deleting each containerRetentionS after its task ended, on a clock whose monotonic reading (process uptime)
// is nowhere near its wall reading, as in production.
import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryHost, MemoryRuntime } from '../../src/runtime/index.js';
import { WorkerAgent } from '../../src/worker/agent.js';
import { FileKeptLogs } from '../../src/worker/kept-logs.js';
import { rejection } from '../support/errors.js';
import { ManualClock } from '../support/manual-clock.js';
import { waitFor } from '../support/wait.js';

const logger = pino({ level: 'silent' });
const retentionMs = 120_000;
const dirs: string[] = [];
const agents: WorkerAgent[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) await a.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A data directory's `logs`, and a clock whose wall reading is the system's (file times are) and whose monotonic reading starts at 0. */
function restartScene(): { dir: string; clock: ManualClock } {
  const root = mkdtempSync(join(tmpdir(), 'minkube-kept-restart-'));
  dirs.push(root);
  const clock = new ManualClock(0);
  clock.stepWall(Date.now());
  return { dir: join(root, 'logs'), clock };
}

/** Moves the clock on once the sweep has set its timer again (it does so once its deletions are done). */
async function advance(clock: ManualClock, ms: number): Promise<void> {
  await waitFor('the sweep timer set', () => clock.nextDelayMs() !== null);
  clock.advance(ms);
}

function restart(dir: string, clock: ManualClock, tasksMax?: number): WorkerAgent {
  const agent = new WorkerAgent({
    workerId: 'w1', runtime: new MemoryRuntime({ host: new MemoryHost(), clock }), logger, stopTimeoutMs: 50, clock,
    finishedRetentionMs: retentionMs, keptLogs: new FileKeptLogs(dir), ...(tasksMax === undefined ? {} : { tasksMax }),
  });
  agents.push(agent);
  return agent;
}

describe('a restarted worker and the output its previous run kept', () => {
  it('deletes each file containerRetentionS after its task ended (a damaged one from when it was written), by its own timer, and leaves other files alone', async () => {
    const { dir, clock } = restartScene();
    const store = new FileKeptLogs(dir);
    const now = clock.nowMs();
    await store.save({ taskId: 'ended-10s-ago', attempt: 1, finishedAtMs: now - 10_000, text: 'ten\n' });
    await store.save({ taskId: 'ended-100s-ago', attempt: 2, finishedAtMs: now - 100_000, text: 'hundred\n' });
    await store.save({ taskId: 'ended-long-ago', attempt: 1, finishedAtMs: now - 3 * retentionMs, text: 'old\n' });
    await store.save({ taskId: 'ahead', attempt: 1, finishedAtMs: now + 3_600_000, text: 'a clock ahead\n' });
    writeFileSync(join(dir, 'damaged.json'), '{"taskId":"damaged","att');
    utimesSync(join(dir, 'damaged.json'), (now - 60_000) / 1000, (now - 60_000) / 1000);
    writeFileSync(join(dir, 'cut.json.tmp'), '{"taskId":"cut"');
    utimesSync(join(dir, 'cut.json.tmp'), (now - 90_000) / 1000, (now - 90_000) / 1000);
    writeFileSync(join(dir, 'notes.txt'), 'not kept output');

    const agent = restart(dir, clock);
    expect(await agent.restoreKeptLogs()).toBe(3);
    expect(await agent.logs('ended-10s-ago', 10)).toBe('ten\n');
    expect((await rejection(agent.logs('damaged', 10))).code).toBe('TASK_NOT_FOUND');
    await waitFor('the one past its retention deleted at once', () => !readdirSync(dir).includes('ended-long-ago.json'));

    const left = (): string[] => readdirSync(dir).sort();
    await advance(clock, 20_000); // 120 s after the task that ended 100 s before the start
    await waitFor('the file of the task that ended 100 s before the start deleted', () => !left().includes('ended-100s-ago.json'));
    expect((await rejection(agent.logs('ended-100s-ago', 10))).code).toBe('TASK_NOT_FOUND');
    expect(left()).toEqual(['ahead.json', 'cut.json.tmp', 'damaged.json', 'ended-10s-ago.json', 'notes.txt']);
    await advance(clock, 10_000);
    await waitFor('the write cut short deleted (written 90 s before the start)', () => !left().includes('cut.json.tmp'));
    await advance(clock, 30_000);
    await waitFor('the damaged file deleted (written 60 s before the start)', () => !left().includes('damaged.json'));
    await advance(clock, 50_000);
    await waitFor('the file of the task that ended 10 s before the start deleted', () => !left().includes('ended-10s-ago.json'));
    expect(left()).toEqual(['ahead.json', 'notes.txt']);
    await advance(clock, 10_000);
    await waitFor('one whose end a clock ahead wrote kept no longer than the retention', () => left().length === 1);
    expect(left()).toEqual(['notes.txt']);
    expect((await rejection(agent.logs('ended-10s-ago', 10))).code).toBe('TASK_NOT_FOUND');
  });

  it('takes a directory of thousands of files in batches: the newest tasksMax answered, the rest deleted, all gone by one timer when due', async () => {
    const { dir, clock } = restartScene();
    const store = new FileKeptLogs(dir);
    const now = clock.nowMs();
    const count = 3000;
    await store.save({ taskId: 't0', attempt: 1, finishedAtMs: now - 60_000, text: '0\n' }); // makes the directory as a worker does
    for (let i = 1; i < count; i++) writeFileSync(join(dir, `t${i}.json`), JSON.stringify({ taskId: `t${i}`, attempt: 1, finishedAtMs: now - 60_000 + i, text: `${i}\n` }));

    const agent = restart(dir, clock, 100);
    expect(await agent.restoreKeptLogs()).toBe(100);
    expect(await agent.logs(`t${count - 1}`, 10)).toBe(`${count - 1}\n`);
    await waitFor('all but the newest 100 deleted', () => readdirSync(dir).length === 100);
    expect(clock.nextDelayMs()).toBe(retentionMs - 60_000 + (count - 100)); // one timer, for the oldest one kept
    await advance(clock, retentionMs);
    for (let i = 0; i < 5 && readdirSync(dir).length > 0; i++) await clock.fireNext().catch(() => undefined);
    await waitFor('every file deleted', () => readdirSync(dir).length === 0);
  });

  it('a forget from the managers deletes a restored file at once', async () => {
    const { dir, clock } = restartScene();
    await new FileKeptLogs(dir).save({ taskId: 'gone', attempt: 1, finishedAtMs: clock.nowMs() - 1000, text: 'x\n' });
    const agent = restart(dir, clock);
    expect(await agent.restoreKeptLogs()).toBe(1);
    agent.forget(['gone']);
    await waitFor('the file deleted', () => readdirSync(dir).length === 0);
  });
});
