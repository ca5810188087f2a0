// What the first request for the OpenAPI document and for the dashboard costs a manager's event loop: a one-manager
// insecure cluster from a build's bin/minkube.js (this checkout's, and with --vs DIR another checkout's built copy,
// in the same run), GET /health every 10 ms from here while /openapi.json and then /ui/ are asked for the first time,
// and the slowest /health answer during each against the slowest in an idle window as long. A manager's Raft work
// (heartbeats, elections) runs on that loop: with a 300 ms election timeout, a stall near it costs a leader its term.
// `npx tsx bench/first-docs.ts [--vs /path/to/other/checkout] [--rounds 3]`
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../test/support/cluster.js';
import { freePort } from '../test/support/wait.js';
import { arg, printTable, round } from './support.js';

interface Round {
  readonly idleMs: number;
  readonly openApiMs: number;
  readonly uiMs: number;
}

async function get(url: string): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(url);
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`${url}: ${res.status}`);
  return performance.now() - t0;
}

/** The slowest /health answer while `during` runs (at least `minMs`), polling every 10 ms. */
async function slowestHealth(base: string, during: () => Promise<unknown>, minMs = 0): Promise<number> {
  let slowest = 0;
  let done = false;
  const poll = (async () => {
    while (!done) {
      slowest = Math.max(slowest, await get(`${base}/health`));
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  const t0 = performance.now();
  await during();
  const left = minMs - (performance.now() - t0);
  if (left > 0) await new Promise((r) => setTimeout(r, left));
  done = true;
  await poll;
  return slowest;
}

async function oneRound(root: string): Promise<Round> {
  const dir = mkdtempSync(join(tmpdir(), 'minkube-first-docs-'));
  const [raftPort, apiPort] = [await freePort('127.0.0.1'), await freePort('127.0.0.1')];
  const config = join(dir, 'cluster.json');
  writeFileSync(config, JSON.stringify({ insecure: true, managers: [{ id: 'm1', raftAddress: `127.0.0.1:${raftPort}`, apiAddress: `127.0.0.1:${apiPort}`, dataDir: './m1' }] }));
  const base = `http://127.0.0.1:${apiPort}`;
  const proc: ChildProcess = spawn(process.execPath, [join(root, 'bin', 'minkube.js'), 'manager', '--config', config, '--id', 'm1'], { stdio: 'ignore', env: { ...process.env, MINKUBE_FROM_SOURCE: '0' } });
  try {
    for (let i = 0; ; i++) {
      const ready = await fetch(`${base}/ready`).then((r) => r.status === 200, () => false);
      if (ready) break;
      if (i > 300) throw new Error('the manager did not get ready');
      await new Promise((r) => setTimeout(r, 50));
    }
    // Warm: the poll's own first requests, and a second of the loop at rest.
    await slowestHealth(base, () => new Promise((r) => setTimeout(r, 1000)));
    let took = 0;
    const openApiMs = await slowestHealth(base, async () => (took = await get(`${base}/openapi.json`)));
    const uiMs = await slowestHealth(base, () => get(`${base}/ui/`));
    const idleMs = await slowestHealth(base, () => new Promise((r) => setTimeout(r, Math.max(took, 500))));
    return { idleMs, openApiMs, uiMs };
  } finally {
    proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

const rounds = Number(arg('rounds', '3'));
const other = arg('vs', '');
const builds = [{ name: 'this checkout', root: repoRoot }, ...(other === '' ? [] : [{ name: other, root: other }])];
const rows: Record<string, string | number>[] = [];
for (let i = 0; i < rounds; i++) {
  for (const b of builds) {
    const r = await oneRound(b.root);
    rows.push({ build: b.name, round: i + 1, 'slowest /health idle (ms)': round(r.idleMs, 0), 'during first /openapi.json (ms)': round(r.openApiMs, 0), 'during first /ui/ (ms)': round(r.uiMs, 0) });
  }
}
printTable('Slowest GET /health answer while a manager makes its first OpenAPI document and dashboard answer', rows);
