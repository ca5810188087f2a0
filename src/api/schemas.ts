// JSON schemas (TypeBox) of the managers' HTTP API: what requests must look like, and what 200 answers contain.
import { Type, type Static } from '@sinclair/typebox';
import { ClusterSettingsSchema } from '../config/cluster.js';
import { limits } from '../lib/limits.js';
import { idPattern } from '../lib/patterns.js';

/** Keys may contain '/', so kv routes end in a wildcard and the key is the rest of the path (see keys.ts). */
export const KeyParams = Type.Object({ '*': Type.String({ description: "the key: the rest of the path, '/' sent as is or as %2F" }) });
/** A route that takes no query parameters: one given is 400 INVALID_PARAM (unknown field), never silently ignored. */
export const NoQuery = Type.Object({}, { additionalProperties: false });
export type KeyParams = Static<typeof KeyParams>;

const Version = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });

export const PutBody = Type.Object(
  { value: Type.String(), ifVersion: Type.Optional(Type.Integer({ ...Version, description: 'write only if the key is at this version (0: only if it does not exist); else 409 KV_VERSION_MISMATCH' })) },
  { additionalProperties: false },
);
export type PutBody = Static<typeof PutBody>;

// Unknown query parameters are refused: a typo such as ?ifversion=3 must not turn into an unconditional delete.
export const GetQuery = Type.Object(
  { consistency: Type.Optional(Type.Union([Type.Literal('linearizable'), Type.Literal('stale')])) },
  { additionalProperties: false },
);
export type GetQuery = Static<typeof GetQuery>;

// Numbers in a query are checked by parseIntegerParam (its message says the range), not by a pattern here: the
// descriptions tell the document's readers what the route takes.
const decimal = 'in decimal digits, without a sign or leading zeros';
/** ?limit= of a list route. */
export const LimitParam = Type.String({ description: `the page's size: a whole number from 1 to ${limits.listLimitMax} (default ${limits.listLimitDefault}), ${decimal}` });
/** ?tail= of a logs route. */
export const TailParam = Type.String({ description: `the last lines to answer: a whole number from 0 to ${limits.logTailLinesMax} (default ${limits.runtimeLogTailLinesDefault}), ${decimal}` });

export const DeleteQuery = Type.Object({ ifVersion: Type.Optional(Type.String({ description: `delete only at this version: a whole number >= 0, ${decimal}` })) }, { additionalProperties: false });
export type DeleteQuery = Static<typeof DeleteQuery>;

export const KvVersionReply = Type.Object({ key: Type.String(), version: Type.Integer() });
export const KvEntryReply = Type.Object({ key: Type.String(), value: Type.String(), version: Type.Integer() });

export const ClusterReply = Type.Object({
  id: Type.String(),
  role: Type.String(),
  term: Type.Integer(),
  leaderId: Type.Union([Type.String(), Type.Null()]),
  commitIndex: Type.Integer(),
  appliedIndex: Type.Integer(),
  members: Type.Array(
    Type.Object({
      id: Type.String(),
      raftAddress: Type.String(),
      apiAddress: Type.String(),
      voter: Type.Boolean(),
      reachable: Type.Boolean(),
      storage: Type.Optional(Type.Union([Type.Literal('ok'), Type.Literal('recovering'), Type.Null()])),
      commandVersion: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Null()])),
    }),
  ),
  commandVersion: Type.Optional(Type.Integer({ minimum: 1 })),
  build: Type.Optional(Type.Object({ version: Type.String(), commit: Type.Optional(Type.String()) })),
  clusterCommandVersion: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Null()])),
  firstIndex: Type.Integer(),
  lastIndex: Type.Integer(),
  snapshotIndex: Type.Integer(),
  storage: Type.Union([Type.Literal('ok'), Type.Literal('recovering')]),
  storageReason: Type.Union([Type.String(), Type.Null()]),
  storageTargetIndex: Type.Union([Type.Integer(), Type.Null()]),
  noQuorumReason: Type.Union([Type.String(), Type.Null()]),
  /** Scheduled backups (null: none configured). */
  backup: Type.Union([
    Type.Object({
      lastSuccessAt: Type.Union([Type.String(), Type.Null()]),
      lastIndex: Type.Union([Type.Integer(), Type.Null()]),
      lastError: Type.Union([Type.String(), Type.Null()]),
    }),
    Type.Null(),
  ]),
});

/** What build a node runs: the package's version, and the git commit when the build recorded one. */
export const BuildReply = Type.Object({ version: Type.String(), commit: Type.Optional(Type.String()) });
/**
 * commandVersion (managers): the newest command version this manager understands, as its leader asks before it
 * proposes a newer command (manager/cluster-version.ts); a manager that predates the field says nothing (10).
 */
export const HealthReply = Type.Object({ status: Type.Literal('ok'), commandVersion: Type.Optional(Type.Integer({ minimum: 1 })), build: Type.Optional(BuildReply) });
export const ReadyReply = Type.Object({ ready: Type.Boolean() });

// ---- cluster membership (/v1/cluster/members, /v1/cluster/leader) ----

/** The cluster config's manager id rule (src/config/cluster.ts); test/api/members.test.ts checks the two agree. */
export const MemberIdPattern = idPattern;
const MemberId = Type.String({ minLength: 1, maxLength: 64, pattern: MemberIdPattern });
/** host:port; the host and port are checked by the config's checkAddress, which names the problem. */
const MemberAddress = Type.String({ minLength: 1, maxLength: 300 });

export const MemberIdParams = Type.Object({ id: MemberId });
export type MemberIdParams = Static<typeof MemberIdParams>;

export const MemberBody = Type.Object({ id: MemberId, raftAddress: MemberAddress, apiAddress: MemberAddress }, { additionalProperties: false });
export type MemberBody = Static<typeof MemberBody>;

/** No id: the leader picks the most caught-up voter. */
export const LeaderTransferBody = Type.Object({ id: Type.Optional(MemberId) }, { additionalProperties: false });
export type LeaderTransferBody = Static<typeof LeaderTransferBody>;

export const MemberReply = Type.Object({
  id: Type.String(),
  raftAddress: Type.String(),
  apiAddress: Type.String(),
  voter: Type.Boolean(),
  reachable: Type.Boolean(),
});
export const MembersReply = Type.Object({ leaderId: Type.Union([Type.String(), Type.Null()]), members: Type.Array(MemberReply) });
export const LeaderReply = Type.Object({ leaderId: Type.String(), term: Type.Integer() });
/** GET /v1/cluster/settings: the leader's running settings that must agree across managers, as its config spells them. */
export const ClusterSettingsReply = Type.Object({
  leaderId: Type.String({ description: 'the manager whose running settings these are: the leader' }),
  settings: ClusterSettingsSchema,
});
