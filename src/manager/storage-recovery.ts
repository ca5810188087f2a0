// The driver's side of a manager recovering lost or damaged storage (docs/storage-faults.md): what it says about it
// (GET /v1/cluster, the log), when it is done, and why no leader can be elected while too many voters recover.
import type { Logger } from 'pino';
import type { NodeId } from '../lib/ids.js';
import type { RaftStatus } from '../raft/types.js';
import type { StorageRecovery } from '../storage/types.js';

/** What a manager says about its storage. */
export interface StorageView {
  readonly state: 'ok' | 'recovering';
  /** Why it recovers (null when ok). */
  readonly reason: string | null;
  /** The index it must hold again (what it had acknowledged); null when ok or not known. */
  readonly targetIndex: number | null;
  /** Repairs finished since this process started. */
  readonly repairs: number;
}

export class StorageRecoveryWatch {
  private recovery: StorageRecovery | null;
  private repairsCount = 0;
  private lastNoQuorum: string | null = null;

  constructor(
    recovery: StorageRecovery | null,
    private readonly logger: Logger,
    private readonly onRepaired: () => Promise<void>,
  ) {
    this.recovery = recovery;
    if (recovery !== null) {
      logger.warn(
        { storage: 'recovering', reason: recovery.reason, targetIndex: knownIndex(recovery.target.index) },
        'storage recovering: this manager votes for no one and counts for no quorum until it has learnt from the leader everything it had acknowledged',
      );
    }
  }

  get recovering(): boolean {
    return this.recovery !== null;
  }

  /** After each Ready: the core left the recovering state, so the marker may follow the log again. */
  async afterReady(status: RaftStatus, from: 'the leader' | 'its own log' = 'the leader'): Promise<void> {
    if (this.recovery === null || status.recovering !== null) return;
    const was = this.recovery;
    // The marker first: until it follows the log again, this manager still says it recovers (GET /v1/cluster).
    await this.onRepaired();
    this.recovery = null;
    this.repairsCount++;
    this.logger.info({ storage: 'ok', commitIndex: status.commitIndex, lastIndex: status.lastIndex, reason: was.reason }, `storage repaired from ${from}: this manager is a voter again`);
  }

  view(): StorageView {
    const r = this.recovery;
    if (r === null) return { state: 'ok', reason: null, targetIndex: null, repairs: this.repairsCount };
    return { state: 'recovering', reason: r.reason, targetIndex: knownIndex(r.target.index), repairs: this.repairsCount };
  }

  /**
   * Why no leader can be elected now, as far as this node knows: too few voters with intact storage (those recovering
   * vote for no one). null when a leader is known or the storage of enough voters is intact.
   */
  noQuorumReason(status: RaftStatus): string | null {
    if (status.leaderId !== null || status.voters.length === 0) return null;
    const recovering = new Set<NodeId>(status.peersRecovering);
    if (this.recovery !== null) recovering.add(status.id);
    const down = status.voters.filter((v) => recovering.has(v));
    const quorum = Math.floor(status.voters.length / 2) + 1;
    if (status.voters.length - down.length >= quorum) return null;
    return `${down.length} of ${status.voters.length} voters (${down.join(', ')}) are recovering lost or damaged storage and vote for no one: a leader needs ${quorum} voters with intact storage, so the cluster waits rather than elect one that may lack acknowledged writes`;
  }

  /** On each tick: logs the reason when it appears or changes. */
  tick(status: RaftStatus): void {
    const reason = this.noQuorumReason(status);
    if (reason === this.lastNoQuorum) return;
    this.lastNoQuorum = reason;
    if (reason !== null) this.logger.warn({ reason }, 'no leader can be elected');
  }
}

function knownIndex(index: number): number | null {
  return index === Number.MAX_SAFE_INTEGER ? null : index;
}
