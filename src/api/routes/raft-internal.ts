// POST /internal/v1/raft/snapshot: one chunk of a snapshot the leader streams to this manager (InstallSnapshot, out of
// the Raft transport). Query parameters carry the header, the body is the raw chunk; the answer is the offset this
// manager expects next, so a transfer resumes after a broken connection. Only managers call it.
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { limits } from '../../lib/limits.js';
import { headerFromQuery, SNAPSHOT_CHUNK_PATH, type ChunkReply, type SnapshotChunkHeader } from '../../contracts/snapshot-chunks.js';

export interface RaftPeerService {
  receiveSnapshotChunk(header: SnapshotChunkHeader, chunk: Uint8Array): ChunkReply;
  /** Settles once the completed snapshot was handed to the core (it may be decoded off to the side first). */
  snapshotOffered?(meta: SnapshotChunkHeader['meta']): Promise<void>;
}

/** ChunkReply, for the OpenAPI document (documentedResponse). */
const ChunkReplySchema = Type.Object(
  { offset: Type.Integer({ minimum: 0, description: 'the offset this manager expects next' }), done: Type.Boolean() },
  { description: 'the chunk was taken (or the transfer goes on from offset)' },
);

export const raftInternalRoutes: FastifyPluginAsync<{ raftPeer: RaftPeerService }> = async (app, { raftPeer }) => {
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: limits.snapshotChunkBytes + 1024 }, (_req, body, done) => done(null, body));
  app.post(SNAPSHOT_CHUNK_PATH, { bodyLimit: limits.snapshotChunkBytes + 1024, config: { anyQuery: true }, schema: { documentedResponse: { 200: ChunkReplySchema } } }, async (req) => {
    const header = headerFromQuery(req.query as Record<string, string | undefined>);
    const chunk = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const reply = raftPeer.receiveSnapshotChunk(header, chunk);
    // The last chunk is answered once the follower holds the snapshot where its core sees it: the leader then moves on.
    if (reply.done) await raftPeer.snapshotOffered?.(header.meta);
    return reply;
  });
};
