// A manager's side of joining and renewal: it checks a join token against the replicated state, then signs the
// joiner's CSR with the cluster CA (every manager holds its key, as Swarm's managers do), for the role the token
// was made for. Renewal signs a new key for the identity a node's current certificate already proves.
import type { PeerCertificate } from 'node:tls';
import type { AuditService, JoinReply, JoinRequest, JoinService } from '../contracts/services.js';
import type { JoinTokenRecord } from '../kv/auth-store.js';
import type { Clock } from '../lib/clock.js';
import { MinkubeError } from '../lib/errors.js';
import type { WorkerState } from '../contracts/task-model.js';
import { certAddressParts, endpointKey } from '../lib/address.js';
import { limits } from '../lib/limits.js';
import { caDigest, identityFromCertificate, issueNodeCertificate, requestedIdentity, type NodeRole } from '../security/ca.js';
import { sansForAddresses, type NodeTls } from '../security/pki-files.js';
import { hashSecret, joinTokenAccessor, parseJoinToken } from '../security/tokens.js';
import { managerHoldingId, workerHoldingId } from './node-ids.js';

export interface JoinServiceOptions {
  /** This manager's material; caKeyPem must be there (a manager signs). */
  material: NodeTls;
  clock: Clock;
  joinToken(secretHash: string, nowMs: number): JoinTokenRecord | undefined;
  /** The members; `learner` for one added (member add) but not yet a voter. */
  managers(): readonly { id: string; raftAddress: string; apiAddress: string; learner?: boolean }[];
  /** The worker registered with this id, as this manager has applied it (undefined: none, or removed). */
  worker(id: string): { readonly state: WorkerState } | undefined;
  /** What joined and renewed certificates get (config tls.certLifetimeS); default limits.nodeCertLifetimeDaysDefault. */
  certLifetimeS?: number;
  /** Told of every join whose token checked out: a certificate issued, or why not (a 401 is the API's refusal line). */
  audit?: Pick<AuditService, 'served'>;
}

/** A live join token, as an audit line names it: its accessor (a hash of its hash), never the secret. */
interface CheckedJoinToken {
  readonly accessor: string;
  readonly role: NodeRole;
}

export class JoinServiceImpl implements JoinService {
  private readonly caKeyPem: string;
  private readonly digest: string;

  constructor(private readonly o: JoinServiceOptions) {
    if (o.material.caKeyPem === undefined) throw new MinkubeError('CONFIG_INVALID', `manager ${o.material.identity.id} has no CA key in its tls directory`);
    this.caKeyPem = o.material.caKeyPem;
    this.digest = caDigest(o.material.caCertPem);
  }

  caCertPem(): string {
    return this.o.material.caCertPem;
  }

  async join(req: JoinRequest, requestId?: string): Promise<JoinReply> {
    const token = this.checkToken(req.token);
    const line = (outcome: string): void => {
      this.o.audit?.served({ principal: { token: token.accessor, role: token.role }, route: 'POST /v1/join', target: req.id, outcome, requestId: requestId ?? null });
    };
    try {
      const reply = await this.issue(req, token.role);
      line('ok');
      return reply;
    } catch (err) {
      line(err instanceof MinkubeError ? err.code : 'INTERNAL');
      throw err;
    }
  }

