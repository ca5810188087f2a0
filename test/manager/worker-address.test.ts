// A worker may not register at the address of another worker that is not down: the leader sends a worker's
// assignments to its address, so a second registration there (a worker join token buys a certificate for any new id,
// and its holder names the address) would have the first worker run them. Nor at a manager's address, where its tasks
// would fail. Over the real task service and state machine (and real drivers for the managers' addresses).
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { clusterConfigDefaults } from '../../src/config/cluster.js';
import { systemClock } from '../../src/lib/clock.js';
import { SeededRandom } from '../../src/lib/random.js';
import { TaskServiceImpl } from '../../src/manager/task-service.js';
import type { WorkerApi } from '../../src/manager/worker-client.js';
import { inProcessRaft, inProcessTasks } from '../support/in-process.js';
import { DriverCluster } from './driver-harness.js';

const inProcess = inProcessRaft();
const { apply } = inProcess;
const tasks = inProcessTasks(inProcess);
const ctx = { deadlineMs: performance.now() + 60_000 } as Parameters<typeof tasks.registerWorker>[1];

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

  describe("at a manager's address", () => {
    let cluster: DriverCluster | null = null;
    afterEach(async () => {
      await cluster?.close();
      cluster = null;
    });

    it("refuses a worker at a member's API or Raft address (either spelling), naming the manager, as the config check does", async () => {
      // Nothing listens: the drivers talk over a memory network; the addresses are what the configuration names.
      cluster = new DriverCluster({ apiAddressOf: (id) => `127.0.45.${id.slice(1)}:4500${id.slice(1)}` });
      await cluster.startAll();
      const leader = await cluster.leader();
      await cluster.converged();
      // Wired as daemon/manager.ts wires it.
      const service = leader.service;
      const viaLeader = new TaskServiceImpl({
        store: service.kv.tasks, raft: service, tasks: clusterConfigDefaults.tasks, workers: {} as WorkerApi, clock: systemClock,
        random: new SeededRandom(1), logger: pino({ level: 'silent' }), managerAddresses: () => service.managerAddresses(),
      });
      const at = { deadlineMs: performance.now() + 10_000 } as Parameters<typeof viaLeader.registerWorker>[1];
      expect(service.managerAddresses().map((m) => m.id)).toEqual(['m1', 'm2', 'm3']);
      for (const apiAddress of ['127.0.45.2:45002', '[::ffff:127.0.45.2]:45002']) {
        await expect(viaLeader.registerWorker({ id: 'w7', apiAddress, runtime: 'process' }, at)).rejects.toMatchObject({
          code: 'WORKER_ADDRESS_IN_USE', status: 409, message: `${apiAddress} is manager m2's apiAddress: a worker needs an address of its own`,
        });
      }
      await expect(viaLeader.registerWorker({ id: 'w7', apiAddress: 'raft-m3', runtime: 'process' }, at)).rejects.toMatchObject({
        code: 'WORKER_ADDRESS_IN_USE', message: "raft-m3 is manager m3's raftAddress: a worker needs an address of its own",
      });
      expect(service.kv.tasks.storedWorker('w7')).toBeUndefined();
      await expect(viaLeader.registerWorker({ id: 'w7', apiAddress: '127.0.45.9:45009', runtime: 'process' }, at)).resolves.toMatchObject({ id: 'w7', state: 'ready' });
    });
  });
});
