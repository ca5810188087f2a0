// How far storage work could take the writes of the etcd comparison: etcd 3.4 (clientv3, fsync on) against this
// checkout's build and two copies of it, all side by side in one run with one Go load generator: one whose
// acknowledged-state marker (storage/marker.ts, the second synced write of every save) is never written, and one that
// never syncs at all (LevelDB batches written without sync, and no marker). The unsynced copy is the ceiling of any
// storage design: what is left of a write's cost is HTTP, Raft, the state machine and the processes' wake-ups. The
// copies are built in temporary git worktrees of HEAD with their edits made there (checked to apply, so a copy is
// never measured unchanged); nothing in src/ can turn syncing off. Needs git, go, etcd's sources
// (golang-etcd-server-dev) and an etcd binary.
// `npx tsx bench/sync-ceiling.ts [--levels 1,16,64,256] [--seconds 5] [--warmup 3] [--secure]` (`npm run build` first;
// --secure: TLS on both sides, etcd with client certificates, Minkube HTTPS with the admin token)
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../test/support/cluster.js';
import { etcdAvailable } from './etcd.js';
import { buildLoadgen, etcdSide, loadgen, minkubeSide, type GoResult, type Security, type Side } from './go-loadgen.js';
import { arg, flag, printResult, printTable, round } from './support.js';

interface Edit {
  readonly file: string;
  readonly from: string;
  readonly to: string;
}

/** The marker is never written: FileMarker.write returns at once. */
const noMarker: Edit = { file: 'src/storage/marker.ts', from: 'const seq = this.seq + 1;\n', to: 'if (marker !== null) return;\n    const seq = this.seq + 1;\n' };
/** LevelDB's batches are written without sync. */
const noSync: Edit = { file: 'src/storage/level.ts', from: 'await batch.write({ sync });', to: 'await batch.write({ sync: false });' };

/** A worktree of HEAD with `edits` made (each must match exactly once) and built; its bin, and how to remove it. */
function buildCopy(edits: readonly Edit[]): { bin: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'minkube-sync-copy-'));
  const git = (...args: string[]): string => execFileSync('git', ['-C', repoRoot, ...args], { encoding: 'utf8' });
  git('worktree', 'add', '--detach', '--force', dir, 'HEAD');
  const remove = (): void => {
    git('worktree', 'remove', '--force', dir);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    symlinkSync(join(repoRoot, 'node_modules'), join(dir, 'node_modules'));
    for (const e of edits) {
      const path = join(dir, e.file);
      const text = readFileSync(path, 'utf8');
      if (text.split(e.from).length !== 2) throw new Error(`sync-ceiling: ${e.file} no longer holds exactly one "${e.from.trim()}": update the edit`);
      writeFileSync(path, text.replace(e.from, e.to));
    }
    execFileSync('npm', ['run', 'build'], { cwd: dir, stdio: 'ignore' });
    return { bin: join(dir, 'bin', 'minkube.js'), remove };
  } catch (err) {
    remove();
    throw err;
  }
}

async function main(): Promise<void> {
  const levels = arg('levels', '1,16,64,256').split(',').map(Number);
  const seconds = arg('seconds', '5');
  const warmup = arg('warmup', '3');
  const security: Security = flag('secure') ? 'secure' : 'insecure';
  const missing = !etcdAvailable() ? 'no etcd binary (apt-get install etcd-server)' : buildLoadgen();
  if (missing !== null) {
    console.log(`sync-ceiling skipped: ${missing}`);
    printResult('sync-ceiling', { skipped: missing }, [{ metric: 'KV writes without syncing vs etcd', unit: 'ops/s', value: null, better: 'higher', note: `skipped: ${missing}` }]);
    return;
  }
  const copies: { remove: () => void }[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'minkube-sync-ceiling-'));
  const sides: Side[] = [];
  try {
    const markerless = buildCopy([noMarker]);
    copies.push(markerless);
    const unsyncedCopy = buildCopy([noMarker, noSync]);
    copies.push(unsyncedCopy);
    const etcd = await etcdSide(security, dir);
    sides.push(etcd);
    const synced = await minkubeSide(security);
    sides.push(synced);
    const withoutMarker = await minkubeSide(security, { bin: markerless.bin });
    sides.push(withoutMarker);
    const unsynced = await minkubeSide(security, { bin: unsyncedCopy.bin });
    sides.push(unsynced);
    const run = (side: Side, clients: number): GoResult => loadgen([...side.args, '-op', 'put', '-clients', String(clients), '-seconds', seconds, '-warmup', warmup]);
    const results = levels.map((clients) => ({ clients, etcd: run(etcd, clients), synced: run(synced, clients), withoutMarker: run(withoutMarker, clients), unsynced: run(unsynced, clients) }));
    const rows = results.map(({ clients, etcd: e, synced: s, withoutMarker: m, unsynced: u }) => {
      const cell = (r: GoResult): string => `${round(r.opsPerSec, 0)} (${round(r.opsPerSec / e.opsPerSec, 2)})`;
      return {
        clients,
        'etcd w/s': round(e.opsPerSec, 0),
        'Minkube w/s (ratio)': cell(s),
        'no marker w/s (ratio)': cell(m),
        'unsynced w/s (ratio)': cell(u),
        'p99 ms etcd / Minkube / no marker / unsynced': `${e.p99Ms} / ${s.p99Ms} / ${m.p99Ms} / ${u.p99Ms}`,
      };
    });
    const tls = security === 'secure' ? 'on' : 'off';
    printTable(`Writes with and without syncing, against etcd (fsync on), TLS ${tls}, HTTP/1.1, ${seconds} s per level after ${warmup} s`, rows);
    const summary = results.flatMap(({ clients, etcd: e, synced: s, withoutMarker: m, unsynced: u }) =>
      ([['', s], [', no marker', m], [', unsynced copy', u]] as const).map(([what, r]) => ({
        metric: `KV writes, Go client, ${clients} clients, TLS ${tls}${what}`,
        unit: 'ops/s',
        value: round(r.opsPerSec, 0),
        peer: round(e.opsPerSec, 0),
        better: 'higher' as const,
        note: `${round(r.opsPerSec / e.opsPerSec, 2)}x etcd's ${round(e.opsPerSec, 0)} ops/s; p99 ${r.p99Ms} ms (etcd ${e.p99Ms})`,
      })),
    );
    printResult('sync-ceiling', { security, results }, summary);
  } finally {
    await Promise.all(sides.map((s) => s.cleanup()));
    rmSync(dir, { recursive: true, force: true });
    for (const c of copies) c.remove();
  }
}

await main();
