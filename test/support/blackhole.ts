// A port that drops connection attempts, as a host behind a partition does (no refusal, no answer): a child process
// listens with a backlog of one and then never runs its event loop again, so it accepts nothing; once the kernel's
// queue holds what the backlog allows, further SYNs are dropped and a connect hangs.
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { sleep } from './wait.js';

export interface Blackhole {
  readonly port: number;
  close(): void;
}

const listenThenFreeze = `
const s = require('net').createServer();
s.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => {
  process.stdout.write(s.address().port + '\\n');
  setTimeout(() => { for (;;); }, 50);
});`;

export async function blackhole(): Promise<Blackhole> {
  const child: ChildProcess = spawn(process.execPath, ['-e', listenThenFreeze], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
  });
  await sleep(150);
  // Fill the accept queue: connections that complete in the kernel and are never accepted.
  const fillers: Socket[] = [];
  for (let i = 0; i < 8; i++) {
    const s = connect({ host: '127.0.0.1', port });
    s.on('error', () => undefined);
    fillers.push(s);
    const connected = await Promise.race([new Promise<boolean>((r) => s.once('connect', () => r(true))), new Promise<boolean>((r) => setTimeout(() => r(false), 300))]);
    if (!connected) break;
  }
  return {
    port,
    close: () => {
      for (const s of fillers) s.destroy();
      child.kill('SIGKILL');
    },
  };
}
