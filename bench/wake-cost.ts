// What this machine charges a node process for the things a Raft batch is made of, which bench/cpu-split.ts shows as
// Minkube's cost per batch: a wake-up from sleep (a 1 ms timer) against a turn of an event loop that never sleeps,
// and a loopback TCP write by size, paced 1 ms apart so that the reader sleeps between writes (the writer's system
// time covers the reader's TCP receive and wake-up, which run in the writer's system call).
// `npx tsx bench/wake-cost.ts [--count 3000]`
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { createServer, connect, type AddressInfo } from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { arg, printResult, printTable, round } from './support.js';

/** CPU µs per step of `run`, user and system, over `count` steps. */
async function cpuPer(count: number, run: (step: () => boolean) => Promise<void>): Promise<{ user: number; system: number }> {
  let n = 0;
  const start = process.cpuUsage();
  await run(() => ++n >= count);
  const used = process.cpuUsage(start);
  return { user: round(used.user / n, 1), system: round(used.system / n, 1) };
}

/** Calls `body` every 1 ms until it says it is done. */
function everyMs(body: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      if (body()) {
        clearInterval(timer);
        resolve();
      }
    }, 1);
  });
}

async function main(): Promise<void> {
  const count = Number(arg('count', '3000'));
  const rows: Record<string, string | number>[] = [];
  const wake = await cpuPer(count, (step) => everyMs(step));
  rows.push({ what: 'wake-up by a 1 ms timer', 'user µs': wake.user, 'system µs': wake.system });
  const turn = await cpuPer(count * 30, async (step) => {
    while (!step()) await nextTurn();
  });
  rows.push({ what: 'event-loop turn, never sleeping', 'user µs': turn.user, 'system µs': turn.system });
  // The reader is another process, as a follower is.
  const reader = fork(fileURLToPath(import.meta.url), ['--reader'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const [port] = (await once(reader, 'message')) as [number];
  const socket = connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await once(socket, 'connect');
  // A warm-up, so that the first size does not pay for the connection's and the JIT's start.
  await cpuPer(count / 4, (step) => everyMs(() => (socket.write(Buffer.alloc(200)), step())));
  const writes: { sizeBytes: number; user: number; system: number }[] = [];
  for (const sizeBytes of [200, 2_000, 20_000, 64_000]) {
    const frame = Buffer.alloc(sizeBytes, 7);
    const cost = await cpuPer(count, (step) => everyMs(() => (socket.write(frame), step())));
    writes.push({ sizeBytes, ...cost });
    rows.push({ what: `wake-up + loopback write of ${sizeBytes} B`, 'user µs': cost.user, 'system µs': cost.system });
  }
  socket.destroy();
  reader.kill();
  printTable(`CPU per step, ${count} steps each (the writes' system time less the wake-up's is the write's own)`, rows);
  printResult('wake-cost', { wake, turn, writes }, []);
}

if (process.argv.includes('--reader')) {
  const server = createServer((s) => s.resume());
  server.listen(0, '127.0.0.1', () => process.send?.((server.address() as AddressInfo).port));
} else {
  await main();
}
