// The backup file's framing (a file alone verifies: truncated, altered, foreign) and the scheduled backups on a
// manual clock: the leader writes once the newest file is intervalS old and keeps the newest `retain`; a follower
// only reads the directory's newest file into its status; a failed write is reported in lastError.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeCommand } from '../../src/kv/commands.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { logIndex, nodeId, term, type NodeId } from '../../src/lib/ids.js';
import { encodeBackup, inspectBackup, parseBackup } from '../../src/manager/backup-file.js';
import { BackupLoop } from '../../src/manager/backup-loop.js';
import { takeBackup, type BackupSource } from '../../src/manager/backup.js';
import { encodeSnapshot, encodeSnapshotParts } from '../../src/manager/members.js';
import type { SnapshotMeta } from '../../src/raft/types.js';
import { writeFileDurably } from '../../src/storage/snapshot-files.js';
import { asFormat1, replaceOnce, withHeaderRewritten } from '../support/backup-file.js';
import { ManualClock } from '../support/manual-clock.js';

const logger = pino({ level: 'silent' });
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'minkube-backup-'));
  dirs.push(d);
  return d;
}

/** A state machine with `keys` keys and one worker, and a source that captures it as the driver would. */
function sourceWith(keys: number): { sm: KvStateMachine; source: BackupSource; put: (k: string) => void } {
  const sm = new KvStateMachine();
  let index = 0;
  const run = (cmd: Parameters<typeof encodeCommand>[0]['cmd']): void => void sm.apply(++index, encodeCommand({ clientId: 'c', seq: index, cmd }));
  run({ op: 'worker.register', workerId: 'w1', apiAddress: '127.0.0.1:9', runtime: 'memory', atMs: 1 });
  for (let i = 0; i < keys; i++) run({ op: 'put', key: `k${i}`, value: `v${i}` });
  const source: BackupSource = {
    linearizableBarrier: () => Promise.resolve(),
    captureState: () => {
      const meta: SnapshotMeta = { index: logIndex(sm.appliedIndex), term: term(3), voters: [nodeId('m1'), nodeId('m2')], learners: [nodeId('m3')] };
      const encode = sm.captureSnapshot();
      return { meta, encode: async () => encodeSnapshot([[nodeId('m1'), { raftAddress: '127.0.0.1:1', apiAddress: '127.0.0.1:2' }]], await encode()) };
    },
  };
  return { sm, source, put: (k) => run({ op: 'put', key: k, value: 'x' }) };
}

async function fileOf(keys: number): Promise<Uint8Array> {
  const { source } = sourceWith(keys);
  const { meta, encode } = source.captureState();
  return encodeBackup(meta, (await encode()) as Uint8Array, '2030-01-01T00:00:00.000Z');
}

