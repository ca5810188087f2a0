// The cluster membership routes of every manager: list, add and remove managers, hand over leadership, and the
// leader's settings a joining manager keeps. The service forwards to the leader; these routes validate and translate HTTP.
//
//   GET    /v1/cluster/members      -> 200 { leaderId, members: [{ id, raftAddress, apiAddress, voter, reachable }] }
//   POST   /v1/cluster/members      { id, raftAddress, apiAddress } -> 201 the member (a learner until caught up), or 200
//                                   when it already exists with the same addresses (a joining manager retries)
//   DELETE /v1/cluster/members/:id  -> 200 { leaderId, members } (the new configuration)
//   POST   /v1/cluster/leader       { id? } or no body -> 200 { leaderId, term }
//   GET    /v1/cluster/settings     -> 200 { leaderId, settings }: the leader's running settings that must agree
//                                   across managers (what a manager joining from flags alone keeps as its config)
//
// Bad ids, addresses or unknown fields are 400 INVALID_MEMBER naming the field; the service's errors pass through.
import type { FastifyError, FastifyPluginAsync } from 'fastify';
import { checkAddress } from '../../config/cluster.js';
import { MinkubeError } from '../../lib/errors.js';
import { sendError } from '../errors.js';
import { ClusterSettingsReply, LeaderReply, LeaderTransferBody, MemberBody, MemberIdParams, MemberReply, MembersReply, NoQuery } from '../schemas.js';
import type { MemberRequest, MembershipService } from '../../contracts/services.js';
import { requestContext } from './kv.js';

export interface MemberRoutesOptions {
  membership: MembershipService;
  bodyLimitBytes: number;
}

export const memberRoutes: FastifyPluginAsync<MemberRoutesOptions> = async (app, { membership, bodyLimitBytes }) => {
  // Encapsulated by this plugin: a request that fails its schema here is a bad member, named as such.
  app.setErrorHandler((err, req, reply) => sendError(asMemberError(err), req, reply, bodyLimitBytes));

  app.get('/v1/cluster/members', { schema: { querystring: NoQuery, response: { 200: MembersReply } } }, async (req) => membership.listMembers(requestContext(req)));

  app.get('/v1/cluster/settings', { schema: { querystring: NoQuery, response: { 200: ClusterSettingsReply } } }, async (req) => membership.clusterSettings(requestContext(req)));

  app.post<{ Body: MemberBody }>(
    '/v1/cluster/members',
    { schema: { body: MemberBody, response: { 200: MemberReply, 201: MemberReply }, errorCodes: ['MEMBERSHIP_CHANGE_REFUSED', 'JOIN_REFUSED'] } },
    async (req, reply) => {
      const { created, member } = await membership.addMember(memberRequest(req.body), requestContext(req));
      return reply.code(created ? 201 : 200).send(member);
    },
  );

  app.delete<{ Params: MemberIdParams }>(
    '/v1/cluster/members/:id',
    { schema: { params: MemberIdParams, response: { 200: MembersReply } } },
    async (req) => membership.removeMember(req.params.id, requestContext(req)),
  );

  app.post<{ Body: LeaderTransferBody }>(
    '/v1/cluster/leader',
    {
      schema: { body: LeaderTransferBody, bodyOptional: true, response: { 200: LeaderReply }, errorCodes: ['MEMBER_NOT_FOUND', 'LEADER_TRANSFER_FAILED'] },
      // The body is optional: none at all means "any voter", as {} does.
      preValidation: async (req) => {
        if (req.body === undefined || req.body === null) req.body = {};
      },
    },
    async (req) => membership.transferLeader(req.body.id ?? null, requestContext(req)),
  );
};

/** The schema checked the shapes; the addresses' host and port are checked here, and must differ from each other. */
function memberRequest(body: MemberBody): MemberRequest {
  for (const field of ['raftAddress', 'apiAddress'] as const) {
    const problem = checkAddress(body[field]);
    if (problem !== null) throw new MinkubeError('INVALID_MEMBER', `body.${field}: ${problem}`);
  }
  if (body.raftAddress.toLowerCase() === body.apiAddress.toLowerCase()) {
    throw new MinkubeError('INVALID_MEMBER', `body.apiAddress: must differ from raftAddress ("${body.apiAddress}")`);
  }
  return { id: body.id, raftAddress: body.raftAddress, apiAddress: body.apiAddress };
}

function asMemberError(err: unknown): unknown {
  const e = err as Partial<FastifyError> & { validationContext?: string };
  const fromSchema = e.validationContext === 'body' || e.validationContext === 'params';
  if (err instanceof MinkubeError && fromSchema && (err.code === 'INVALID_BODY' || err.code === 'INVALID_PARAM')) {
    return new MinkubeError('INVALID_MEMBER', err.message);
  }
  return err;
}
