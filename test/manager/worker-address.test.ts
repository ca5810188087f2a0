// A worker may not register at the address of another worker that is not down: the leader sends a worker's
// assignments to its address, so a second registration there (a worker join token buys a certificate for any new id,
// and its holder names the address) would have the first worker run them. Over the real task service and state machine.
import { describe, expect, it } from 'vitest';
import { inProcessRaft, inProcessTasks } from '../support/in-process.js';

const inProcess = inProcessRaft();
const { apply } = inProcess;
const tasks = inProcessTasks(inProcess);
const ctx = { deadlineMs: Date.now() + 60_000 } as Parameters<typeof tasks.registerWorker>[1];

describe('worker registration and addresses', () => {
  it("refuses another id at a live worker's address (either spelling of it), and takes it once that worker is down", async () => {
    await tasks.registerWorker({ id: 'w1', apiAddress: '127.0.0.1:9001', runtime: 'memory' }, ctx);
    for (const apiAddress of ['127.0.0.1:9001', 'localhost:9001', '2130706433:9001', '[::ffff:127.0.0.1]:9001']) {
      await expect(tasks.registerWorker({ id: 'w9', apiAddress, runtime: 'memory' }, ctx)).rejects.toMatchObject({
        code: 'WORKER_ADDRESS_IN_USE', message: 'worker w1 is registered at 127.0.0.1:9001 and is ready; a worker may take its address once it is down',
      });
    }
    // w1 itself registering again (a restart) is fine.
    await expect(tasks.registerWorker({ id: 'w1', apiAddress: '127.0.0.1:9001', runtime: 'memory' }, ctx)).resolves.toMatchObject({ id: 'w1' });
    apply({ op: 'worker.state', workerId: 'w1', state: 'down', atMs: Date.now(), ifHeartbeats: inProcess.kv.tasks.storedWorker('w1')!.heartbeats, lost: [] });
    await expect(tasks.registerWorker({ id: 'w9', apiAddress: '127.0.0.1:9001', runtime: 'memory' }, ctx)).resolves.toMatchObject({ id: 'w9' });
  });
});
