// A manager started without a config file warns that its leadership runs on defaults: when it starts, and each time
// it becomes leader, never when it becomes a follower.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { parseClusterConfig } from '../../src/config/cluster.js';
import { startManagerFromConfig, type RunningManager } from '../../src/daemon/manager.js';
import { httpJson } from '../support/cluster.js';
import { eventually, freePorts } from '../support/wait.js';

const running: RunningManager[] = [];
let root = '';
afterEach(async () => {
  for (const m of running.splice(0)) await m.stop();
  if (root !== '') rmSync(root, { recursive: true, force: true });
});

it('"leading without a config file" is logged by the leader only, not by a manager that becomes a follower', async () => {
  root = mkdtempSync(join(tmpdir(), 'minkube-flags-warning-'));
  const [r1, a1, r2, a2] = await freePorts(4);
  const config = parseClusterConfig(
    {
      insecure: true,
      managers: [
        { id: 'm1', raftAddress: `127.0.0.1:${r1}`, apiAddress: `127.0.0.1:${a1}`, dataDir: join(root, 'm1') },
        { id: 'm2', raftAddress: `127.0.0.1:${r2}`, apiAddress: `127.0.0.1:${a2}`, dataDir: join(root, 'm2') },
      ],
    },
    root,
  );
  const lines = new Map<string, string[]>([['m1', []], ['m2', []]]);
  for (const id of ['m1', 'm2']) {
    const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.get(id)!.push(line) });
    running.push(await startManagerFromConfig(config, id, logger, { withoutConfigFile: true }));
  }
  const leading = (id: string): number => lines.get(id)!.filter((l) => l.includes('leading without a config file')).length;
  const leader = await eventually(async () => (leading('m1') + leading('m2') > 0 ? (leading('m1') > 0 ? 'm1' : 'm2') : undefined), 20_000, 'a leader');
  const follower = leader === 'm1' ? 'm2' : 'm1';
  // The follower has heard of the leader (its role change with a leader id is what logged this before).
  const followerUrl = running[follower === 'm1' ? 0 : 1]!.apiUrl;
  await eventually(async () => (((await httpJson(followerUrl, 'GET', '/v1/cluster')).body as { leaderId?: string } | undefined)?.leaderId === leader ? true : undefined), 10_000, 'the follower to know its leader');
  expect(leading(leader)).toBe(1);
  expect(leading(follower)).toBe(0);
  // Both said at start that they run without one.
  for (const id of ['m1', 'm2']) expect(lines.get(id)!.some((l) => l.includes('started without a config file'))).toBe(true);
});
