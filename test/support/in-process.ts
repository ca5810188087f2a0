// The manager's services over the real state machine with no Raft under them: a proposal is validated and applied in
// process, as the driver would once it committed (index and seq count up from 1). For route and service tests that
// need real task and service records without a cluster.
import { pino } from 'pino';
import { clusterConfigDefaults } from '../../src/config/cluster.js';
import { encodeCommand, validateCommand, type Command } from '../../src/kv/commands.js';
import { KvStateMachine, type ApplyResult } from '../../src/kv/state-machine.js';
import { systemClock } from '../../src/lib/clock.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { SeededRandom } from '../../src/lib/random.js';
import { TaskServiceImpl, type Proposer } from '../../src/manager/task-service.js';
import type { WorkerApi } from '../../src/manager/worker-client.js';

export interface InProcessRaft {
  readonly kv: KvStateMachine;
  /** Proposes through validation, as a leader does before appending (INVALID_COMMAND otherwise). */
  readonly raft: Proposer;
  /** Applies a command as the next entry, unvalidated (for set-ups that write what no route would). */
  apply(cmd: Command): ApplyResult;
}

export function inProcessRaft(kv = new KvStateMachine()): InProcessRaft {
  let index = 0;
  const apply = (cmd: Command): ApplyResult => {
    index++;
    return kv.apply(index, encodeCommand({ clientId: 'm1', seq: index, cmd }));
  };
  const raft: Proposer = {
    async proposeCommand(cmd: Command): Promise<ApplyResult> {
      const problem = validateCommand(encodeCommand({ clientId: 'm1', seq: index + 1, cmd }));
      if (problem !== null) throw new MinkubeError('INVALID_COMMAND', problem);
      return apply(cmd);
    },
    async barrier(): Promise<void> {},
  };
  return { kv, raft, apply };
}

/** The real task service over an in-process Raft: the cluster's default task settings, no workers to call. */
export function inProcessTasks({ kv, raft }: InProcessRaft): TaskServiceImpl {
  return new TaskServiceImpl({
    store: kv.tasks, raft, tasks: clusterConfigDefaults.tasks, workers: {} as WorkerApi, clock: systemClock,
    random: new SeededRandom(1), logger: pino({ level: 'silent' }),
  });
}
