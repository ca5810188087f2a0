// The wire shape of a snapshot chunk, leader -> follower: the chunk is the body of a POST to SNAPSHOT_CHUNK_PATH on
// the follower's API, its header the query. Shared by the sender (manager) and the route that receives it (api).
import { MinkubeError } from '../lib/errors.js';
import { logIndex, nodeId, term as toTerm, type NodeId, type Term } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import type { SnapshotMeta } from '../raft/types.js';

/** One chunk's header (sent as query parameters; the chunk is the body). */
export interface SnapshotChunkHeader {
  readonly from: NodeId;
  /** The leader's term: the core ignores a snapshot from an older leader. */
  readonly term: Term;
  readonly meta: SnapshotMeta;
  readonly sizeBytes: number;
  readonly crc32: number;
  readonly offset: number;
}

export interface ChunkReply {
  /** The offset the receiver expects next (the sender continues from there). */
  readonly offset: number;
  readonly done: boolean;
}

export const SNAPSHOT_CHUNK_PATH = '/internal/v1/raft/snapshot';

export function headerToQuery(h: SnapshotChunkHeader): string {
  const q = new URLSearchParams({
    from: h.from,
    term: String(h.term),
    index: String(h.meta.index),
    snapTerm: String(h.meta.term),
    voters: h.meta.voters.join(','),
    learners: h.meta.learners.join(','),
    size: String(h.sizeBytes),
    crc: String(h.crc32),
    offset: String(h.offset),
  });
  return q.toString();
}

const idList = (s: string): NodeId[] => (s === '' ? [] : s.split(',').map(nodeId));
const idListPattern = /^([A-Za-z0-9][A-Za-z0-9._-]*(,[A-Za-z0-9][A-Za-z0-9._-]*)*)?$/;

/** The header of a chunk request, or INVALID_PARAM naming the bad parameter. */
export function headerFromQuery(q: Record<string, string | undefined>): SnapshotChunkHeader {
  const int = (name: string, max = Number.MAX_SAFE_INTEGER): number => {
    const v = q[name];
    if (v === undefined || !/^[0-9]{1,16}$/.test(v) || Number(v) > max) throw new MinkubeError('INVALID_PARAM', `snapshot chunk: "${name}" must be an integer`);
    return Number(v);
  };
  const ids = (name: string): NodeId[] => {
    const v = q[name] ?? '';
    if (!idListPattern.test(v)) throw new MinkubeError('INVALID_PARAM', `snapshot chunk: "${name}" must be a comma-separated list of ids`);
    return idList(v);
  };
  const from = q.from;
  if (from === undefined || !idListPattern.test(from) || from === '' || from.includes(',')) throw new MinkubeError('INVALID_PARAM', 'snapshot chunk: "from" must be a node id');
  const meta: SnapshotMeta = { index: logIndex(int('index')), term: toTerm(int('snapTerm')), voters: ids('voters'), learners: ids('learners') };
  return { from: nodeId(from), term: toTerm(int('term')), meta, sizeBytes: int('size', limits.snapshotBytesMax), crc32: int('crc', 0xffff_ffff), offset: int('offset') };
}