describe('the backup file', () => {
  it('verifies itself and counts what it holds', async () => {
    const s = inspectBackup(await fileOf(25));
    expect(s).toMatchObject({ format: 2, headerVerified: true, index: 26, term: 3, keys: 25, tasks: 0, workers: 1, members: 3, voters: ['m1', 'm2'], learners: ['m3'], createdAt: '2030-01-01T00:00:00.000Z' });
    expect(s.checksum).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('refuses a truncated, extended, altered or foreign file with SNAPSHOT_INVALID naming the problem', async () => {
    const whole = Buffer.from(await fileOf(10));
    const cases: [Uint8Array, RegExp][] = [
      [whole.subarray(0, whole.length - 1), /truncated/],
      [whole.subarray(0, 20), /truncated/],
      // Cut inside the magic and length (outside tester: 10 bytes were called no snapshot file at all).
      [whole.subarray(0, 10), /^the file is truncated: 10 bytes, cut inside its header$/],
      [whole.subarray(0, 3), /^the file is truncated/],
      [Buffer.concat([whole, Buffer.from('x')]), /after its body/],
      [Buffer.from('hello'), /not a Minkube snapshot file/],
      [new Uint8Array(0), /not a Minkube snapshot file/],
    ];
    const flipped = Buffer.from(whole);
    flipped[flipped.length - 3] = flipped[flipped.length - 3]! ^ 1;
    cases.push([flipped, /^checksum mismatch/]);
    for (const [bytes, problem] of cases) expectRefused(bytes, problem);
  });

  it('refuses a header changed in any field (index, term, voters, learners, createdAt, the body checksum, its length)', async () => {
    const whole = await fileOf(10);
    const bodySha256 = parseBackup(whole).header.sha256;
    const edits: [string, string][] = [
      ['"index":11,', '"index":99,'],
      ['"index":11,', '"index":10,'],
      ['"term":3,', '"term":7,'],
      ['"voters":["m1","m2"]', '"voters":["m1","m9"]'],
      ['"learners":["m3"]', '"learners":["m4"]'],
      ['"createdAt":"2030-01-01T00:00:00.000Z"', '"createdAt":"2031-01-01T00:00:00.000Z"'],
      [`"sha256":"${bodySha256}"`, `"sha256":"${bodySha256.slice(0, -1)}${bodySha256.endsWith('0') ? '1' : '0'}"`],
    ];
    for (const [from, to] of edits) expectRefused(replaceOnce(whole, from, to), /^header checksum mismatch: .*the header \(index, term, members, createdAt or the body's checksum\) was altered or damaged$/);
    // Longer or shorter, with the length before it made to match: the digest covers the length too.
    const longer = replaceOnce(whole, '"index":11,', '"index":1100,');
    const length = Buffer.from(whole).readUInt32BE(8);
    longer.writeUInt32BE(length + 2, 8);
    expectRefused(longer, /^header checksum mismatch/);
    // A header cut inside its digest.
    expectRefused(Buffer.from(whole).subarray(0, 12 + length + 10), /truncated: .* the header and its checksum need/);
    // Told it is format 1 (no digest): the digest is then 32 bytes past the body.
    expectRefused(replaceOnce(whole, '"format":2,', '"format":1,'), /has 32 bytes after its body/);
    expectRefused(replaceOnce(whole, '"format":2,', '"format":3,'), /format 3 is not one this Minkube reads \(1 or 2\)/);
  });

  it('refuses a header whose digest was made to match but whose index is below the state it holds', async () => {
    // What a forger who recomputes the digest makes: the state's own applied index (11) still contradicts it.
    const forged = withHeaderRewritten(await fileOf(10), (json) => json.replace('"index":11,', '"index":10,'));
    expectRefused(forged, /header says index 10 but the state was taken at 11, after it/);
  });

  it('reads a format-1 file (an earlier build\'s), saying its header is unverified; its body is still checked', async () => {
    const v1 = asFormat1(await fileOf(25));
    expect(inspectBackup(v1)).toMatchObject({ format: 1, headerVerified: false, index: 26, term: 3, keys: 25, workers: 1, voters: ['m1', 'm2'], learners: ['m3'] });
    const flipped = Buffer.from(v1);
    flipped[flipped.length - 3] = flipped[flipped.length - 3]! ^ 1;
    expectRefused(flipped, /^checksum mismatch/);
    expectRefused(v1.subarray(0, v1.length - 1), /truncated/);
    // No digest: only what the state says of itself catches a changed header (an index below it, not one above).
    expectRefused(replaceOnce(v1, '"index":26,', '"index":25,'), /header says index 25 but the state was taken at 26, after it/);
    expect(inspectBackup(replaceOnce(v1, '"term":3,', '"term":7,'))).toMatchObject({ format: 1, headerVerified: false, term: 7 });
  });
});

function expectRefused(bytes: Uint8Array, problem: RegExp): void {
  let caught: unknown;
  try {
    inspectBackup(bytes);
  } catch (err) {
    caught = err;
  }
  expect(caught, String(problem)).toMatchObject({ code: 'SNAPSHOT_INVALID', message: expect.stringMatching(problem) as string });
}

describe('the index a backup is taken at', () => {
  it("is the state's own once entries that are no commands were applied (a leader's no-op, a membership change)", async () => {
    const { sm, source } = sourceWith(3);
    sm.passEntry(sm.appliedIndex + 1);
    sm.passEntry(sm.appliedIndex + 1);
    const { meta, encode } = source.captureState();
    expect(meta.index).toBe(6);
    expect(inspectBackup(encodeBackup(meta, (await encode()) as Uint8Array, '2030-01-01T00:00:00.000Z'))).toMatchObject({ index: 6, keys: 3 });
  });

  it('a file of an earlier version, whose state counted commands only (state at 4, header at 6), still loads', async () => {
    const { source } = sourceWith(3);
    const { meta, encode } = source.captureState();
    const bytes = encodeBackup({ ...meta, index: logIndex(meta.index + 2) }, (await encode()) as Uint8Array, '2030-01-01T00:00:00.000Z');
    expect(inspectBackup(bytes)).toMatchObject({ index: 6, keys: 3 });
  });
});

describe('a backup of a large state', () => {
  it('is hashed and joined a MiB at a time, giving the loop back between, into the bytes encodeBackup makes', async () => {
    const sm = new KvStateMachine();
    const big = 'x'.repeat(900_000);
    for (let i = 1; i <= 8; i++) sm.apply(i, encodeCommand({ clientId: 'c', seq: i, cmd: { op: 'put', key: `big/${i}`, value: `${big}${i}` } }));
    const meta: SnapshotMeta = { index: logIndex(8), term: term(2), voters: [nodeId('m1')], learners: [] };
    const members: [NodeId, { raftAddress: string; apiAddress: string }][] = [[nodeId('m1'), { raftAddress: '127.0.0.1:1', apiAddress: '127.0.0.1:2' }]];
    const source: BackupSource = { linearizableBarrier: () => Promise.resolve(), captureState: () => ({ meta, encode: async () => encodeSnapshotParts(members, await sm.captureSnapshotParts()()) }) };
    let turns = 0;
    let counting = true;
    const count = (): void => {
      turns++;
      if (counting) setImmediate(count);
    };
    setImmediate(count);
    const file = await takeBackup(source, Date.parse('2030-01-01T00:00:00Z'));
    counting = false;
    // 7 MB hashed, joined, and the whole hashed again: a turn of the loop at least every MiB of each.
    expect(turns).toBeGreaterThanOrEqual(15);
    const whole = encodeBackup(meta, encodeSnapshot(members, sm.snapshot()), '2030-01-01T00:00:00.000Z');
    expect(Buffer.from(file.bytes).equals(Buffer.from(whole))).toBe(true);
    expect(inspectBackup(file.bytes)).toMatchObject({ index: 8, keys: 8 });
  });
});

describe('scheduled backups', () => {
  const start = Date.parse('2030-01-01T00:00:00Z');

  it('the leader writes once the newest file is intervalS old, keeping the newest `retain`', async () => {
    const dir = tempDir();
    const clock = new ManualClock(start);
    const { source, put } = sourceWith(3);
    const written: string[] = [];
    const loop = new BackupLoop({ config: { intervalS: 60, retain: 2, dir }, source: () => source, isLeader: () => true, clock, logger, onSuccess: (s) => written.push(s.lastSuccessAt!) });
    expect(loop.status).toEqual({ lastSuccessAt: null, lastIndex: null, lastError: null });
    await loop.check();
    expect(loop.status).toEqual({ lastSuccessAt: '2030-01-01T00:00:00.000Z', lastIndex: 4, lastError: null });
    clock.advance(59_000);
    await loop.check();
    expect(written).toHaveLength(1);
    for (let i = 0; i < 3; i++) {
      put(`more${i}`);
      clock.advance(60_000);
      await loop.check();
    }
    expect(written).toHaveLength(4);
    const files = readdirSync(dir).sort();
    expect(files).toHaveLength(2);
    expect(files.at(-1)).toBe('minkube-snapshot-20300101T000359Z-000000000007.mksnap');
    expect(inspectBackup(readFileSync(join(dir, files.at(-1)!)))).toMatchObject({ index: 7, keys: 6 });
    expect(loop.status).toMatchObject({ lastIndex: 7, lastError: null });

    // A file whose header does not read (edited, and named to sort newest) holds no place among the `retain`: it is
    // passed over, and kept.
    const edited = Buffer.from(readFileSync(join(dir, files.at(-1)!)));
    edited[20] = edited[20]! ^ 0x01;
    const stranger = 'minkube-snapshot-20991231T235900Z-000000009999.mksnap';
    writeFileSync(join(dir, stranger), edited);
    put('after');
    clock.advance(60_000);
    await loop.check();
    expect(readdirSync(dir).sort()).toEqual(['minkube-snapshot-20300101T000359Z-000000000007.mksnap', 'minkube-snapshot-20300101T000459Z-000000000008.mksnap', stranger]);
  });

  it('after the wall clock steps back an hour: one backup per interval, not one per check, and the one just written stays', async () => {
    const dir = tempDir();
    const clock = new ManualClock(start);
    const { source, put } = sourceWith(3);
    const loop = new BackupLoop({ config: { intervalS: 60, retain: 2, dir }, source: () => source, isLeader: () => true, clock, logger });
    await loop.check();
    clock.advance(60_000);
    put('a');
    await loop.check();
    expect(readdirSync(dir)).toHaveLength(2);
    // The newest files' names are now an hour in this manager's future.
    clock.stepWall(-3_600_000);
    const writes = (): number => readdirSync(dir).length;
    let made = 0;
    for (let i = 0; i < 30; i++) {
      put(`k${i}`);
      clock.advance(10_000);
      const before = new Set(readdirSync(dir));
      await loop.check();
      const now = readdirSync(dir);
      if (now.some((f) => !before.has(f))) made++;
      // The file just written is kept, though its name sorts oldest.
      expect(now.length).toBeLessThanOrEqual(3);
    }
    // 300 s at one backup a minute: at most 5 (one per check was 30).
    expect(made).toBeLessThanOrEqual(5);
    expect(made).toBeGreaterThanOrEqual(4);
    expect(writes()).toBeGreaterThanOrEqual(2);
    const newest = [...readdirSync(dir)].sort()[0]!;
    expect(newest).toMatch(/^minkube-snapshot-20291231T23/);
  });

  it('a truncated file named to sort newest counts for nothing: good backups stay `retain`, and followers report the newest good one', async () => {
    const dir = tempDir();
    const clock = new ManualClock(start);
    const { source, put } = sourceWith(3);
    const config = { intervalS: 60, retain: 2, dir };
    const leader = new BackupLoop({ config, source: () => source, isLeader: () => true, clock, logger });
    const follower = new BackupLoop({ config, source: () => source, isLeader: () => false, clock, logger });
    await leader.check();
    // Its header (and the header's digest) whole, its body cut short: what `head -c 3000` of a saved file leaves.
    const whole = readFileSync(join(dir, readdirSync(dir)[0]!));
    const truncated = 'minkube-snapshot-20991231T000001Z-000000099998.mksnap';
    writeFileSync(join(dir, truncated), whole.subarray(0, whole.length - 10));
    for (let i = 0; i < 3; i++) {
      put(`more${i}`);
      clock.advance(60_000);
      await leader.check();
      await follower.check();
    }
    expect(readdirSync(dir).sort()).toEqual(['minkube-snapshot-20300101T000200Z-000000000006.mksnap', 'minkube-snapshot-20300101T000300Z-000000000007.mksnap', truncated]);
    expect(follower.status).toEqual({ lastSuccessAt: '2030-01-01T00:03:00.000Z', lastIndex: 7, lastError: null });
  });

  it("passes over valid files under other names, and ranks a copy under a far-future name by what it holds (the tester's M3)", async () => {
    const dir = tempDir();
    const clock = new ManualClock(start);
    const { source, put } = sourceWith(3);
    const config = { intervalS: 60, retain: 3, dir };
    const leader = new BackupLoop({ config, source: () => source, isLeader: () => true, clock, logger });
    const ours: string[] = [];
    const step = async (): Promise<void> => {
      put(`k${ours.length}`);
      clock.advance(60_000);
      const before = new Set(readdirSync(dir));
      await leader.check();
      ours.push(...readdirSync(dir).filter((n) => !before.has(n)));
    };
    await leader.check();
    ours.push(...readdirSync(dir));
    await step();
    // Old backups copied in by hand: one under a name of our prefix that is not the pattern, one under the pattern
    // with a time far ahead (its header says index 4, 2030-01-01T00:00), one under a name of the operator's own.
    const old = readFileSync(join(dir, ours[0]!));
    const manual = 'minkube-snapshot-manual.mksnap';
    const future = 'minkube-snapshot-20991209T000000Z-000000000027.mksnap';
    for (const name of [manual, future, 'pre-upgrade.mksnap']) writeFileSync(join(dir, name), old);
    const followerStatus = async (): Promise<BackupLoop['status']> => {
      const follower = new BackupLoop({ config, source: () => source, isLeader: () => false, clock, logger });
      await follower.check();
      return follower.status;
    };
    for (let i = 0; i < 5; i++) {
      await step();
      const real = readdirSync(dir).filter((n) => ours.includes(n)).sort();
      // The newest `retain` of the leader's own backups every time, however the strays' names sort.
      expect(real).toEqual(ours.slice(-3).sort());
      expect(await followerStatus()).toEqual({ lastSuccessAt: leader.status.lastSuccessAt, lastIndex: leader.status.lastIndex, lastError: null });
    }
    // The far-future name held an old backup: it went as one. The others are not of the pattern: untouched.
    expect(readdirSync(dir).sort()).toEqual([...ours.slice(-3), manual, 'pre-upgrade.mksnap'].sort());
    expect(leader.status).toEqual({ lastSuccessAt: '2030-01-01T00:06:00.000Z', lastIndex: 10, lastError: null });
  });

  it("a backup named and dated a day ahead (its writer's clock was): the next leader keeps one per interval and `retain` of its own", async () => {
    const dir = tempDir();
    const { source, put } = sourceWith(3);
    const config = { intervalS: 60, retain: 2, dir };
    const ahead = new BackupLoop({ config, source: () => source, isLeader: () => true, clock: new ManualClock(start + 86_400_000), logger });
    await ahead.check();
    const [early] = readdirSync(dir);
    expect(early).toBe('minkube-snapshot-20300102T000000Z-000000000004.mksnap');
    const clock = new ManualClock(start);
    const leader = new BackupLoop({ config, source: () => source, isLeader: () => true, clock, logger });
    let made = 0;
    for (let i = 0; i < 60; i++) {
      put(`k${i}`);
      const before = new Set(readdirSync(dir));
      await leader.check();
      if (readdirSync(dir).some((n) => !before.has(n))) made++;
      clock.advance(10_000);
    }
    // 600 s at one a minute: the file dated ahead put the first off by an interval at most, and no more after.
    expect(made).toBeGreaterThanOrEqual(9);
    expect(made).toBeLessThanOrEqual(10);
    const names = readdirSync(dir).sort();
    expect(names).toHaveLength(2);
    expect(names).not.toContain(early);
    expect(names.every((n) => n.startsWith('minkube-snapshot-20300101T00'))).toBe(true);
    expect(leader.status.lastSuccessAt).toMatch(/^2030-01-01T00:/);
  });

  it('a backup whose header gives an index above the one just written (a history a restore left behind) is passed over, not deleted', async () => {
    const dir = tempDir();
    const clock = new ManualClock(start);
    const { source, put } = sourceWith(3);
    // The old cluster's backups, written before, at indexes this state has not reached.
    const { meta, encode } = source.captureState();
    const body = (await encode()) as Uint8Array;
    const left = [50, 60].map((index, i) => {
      const name = `minkube-snapshot-20291231T00000${i}Z-0000000000${index}.mksnap`;
      writeFileSync(join(dir, name), encodeBackup({ ...meta, index: logIndex(index) }, body, `2029-12-31T00:00:0${i}.000Z`));
      return name;
    });
    const leader = new BackupLoop({ config: { intervalS: 60, retain: 2, dir }, source: () => source, isLeader: () => true, clock, logger });
    for (let i = 0; i < 4; i++) {
      put(`k${i}`);
      await leader.check();
      clock.advance(60_000);
    }
    const names = readdirSync(dir).sort();
    expect(names).toEqual([...left, 'minkube-snapshot-20300101T000200Z-000000000007.mksnap', 'minkube-snapshot-20300101T000300Z-000000000008.mksnap']);
  });

  it('reads a header longer than the first read of a file (many learners) as the newest', async () => {
    const dir = tempDir();
    const { source } = sourceWith(2);
    const { meta, encode } = source.captureState();
    const learners = Array.from({ length: 400 }, (_, i) => `learner-${i}`);
    const file = encodeBackup({ ...meta, index: logIndex(9), learners: learners.map(nodeId) }, (await encode()) as Uint8Array, '2030-01-01T00:00:00.000Z');
    expect(Buffer.from(file).readUInt32BE(8)).toBeGreaterThan(4096);
    writeFileSync(join(dir, 'minkube-snapshot-20300101T000000Z-000000000009.mksnap'), file);
    const follower = new BackupLoop({ config: { intervalS: 60, retain: 2, dir }, source: () => source, isLeader: () => false, clock: new ManualClock(start), logger });
    await follower.check();
    expect(follower.status).toEqual({ lastSuccessAt: '2030-01-01T00:00:00.000Z', lastIndex: 9, lastError: null });
  });

  it('keeps its files the owner\'s alone (0600), in a directory it makes 0700: they hold secrets', async () => {
    const dir = join(tempDir(), 'made', 'backups');
    const { source } = sourceWith(2);
    const loop = new BackupLoop({ config: { intervalS: 60, retain: 2, dir }, source: () => source, isLeader: () => true, clock: new ManualClock(start), logger });
    await loop.check();
    const [name] = readdirSync(dir);
    expect(statSync(join(dir, name!)).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, '..')).mode & 0o777).toBe(0o700);
  });

  it('a follower writes nothing and reports the newest file in the directory; a new leader keeps the schedule', async () => {
    const dir = tempDir();
    const clock = new ManualClock(start);
    const { source } = sourceWith(2);
    let leading = true;
    const first = new BackupLoop({ config: { intervalS: 600, retain: 5, dir }, source: () => source, isLeader: () => leading, clock, logger });
    await first.check();
    leading = false;
    const follower = new BackupLoop({ config: { intervalS: 600, retain: 5, dir }, source: () => source, isLeader: () => false, clock, logger });
    clock.advance(700_000);
    await follower.check();
    expect(follower.status).toEqual({ lastSuccessAt: '2030-01-01T00:00:00.000Z', lastIndex: 3, lastError: null });
    expect(readdirSync(dir)).toHaveLength(1);
    // A manager that becomes leader later reads the same file first: the next backup is due at once, not twice.
    const next = new BackupLoop({ config: { intervalS: 600, retain: 5, dir }, source: () => source, isLeader: () => true, clock, logger });
    await next.check();
    expect(readdirSync(dir)).toHaveLength(2);
  });

  it("reports the newest file whose header verifies: one altered after it was written is passed over; an earlier build's is read", async () => {
    const dir = tempDir();
    const clock = new ManualClock(start);
    const { source } = sourceWith(2);
    const leader = new BackupLoop({ config: { intervalS: 60, retain: 5, dir }, source: () => source, isLeader: () => true, clock, logger });
    await leader.check();
    const [first] = readdirSync(dir);
    const whole = readFileSync(join(dir, first!));
    const followerNow = async (): Promise<BackupLoop> => {
      const follower = new BackupLoop({ config: { intervalS: 60, retain: 5, dir }, source: () => source, isLeader: () => false, clock, logger });
      await follower.check();
      return follower;
    };
    // Newer names holding the same file with its index, then its creation time, changed in place.
    writeFileSync(join(dir, 'minkube-snapshot-20300101T000100Z-000000000009.mksnap'), replaceOnce(whole, '"index":3,', '"index":9,'));
    expect((await followerNow()).status).toEqual({ lastSuccessAt: '2030-01-01T00:00:00.000Z', lastIndex: 3, lastError: null });
    writeFileSync(join(dir, 'minkube-snapshot-20300101T000200Z-000000000003.mksnap'), replaceOnce(whole, '"createdAt":"2030-01-01T00:00:00.000Z"', '"createdAt":"2030-01-01T00:02:00.000Z"'));
    const follower = await followerNow();
    expect(follower.status).toEqual({ lastSuccessAt: '2030-01-01T00:00:00.000Z', lastIndex: 3, lastError: null });
    // A format-1 file (no header digest) that is newest is read as its header says.
    writeFileSync(join(dir, 'minkube-snapshot-20300101T000300Z-000000000003.mksnap'), replaceOnce(asFormat1(whole), '"createdAt":"2030-01-01T00:00:00.000Z"', '"createdAt":"2030-01-01T00:03:00.000Z"'));
    await follower.check();
    expect(follower.status).toEqual({ lastSuccessAt: '2030-01-01T00:03:00.000Z', lastIndex: 3, lastError: null });
  });

  it('a failed write is reported in lastError and keeps the last success', async () => {
    const dir = tempDir();
    const clock = new ManualClock(start);
    const { source } = sourceWith(1);
    const loop = new BackupLoop({ config: { intervalS: 1, retain: 1, dir }, source: () => source, isLeader: () => true, clock, logger });
    await loop.check();
    const blocked = join(dir, 'file');
    writeFileSync(blocked, 'not a directory');
    const broken = new BackupLoop({ config: { intervalS: 1, retain: 1, dir: join(blocked, 'sub') }, source: () => source, isLeader: () => true, clock, logger });
    await broken.check();
    expect(broken.status.lastSuccessAt).toBeNull();
    expect(broken.status.lastError).toBe(`writing a backup into ${join(blocked, 'sub')} failed: a file stands where backup.dir or one of its parent directories should be`);
    // backup.dir itself a file: said so, not a bare EEXIST.
    const itself = new BackupLoop({ config: { intervalS: 1, retain: 1, dir: blocked }, source: () => source, isLeader: () => true, clock, logger });
    await itself.check();
    expect(itself.status.lastError).toBe(`writing a backup into ${blocked} failed: a file that is not a directory stands there (backup.dir must name a directory, or nothing yet)`);
    expect(parseBackup(readFileSync(join(dir, readdirSync(dir).find((n) => n.endsWith('.mksnap'))!))).header.index).toBe(2);
  });

  it('a write that fails part-way leaves nothing, and what a killed writer left is removed at the next backup', async () => {
    const dir = tempDir();
    // A part that cannot be written, after one that was: the error comes out, and no temp file stays.
    await expect(writeFileDurably(dir, 'x.mksnap.partial', [new Uint8Array(10), 7 as unknown as Uint8Array])).rejects.toThrow();
    expect(readdirSync(dir)).toEqual([]);
    const leftovers = ['minkube-snapshot-20300101T000000Z-000000000001.mksnap.partial', 'minkube-snapshot-20300101T000001Z-000000000002.mksnap.partial.tmp'];
    for (const name of leftovers) writeFileSync(join(dir, name), Buffer.alloc(1000));
    writeFileSync(join(dir, 'notes.txt'), 'kept');
    const { source } = sourceWith(1);
    const loop = new BackupLoop({ config: { intervalS: 1, retain: 2, dir }, source: () => source, isLeader: () => true, clock: new ManualClock(start), logger });
    await loop.check();
    const names = readdirSync(dir).sort();
    expect(names.filter((n) => n.includes('.partial'))).toEqual([]);
    expect(names).toContain('notes.txt');
    expect(names.filter((n) => n.endsWith('.mksnap'))).toHaveLength(1);
  });
});
