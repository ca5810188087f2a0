// `minkube up` for real: three manager processes from a temporary config, the leader announced, SIGTERM stops all.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, expect, it } from 'vitest';

const repoRoot = resolve(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'minkube-up-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function refused(port: number): Promise<boolean> {
  return fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(1000) }).then(
    () => false,
    () => true,
  );
}

it('starts every manager, prints prefixed readable logs and the leader, and stops them all on SIGTERM', async () => {
  const managers = [];
  for (const id of ['m1', 'm2', 'm3']) {
    managers.push({ id, raftAddress: `127.0.0.1:${await freePort()}`, apiAddress: `127.0.0.1:${await freePort()}`, dataDir: `./data/${id}` });
  }
  const configPath = join(dir, 'cluster.json');
  writeFileSync(configPath, JSON.stringify({ managers, raft: { heartbeatIntervalMs: 50, electionTimeoutMs: 400 } }));

  const up = spawn(process.execPath, [join(repoRoot, 'bin', 'minkube.js'), 'up', '--config', configPath], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  up.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  up.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number | null>((r) => up.once('exit', (code) => r(code)));
  try {
    const deadline = Date.now() + 40_000;
    while (!/^leader: m\d \(term \d+\) at http:\/\/127\.0\.0\.1:\d+$/m.test(stdout) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(stdout, stderr).toMatch(/^leader: m\d \(term \d+\) at http:\/\/127\.0\.0\.1:\d+$/m);
    expect(stdout).toContain(`minkube up: 3 managers from ${configPath}`);
    expect(stdout).toContain(`m2  api http://${managers[1]!.apiAddress}  raft ${managers[1]!.raftAddress}  data ${join(dir, 'data', 'm2')}`);
    expect(stdout).toMatch(/^m1 \| \d\d:\d\d:\d\d\.\d{3} INFO {2}/m);
    up.kill('SIGTERM');
    expect(await exited).toBe(0);
  } finally {
    up.kill('SIGKILL');
  }
  expect(stdout).toMatch(/stopping 3 processes\.\.\.\n(.*\n)*stopped\n$/);
  for (const m of managers) expect(await refused(Number(m.apiAddress.split(':')[1]))).toBe(true);
});
