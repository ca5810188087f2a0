// The audit log's CPU per line, in process: AuditLog.committed() for `--lines` applied puts per round (200,000),
// yielding to the event loop every 100 as applies do, then flushed() to audit.log in a temporary directory. Every
// manager writes one line per applied command. `npx tsx bench/audit-line.ts [--lines 200000] [--rounds 5]`
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { AppliedCommand } from '../src/kv/state-machine.js';
import { systemClock } from '../src/lib/clock.js';
import { AuditLog } from '../src/manager/audit.js';
import { arg } from './support.js';

const lines = Number(arg('lines', '200000'));
const rounds = Number(arg('rounds', '5'));
const dir = mkdtempSync(join(tmpdir(), 'minkube-audit-'));
const log = await AuditLog.open({ dir, clock: systemClock, logger: pino({ level: 'silent' }) });
const value = 'x'.repeat(100);
try {
  for (let round = 0; round < rounds; round++) {
    const cpu = process.cpuUsage();
    const started = performance.now();
    for (let i = 0; i < lines; i++) {
      const index = round * lines + i + 1;
      const key = `bench-${i & 255}-${i & 63}`;
      const applied: AppliedCommand = {
        clientId: 'c',
        seq: index,
        fresh: true,
        result: { ok: true, key, version: index },
        envelope: { clientId: 'c', seq: index, reqId: 'ea7e1771-278a-4b90-8f74-40f51781637d', pr: { a: 'mk_34c114aa10d953c3', r: 'admin' }, cmd: { op: 'put', key, value } },
      };
      log.committed(index, applied);
      if (i % 100 === 99) await new Promise((r) => setImmediate(r));
    }
    await log.flushed();
    const used = process.cpuUsage(cpu);
    console.log(`round ${round + 1}: ${((used.user + used.system) / lines).toFixed(2)} us of CPU per line (${Math.round(performance.now() - started)} ms for ${lines})`);
  }
} finally {
  await log.close();
  rmSync(dir, { recursive: true, force: true });
}