  /** The certificate a checked join token buys for req.id, unless the id is another node's. */
  private async issue(req: JoinRequest, role: NodeRole): Promise<JoinReply> {
    this.checkAddresses(req.addresses, role);
    await refuseOtherRole(req.csr, role);
    const member = this.o.managers().find((m) => m.id === req.id);
    // A learner that `member add` made at exactly these addresses is the slot this manager comes to fill: it gets its
    // certificate (its own member add is then answered "exists"). A voter's id is never given out again: a voter that
    // lost its data must not come back as a fresh member (docs/storage-faults.md).
    if (role === 'manager' && member !== undefined && !(member.learner === true && sameAddresses(member, req.addresses))) {
      const why = member.learner === true ? ` at other addresses (${member.raftAddress}, ${member.apiAddress})` : '';
      throw new MinkubeError('JOIN_REFUSED', `${req.id} is already a member${why}; remove it first (minkube member remove ${req.id}) to join again with that id`);
    }
    const worker = this.o.worker(req.id);
    if (role === 'worker' && worker !== undefined && worker.state !== 'down') {
      throw new MinkubeError('JOIN_REFUSED', `worker ${req.id} is registered and not down; a joining worker needs an id of its own`);
    }
    // One name, one node (node-ids.ts). A manager's join ends in a member add, which the leader checks again.
    const otherKind = role === 'worker' ? managerHoldingId(req.id, this.o.managers().map((m) => m.id)) : workerHoldingId(req.id, worker);
    if (otherKind !== null) throw otherKind;
    const certificate = await this.sign(req.id, role, req.csr, req.addresses);
    const reply: JoinReply = { certificate, ca: this.o.material.caCertPem, managers: this.o.managers().map((m) => ({ id: m.id, raftAddress: m.raftAddress, apiAddress: m.apiAddress })) };
    return role === 'manager' ? { ...reply, caKey: this.caKeyPem } : reply;
  }

  async renew(current: PeerCertificate, csrPem: string, addresses?: readonly string[]): Promise<{ certificate: string }> {
    const who = identityFromCertificate(current);
    if (who === null || who.clusterId !== this.o.material.identity.clusterId) {
      throw new MinkubeError('UNAUTHENTICATED', 'the client certificate is not one of this cluster');
    }
    if (addresses !== undefined) this.checkAddresses(addresses, who.role);
    // Without new addresses the old certificate's names carry over, checked as asked-for ones are: one signed before
    // the check, or before a manager came to that host, is not signed again.
    const sans = addresses === undefined ? sanStrings(current) : [...addresses];
    if (addresses === undefined && who.role === 'worker') this.checkCarriedOver(sans);
    return { certificate: await this.sign(who.id, who.role, csrPem, sans) };
  }

  /** The live join token, with the role it was made for; UNAUTHENTICATED with the reason otherwise. */
  private checkToken(token: string): CheckedJoinToken {
    const parsed = parseJoinToken(token);
    if (parsed === null) throw new MinkubeError('UNAUTHENTICATED', 'not a join token (expected MKTKN-1-<digest>-<secret>)');
    // The secret names the stored token, so it is looked up first: the digest in the token is the joining node's to
    // check (it pins the CA), the one kept with the token is ours. A token made under a CA rotated away since is not
    // one of this CA's, whatever digest it is sent with (its own, the old CA's, or this one's), and says so.
    const record = this.o.joinToken(hashSecret(parsed.secret), this.o.clock.nowMs());
    if (record?.caDigest !== undefined && record.caDigest !== this.digest) {
      throw new MinkubeError('UNAUTHENTICATED', "the join token was made under the cluster's previous CA (rotated since): make a new one with minkube token create");
    }
    if (parsed.caDigest !== this.digest) throw new MinkubeError('UNAUTHENTICATED', 'the join token is for another cluster (its CA digest does not match)');
    if (record === undefined) throw new MinkubeError('UNAUTHENTICATED', 'unknown, revoked or expired join token');
    return { accessor: joinTokenAccessor(record.secretHash), role: record.role };
  }

  /**
   * What a node may ask its certificate to name: at most limits.certAddressesMax addresses, each an IP address or a
   * host name, with a port or not (certAddressParts; INVALID_BODY naming the first that is not: `*.example.com`, `not
   * an ip`). A worker may not name a manager's API or Raft address (WORKER_ADDRESS_IN_USE, as registration refuses
   * one): compared as endpoints, or for a bare host with every manager's host, but for the loopback names every node
   * certificate carries anyway (a local cluster's nodes share a host).
   */
  private checkAddresses(addresses: readonly string[], role: NodeRole): void {
    if (addresses.length > limits.certAddressesMax) {
      throw new MinkubeError('INVALID_BODY', `body.addresses: at most ${limits.certAddressesMax} addresses, got ${addresses.length}`);
    }
    addresses.forEach((address, i) => {
      const parts = certAddressParts(address);
      if (parts === null) {
        throw new MinkubeError('INVALID_BODY', `body.addresses[${i}]: expected an IP address or a host name (letters, digits and '-' in dot-separated labels, no wildcard), with :port or without, got ${JSON.stringify(address)}`);
      }
      const manager = role === 'worker' ? managerNamed(this.o.managers(), address, parts) : null;
      if (manager !== null) {
        throw new MinkubeError('WORKER_ADDRESS_IN_USE', `body.addresses[${i}]: ${address} ${manager}: a worker's certificate may name only the worker's own addresses`);
      }
    });
  }

