// Node certificates renew themselves before they expire, without a restart: a loop on the injected clock notices when
// two thirds of the certificate's lifetime have passed, has a new key certified for the same identity (a manager
// signs locally with the CA key, a worker asks a manager), writes it to <dataDir>/tls, and swaps it into the transport,
// the HTTPS server and the HTTP clients. Connections already open keep the certificate they were authenticated with.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { SecureContextOptions } from 'node:tls';
import type { Logger } from 'pino';
import { parseJson, type HttpClient } from '../client/http.js';
import { backoffCeilingMs } from '../lib/backoff.js';
import type { Clock } from '../lib/clock.js';
import { MinkubeError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import {
  certificateExpiry, certificateLifetimeMs, createCsr, generateNodeKey, identityFromCertificate, isIssuedBy, issueNodeCertificate, needsRenewal,
} from '../security/ca.js';
import { sansForAddresses, writeNodeTls, type NodeTls } from '../security/pki-files.js';
import type { TcpTransport, TransportTls } from '../transport/tcp.js';
import { nodeSecurityFrom } from './security.js';

export interface RenewalOptions {
  dataDir: string;
  /** The current material: the loop renews what this answers, so onRenewed should make it answer the new one. */
  material: () => NodeTls;
  clock: Clock;
  /** Default limits.certRenewCheckIntervalMs; never more than a tenth of the current certificate's lifetime. */
  checkIntervalMs?: number;
  /** Signs a CSR for this node's identity: a manager signs locally with its CA key, a worker asks a manager. */
  sign(csrPem: string): Promise<string>;
  /** Called with the new material after it is on disk: swap it into the transport, the server and the client. */
  onRenewed(material: NodeTls): void;
  /**
   * Called once when a renewal failed and the certificate has expired meanwhile (the process was paused past its
   * expiry, or cut off from every manager): no manager takes it to renew any more, so retrying is no use.
   */
  onExpired?(expiredAt: Date): void;
  logger: Logger;
}

export interface CertRenewal {
  /** Stops checking; a renewal under way is abandoned before it writes anything. */
  stop(): void;
  /** Renews now, due or not (after any renewal under way): true once the new material is on disk and swapped in. */
  renewNow(): Promise<boolean>;
}

/** Checks now and every checkIntervalMs; a failed renewal is retried sooner, with a backoff bounded by the interval. */
export function startCertRenewal(o: RenewalOptions): CertRenewal {
  const checkIntervalMsMax = o.checkIntervalMs ?? limits.certRenewCheckIntervalMs;
  let timer: { cancel(): void } | null = null;
  let stopped = false;
  let failures = 0;
  // One renewal at a time: each attempt starts after the one before it has finished.
  let chain: Promise<unknown> = Promise.resolve();

  const attempt = async (force: boolean): Promise<boolean> => {
    if (stopped) return false;
    timer?.cancel();
    let renewed = false;
    // Measured on the certificate each time: a renewal may bring another lifetime.
    const checkIntervalMs = checkIntervalFor(o.material().certPem, checkIntervalMsMax);
    let nextCheckMs = checkIntervalMs;
    try {
      renewed = await renewIfDue(o, force, () => stopped);
      failures = 0;
    } catch (err) {
      failures++;
      nextCheckMs = retryDelayMs(failures, checkIntervalMs);
      logFailure(o, err, nextCheckMs);
      const expiredAt = expiryIfPast(o.material().certPem, o.clock.nowMs());
      if (expiredAt !== null && o.onExpired !== undefined && !stopped) {
        stopped = true;
        o.onExpired(expiredAt);
        return false;
      }
    }
    if (!stopped) timer = o.clock.setTimeout(() => void run(false), nextCheckMs);
    return renewed;
  };
  const run = (force: boolean): Promise<boolean> => {
    const next = chain.then(() => attempt(force));
    chain = next;
    return next;
  };

  void run(false);
  return {
    stop() {
      stopped = true;
      timer?.cancel();
      timer = null;
    },
    renewNow: () => run(true),
  };
}

/**
 * How long to wait between checks: at most a tenth of the certificate's lifetime, so that a short-lived one (a minute,
 * say) is still looked at several times between its renewal point (two thirds) and its expiry. Never under a second.
 */
export function checkIntervalFor(certPem: string, checkIntervalMsMax: number): number {
  let lifetimeMs: number;
  try {
    lifetimeMs = certificateLifetimeMs(certPem);
  } catch {
    return checkIntervalMsMax; // unreadable: renewIfDue says why
  }
  return Math.min(checkIntervalMsMax, Math.max(Math.floor(lifetimeMs / 10), 1000));
}

/**
 * limits.certRenewRetryMsMin doubling per failure in a row, up to limits.certRenewRetryMsMax and never past the next
 * check: the one backoff's ceiling, without jitter (one node's renewals cannot stampede).
 */
export function retryDelayMs(failures: number, checkIntervalMs: number): number {
  const backoffMs = backoffCeilingMs(failures, { baseMs: limits.certRenewRetryMsMin, capMs: limits.certRenewRetryMsMax });
  return Math.min(backoffMs, checkIntervalMs);
}

/** The certificate's expiry when it is past at nowMs; null while it holds (or when it cannot be read). */
function expiryIfPast(certPem: string, nowMs: number): Date | null {
  try {
    const expiry = certificateExpiry(certPem);
    return expiry.getTime() <= nowMs ? expiry : null;
  } catch {
    return null;
  }
}

function logFailure(o: RenewalOptions, err: unknown, retryInMs: number): void {
  let expiresAt: string | undefined;
  try {
    expiresAt = certificateExpiry(o.material().certPem).toISOString();
  } catch {
    expiresAt = undefined;
  }
  o.logger.warn({ err, retryInMs, expiresAt }, 'certificate renewal failed; the node keeps its current certificate and retries');
}

/** True when it renewed; false when the certificate was not due (or the loop stopped meanwhile). Throws why it failed. */
async function renewIfDue(o: RenewalOptions, force: boolean, stopped: () => boolean): Promise<boolean> {
  const current = o.material();
  const now = new Date(o.clock.nowMs());
  if (!force && !needsRenewal(current.certPem, now)) return false;
  const { keyPem } = await generateNodeKey();
  const csrPem = await createCsr({ keyPem, ...current.identity });
  const certPem = await o.sign(csrPem);
  const problem = await renewedProblem(current, keyPem, certPem, new Date(o.clock.nowMs()));
  if (problem !== null) throw new MinkubeError('INVALID_BODY', `the renewed certificate was refused: ${problem}`);
  if (stopped()) return false;
  // Identity and CA key carry over: only the node's key and certificate change.
  const renewed: NodeTls = { ...current, keyPem, certPem };
  await writeNodeTls(o.dataDir, renewed);
  o.onRenewed(renewed);
  o.logger.info({ expiresAt: certificateExpiry(certPem).toISOString(), identity: current.identity }, 'certificate renewed');
  return true;
}

/** Why a signer's answer may not replace the current certificate, or null when it may. */
export async function renewedProblem(current: NodeTls, keyPem: string, certPem: string, now: Date): Promise<string | null> {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    return 'it is not a PEM certificate';
  }
  const got = identityFromCertificate(certPem);
  const want = current.identity;
  if (got === null || got.id !== want.id || got.role !== want.role || got.clusterId !== want.clusterId) {
    return `it names ${got === null ? 'no node' : `${got.role} ${got.id} of ${got.clusterId}`}, not ${want.role} ${want.id} of ${want.clusterId}`;
  }
  if (!cert.checkPrivateKey(createPrivateKey(keyPem))) return 'it does not certify the key this node generated';
  if (!(await isIssuedBy(certPem, current.caCertPem, now))) return `it is not signed by the cluster's CA, or not valid now (${now.toISOString()} by this host's clock: check it against the managers')`;
  return null;
}

