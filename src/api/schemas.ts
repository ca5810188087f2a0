// JSON schemas (TypeBox) of the managers' HTTP API: what requests must look like, and what 200 answers contain.
import { Type, type Static } from '@sinclair/typebox';

/** Keys may contain '/', so kv routes end in a wildcard and the key is the rest of the path (see keys.ts). */
export const KeyParams = Type.Object({ '*': Type.String() });
export type KeyParams = Static<typeof KeyParams>;

const Version = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });

export const PutBody = Type.Object({ value: Type.String(), ifVersion: Type.Optional(Version) }, { additionalProperties: false });
export type PutBody = Static<typeof PutBody>;

// Unknown query parameters are refused: a typo such as ?ifversion=3 must not turn into an unconditional delete.
export const GetQuery = Type.Object(
  { consistency: Type.Optional(Type.Union([Type.Literal('linearizable'), Type.Literal('stale')])) },
  { additionalProperties: false },
);
export type GetQuery = Static<typeof GetQuery>;

export const DeleteQuery = Type.Object({ ifVersion: Type.Optional(Type.String()) }, { additionalProperties: false });
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
    }),
  ),
});

export const HealthReply = Type.Object({ status: Type.Literal('ok') });
export const ReadyReply = Type.Object({ ready: Type.Boolean() });