  /** checkAddresses' manager rule for the hosts a worker's current certificate names (a renewal without `addresses`). */
  private checkCarriedOver(names: readonly string[]): void {
    for (const name of names) {
      const parts = certAddressParts(name);
      const manager = parts === null ? null : managerNamed(this.o.managers(), name, parts);
      if (manager !== null) {
        throw new MinkubeError(
          'WORKER_ADDRESS_IN_USE',
          `the current certificate names ${name}, which ${manager}: a worker's certificate may name only the worker's own addresses (renew with addresses naming them)`,
        );
      }
    }
  }

  private sign(id: string, role: NodeRole, csrPem: string, addresses: readonly string[]): Promise<string> {
    const { material } = this.o;
    return issueNodeCertificate({
      id,
      role,
      clusterId: material.identity.clusterId,
      caCertPem: material.caCertPem,
      caKeyPem: this.caKeyPem,
      csrPem,
      sans: sansForAddresses([...addresses]),
      now: new Date(this.o.clock.nowMs()),
      ...(this.o.certLifetimeS === undefined ? {} : { lifetimeDays: this.o.certLifetimeS / 86_400 }),
    });
  }
}

/** A request for the other role's certificate: the node was given the wrong kind of join token, and is told so. */
async function refuseOtherRole(csrPem: string, role: NodeRole): Promise<void> {
  const asked = await requestedIdentity(csrPem);
  if (asked === null || asked.role === role) return;
  throw new MinkubeError('INVALID_BODY', `this is a ${role} join token; a ${asked.role} needs one made with minkube token create --role ${asked.role}`);
}

/** Whether a joining manager's addresses are the member's raft and API addresses (localhost as 127.0.0.1). */
function sameAddresses(member: { raftAddress: string; apiAddress: string }, addresses: readonly string[]): boolean {
  const asked = new Set(addresses.map(endpointKey));
  return asked.has(endpointKey(member.raftAddress)) && asked.has(endpointKey(member.apiAddress));
}

/** Hosts every node certificate names (sansForAddresses): a worker's asking for them changes nothing. */
const everyNodesHosts: ReadonlySet<string> = new Set(['127.0.0.1']);

/** How the manager whose address `address` is would be named ("is manager m1's apiAddress"), or null for none. */
function managerNamed(managers: readonly { id: string; raftAddress: string; apiAddress: string }[], address: string, parts: { host: string; port: number | null }): string | null {
  const host = hostKey(parts.host);
  if (parts.port === null && everyNodesHosts.has(host)) return null;
  for (const m of managers) {
    for (const key of ['apiAddress', 'raftAddress'] as const) {
      const theirs = endpointKey(m[key]);
      if (parts.port !== null && theirs === endpointKey(address)) return `is manager ${m.id}'s ${key}`;
      if (parts.port === null && theirs.slice(0, theirs.lastIndexOf(':')) === host) return `is the host of manager ${m.id}'s ${key} (${m[key]})`;
    }
  }
  return null;
}

/** A host as endpointKey spells it (lower case, localhost as 127.0.0.1, IPv4 in dotted decimal, IPv6 compressed). */
function hostKey(host: string): string {
  const key = endpointKey(host.includes(':') ? `[${host}]:0` : `${host}:0`);
  return key.slice(0, key.lastIndexOf(':'));
}

/** The hosts a peer certificate names (for a renewal that keeps them). */
function sanStrings(cert: PeerCertificate): string[] {
  const raw = cert.subjectaltname ?? '';
  return raw
    .split(', ')
    .map((entry) => entry.replace(/^(DNS|IP Address):/, ''))
    .filter((host) => host !== '');
}