/** A manager's signer: its own CA key certifies its new key, for the hosts of the addresses it serves on. */
export function localSigner(material: NodeTls, addresses: string[], o: { lifetimeDays?: number; clock?: Clock } = {}): (csrPem: string) => Promise<string> {
  const { caKeyPem } = material;
  if (caKeyPem === undefined) throw new MinkubeError('CONFIG_INVALID', `${material.identity.role} ${material.identity.id} holds no CA key; it renews through a manager`);
  const sans = sansForAddresses(addresses);
  return (csrPem) =>
    issueNodeCertificate({
      ...material.identity,
      caCertPem: material.caCertPem,
      caKeyPem,
      csrPem,
      sans,
      ...(o.lifetimeDays === undefined ? {} : { lifetimeDays: o.lifetimeDays }),
      ...(o.clock === undefined ? {} : { now: new Date(o.clock.nowMs()) }),
    });
}

/**
 * A worker's signer: POST /v1/certs/renew over mutual TLS with its current certificate, to each manager in turn until
 * one answers a certificate. `http` must be the client that presents the current certificate (applyRenewedTls keeps
 * it so). Without addresses, the managers keep the names the current certificate carries.
 */
export function remoteSigner(http: HttpClient, managers: readonly string[] | (() => readonly string[]), addresses?: string[]): (csrPem: string) => Promise<string> {
  const body = (csr: string): string => JSON.stringify(addresses === undefined ? { csr } : { csr, addresses });
  return async (csrPem) => {
    const list = typeof managers === 'function' ? managers() : managers;
    if (list.length === 0) throw new MinkubeError('UNREACHABLE', 'no manager is known to renew the certificate');
    const failures: string[] = [];
    for (const manager of list) {
      try {
        return await renewAt(http, manager, body(csrPem));
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
    throw new MinkubeError('UNREACHABLE', `no manager renewed the certificate: ${failures.join('; ')}`);
  };
}

async function renewAt(http: HttpClient, manager: string, body: string): Promise<string> {
  const url = http.baseUrlOf(manager);
  const res = await http.requestOk({ method: 'POST', url, path: '/v1/certs/renew', headers: { 'content-type': 'application/json' }, body });
  const certificate = (parseJson(res.text) as { certificate?: unknown } | undefined)?.certificate;
  if (typeof certificate !== 'string') throw new MinkubeError('UNREACHABLE', `${url}/v1/certs/renew answered no certificate`);
  return certificate;
}

export interface RenewalTargets {
  transport?: TcpTransport;
  /** The node's HTTPS server (fastify's app.server when it serves TLS). */
  server?: { setSecureContext(options: SecureContextOptions): void };
  http?: readonly HttpClient[];
}

/**
 * Swaps renewed material into everything that presents it, with the same options the node started with (see
 * nodeSecurityFrom): new connections use it, open ones keep theirs. verifyPeer defaults to the cluster's usual check.
 */
export function applyRenewedTls(targets: RenewalTargets, material: NodeTls, verifyPeer?: TransportTls['verifyPeer']): void {
  const security = nodeSecurityFrom(material);
  const transportTls = security.transportTls();
  targets.transport?.setTls(verifyPeer === undefined ? transportTls : { ...transportTls, verifyPeer });
  targets.server?.setSecureContext(security.serverTls());
  for (const http of targets.http ?? []) http.setTls(security.clientTls());
}
