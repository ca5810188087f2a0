// One-line descriptions of messages and entries for the simulator's trace; deterministic, so two runs of one seed
// print identical traces.
import type { Entry, Message } from '../../src/raft/types.js';
import { assertNever } from '../../src/lib/assert.js';

export type TraceSink = (line: string) => void;

export function describeEntries(entries: readonly Entry[]): string {
  if (entries.length === 0) return '[]';
  const first = entries[0]!;
  const last = entries[entries.length - 1]!;
  return entries.length === 1 ? `[${first.index}/t${first.term}]` : `[${first.index}/t${first.term}..${last.index}/t${last.term}]`;
}

export function describeMessage(m: Message): string {
  const head = `${m.from}->${m.to} ${m.type} t${m.term}`;
  switch (m.type) {
    case 'append':
      return `${head} prev=${m.prevLogIndex}/t${m.prevLogTerm} entries=${describeEntries(m.entries)} commit=${m.commit}`;
    case 'appendResponse':
      return m.success ? `${head} ok index=${m.index}` : `${head} reject index=${m.index} conflict=${m.conflictIndex}/t${m.conflictTerm}`;
    case 'heartbeat':
      return `${head} commit=${m.commit}${m.context === '' ? '' : ` ctx=${m.context}`}`;
    case 'heartbeatResponse':
      return m.context === '' ? head : `${head} ctx=${m.context}`;
    case 'vote':
      return `${head}${m.preVote ? ' pre' : ''} last=${m.lastLogIndex}/t${m.lastLogTerm}${m.transfer ? ' transfer' : ''}`;
    case 'voteResponse':
      return `${head}${m.preVote ? ' pre' : ''} ${m.granted ? 'granted' : 'denied'}`;
    case 'timeoutNow':
      return head;
    case 'propose':
      return `${head} n=${m.entries.length}`;
    case 'readIndex':
      return `${head} ctx=${m.context}`;
    case 'readIndexResponse':
      return `${head} ctx=${m.context} index=${m.index}`;
    case 'snapshot':
      return `${head} snapshot=${m.snapshot.index}/t${m.snapshot.term} voters=${m.snapshot.voters.join(',')}${m.snapshot.learners.length > 0 ? ` learners=${m.snapshot.learners.join(',')}` : ''}`;
    default:
      return assertNever(m);
  }
}
