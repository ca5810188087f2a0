// A Proposer with no Raft under it: each command is applied at once to its own state machine, in the order proposed,
// for the leader's loops (scheduler, services, worker health) driven by a manual clock.
import { encodeCommand, type Command } from '../../src/kv/commands.js';
import { KvStateMachine, type ApplyResult } from '../../src/kv/state-machine.js';
import type { Proposer } from '../../src/manager/task-service.js';

export class DirectRaft implements Proposer {
  readonly sm = new KvStateMachine();
  readonly proposed: Command[] = [];
  private index = 0;
  async proposeCommand(cmd: Command): Promise<ApplyResult> {
    this.proposed.push(cmd);
    return this.sm.apply(++this.index, encodeCommand({ clientId: 'leader', seq: this.index, cmd }));
  }
  async barrier(): Promise<void> {}
}
