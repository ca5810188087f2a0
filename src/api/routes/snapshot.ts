// GET /v1/snapshot: a backup file of the applied state at one index (after a linearizable barrier), as bytes. The
// file verifies itself (src/manager/backup-file.ts); the headers repeat its index and term for scripts, and give the
// sha256 of the bytes sent, so that `sha256sum` of the saved file can check the download.
// Permission ('snapshot', 'write'): admins only, since the file holds every secret the cluster keeps (token hashes,
// the session key, tasks' secretEnv values); operators' snapshot:read does not reach it.
import type { FastifyPluginAsync } from 'fastify';
import type { BackupService } from '../../contracts/services.js';
import { bodyAnswer, bytesSchema } from '../documented-answers.js';
import { requestContext } from './kv.js';
import { NoQuery } from '../schemas.js';

const snapshotAnswer = bodyAnswer('a backup file of the applied state at one index', { 'application/octet-stream': bytesSchema }, {
  'content-disposition': { type: 'string', description: 'attachment; filename="minkube-INDEX.mksnap"' },
  'x-minkube-checksum': { type: 'string', description: 'sha256:<hex> of the whole body' },
  'x-minkube-index': { type: 'string', description: 'the log index the file holds the state at' },
  'x-minkube-term': { type: 'string', description: "that index's term" },
});

export const snapshotRoutes: FastifyPluginAsync<{ backup: BackupService }> = async (app, { backup }) => {
  app.get('/v1/snapshot', { schema: { querystring: NoQuery, documentedResponse: { 200: snapshotAnswer } } }, async (req, reply) => {
    const file = await backup.snapshot(requestContext(req));
    void reply
      .header('content-type', 'application/octet-stream')
      .header('content-disposition', `attachment; filename="minkube-${file.index}.mksnap"`)
      .header('x-minkube-checksum', `sha256:${file.sha256}`)
      .header('x-minkube-index', String(file.index))
      .header('x-minkube-term', String(file.term));
    return Buffer.from(file.bytes.buffer, file.bytes.byteOffset, file.bytes.length);
  });
};
