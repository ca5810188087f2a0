// A node that cannot start says why and exits 1, as every command does: here, an address of its config that another
// process holds (LISTEN_FAILED names the address and the config key), for the manager's API and Raft addresses; and
// `minkube up`, which looks at every address first and starts nothing when one is taken.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { freePort, freePortIn } from '../support/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'minkube-start-errors-'));
const holders: Server[] = [];
afterAll(async () => {
  await Promise.all(holders.map((s) => new Promise((r) => s.close(r))));
  rmSync(dir, { recursive: true, force: true });
});

/** Another process's listener on a free port of 127.0.0.1. */
async function taken(): Promise<string> {
  const port = await freePort();
  const server = createServer();
  holders.push(server);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return `127.0.0.1:${port}`;
}

async function config(name: string, addresses: { raftAddress: string; apiAddress: string }): Promise<string> {
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify({ insecure: true, managers: [{ id: 'm1', ...addresses, dataDir: `./data-${name}` }] }));
  return path;
}

describe('a manager whose address is taken', () => {
  it('apiAddress: exits 1 with LISTEN_FAILED naming the address and the key', async () => {
    const apiAddress = await taken();
    const path = await config('api', { raftAddress: `127.0.0.1:${await freePort()}`, apiAddress });
    const r = await runCli(['manager', '--config', path, '--id', 'm1'], { MINKUBE_LOG_LEVEL: 'silent' });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`error: LISTEN_FAILED: cannot listen on ${apiAddress} (apiAddress): the address is in use`);
  });

  it('raftAddress: the same, naming raftAddress', async () => {
    const raftAddress = await taken();
    const path = await config('raft', { raftAddress, apiAddress: `127.0.0.1:${await freePort()}` });
    const r = await runCli(['manager', '--config', path, '--id', 'm1'], { MINKUBE_LOG_LEVEL: 'silent' });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`error: LISTEN_FAILED: cannot listen on ${raftAddress} (raftAddress): the address is in use`);
  });
});

describe('minkube up with an address of its config taken', () => {
  it('starts nothing, writes no credentials, and lists every taken address with its node and key', async () => {
    const apiAddress = await taken();
    const path = join(dir, 'up.json');
    const managers = [
      { id: 'm1', raftAddress: `127.0.0.1:${await freePort()}`, apiAddress, dataDir: './data-up/m1' },
      { id: 'm2', raftAddress: `127.0.0.1:${await freePort()}`, apiAddress: `127.0.0.1:${await freePort()}`, dataDir: './data-up/m2' },
    ];
    writeFileSync(path, JSON.stringify({ managers }));
    const credentials = join(dir, 'credentials.json');
    const r = await runCli(['up', '--config', path], { MINKUBE_CONFIG: credentials });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toBe(
      `error: LISTEN_FAILED: cannot start the cluster of ${path}; is it running already? (minkube status)\n` +
        `  - cannot listen on ${apiAddress} (m1's apiAddress): the address is in use (by another process, or another node of the same config)\n`,
    );
    expect(existsSync(credentials)).toBe(false);
    expect(existsSync(join(dir, 'data-up'))).toBe(false);
  });
});

// Node's fs.mkdir({ recursive: true }) spun there forever, at full CPU and deaf to SIGTERM; the test's bound says "at once".
describe.runIf(existsSync('/proc/self'))('a manager whose data directory cannot be made (in /proc, where mkdir answers ENOENT)', () => {
  const reason = (path: string) => `no directory can be made in /proc: its file system answers ENOENT to mkdir ${path} although /proc exists`;

  it('from its config: exits 1 at once with CONFIG_INVALID naming the path and why', async () => {
    const path = join(dir, 'proc.json');
    writeFileSync(path, JSON.stringify({ insecure: true, managers: [{ id: 'p1', raftAddress: `127.0.0.1:${await freePort()}`, apiAddress: `127.0.0.1:${await freePort()}`, dataDir: '/proc/p1' }] }));
    const r = await runCli(['manager', '--config', path, '--id', 'p1'], { MINKUBE_LOG_LEVEL: 'silent' });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`error: CONFIG_INVALID: dataDir /proc/p1 cannot be used as a directory: ${reason('/proc/p1')}\n`);
  }, 20_000);

  it('joining from flags alone: the same', async () => {
    const flags = ['--raft-address', `127.0.0.1:${await freePort()}`, '--api-address', `127.0.0.1:${await freePort()}`, '--data-dir', '/proc/m9'];
    const r = await runCli(['manager', '--id', 'm9', '--join', 'http://127.0.0.1:1', ...flags], { MINKUBE_LOG_LEVEL: 'silent' });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`error: CONFIG_INVALID: dataDir /proc/m9 cannot be used as a directory: ${reason('/proc/m9')}\n`);
  }, 20_000);
});

describe('minkube up with a data directory that cannot be one', () => {
  // Outside tester: up said INTERNAL (no directory can be made in /proc ..., ENOTDIR ... tls/ca.crt) where manager says CONFIG_INVALID.
  it('exits 1 with CONFIG_INVALID naming each node, its dataDir and why, as manager does, before it makes a CA or starts a node', async () => {
    const folder = join(dir, 'up-bad-dirs');
    mkdirSync(folder);
    writeFileSync(join(folder, 'afile'), 'not a directory\n');
    const host = '127.0.63.41';
    const port = (): Promise<number> => freePortIn(host, 20000, 40000);
    const managers = [
      { id: 'm1', raftAddress: `${host}:${await port()}`, apiAddress: `${host}:${await port()}`, dataDir: join(folder, 'afile', 'm1') },
      ...(existsSync('/proc/self') ? [{ id: 'm2', raftAddress: `${host}:${await port()}`, apiAddress: `${host}:${await port()}`, dataDir: '/proc/m2' }] : []),
    ];
    const path = join(folder, 'cluster.json');
    writeFileSync(path, JSON.stringify({ managers }));
    const credentials = join(dir, 'up-bad-dirs-credentials.json');
    const r = await runCli(['up', '--config', path], { MINKUBE_CONFIG: credentials });
    expect(r.code, r.stderr).toBe(1);
    const lines = [
      `error: CONFIG_INVALID: cannot start the cluster of ${path}`,
      `  - m1: dataDir ${join(folder, 'afile', 'm1')} cannot be used as a directory: a file stands where one of its parent directories should be`,
      ...(managers.length > 1 ? ['  - m2: dataDir /proc/m2 cannot be used as a directory: no directory can be made in /proc: its file system answers ENOENT to mkdir /proc/m2 although /proc exists'] : []),
    ];
    expect(r.stderr).toBe(`${lines.join('\n')}\n`);
    // No CA, no admin token, no credentials file: nothing but what the test put there.
    expect(readdirSync(folder).sort()).toEqual(['afile', 'cluster.json']);
    expect(existsSync(credentials)).toBe(false);
  }, 30_000);
});

describe('--token-file', () => {
  it('refuses a missing or empty file, and both --token and --token-file, before anything starts', async () => {
    const flags = ['--api-address', `127.0.0.1:${await freePort()}`, '--data-dir', join(dir, 'tf-w')];
    const missing = await runCli(['worker', '--id', 'w7', '--join', 'https://127.0.0.1:1', '--token-file', join(dir, 'none'), ...flags], { MINKUBE_LOG_LEVEL: 'silent' });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`error: CONFIG_INVALID: --token-file ${join(dir, 'none')}: cannot read it (no such file)`);
    const empty = join(dir, 'empty.token');
    writeFileSync(empty, ' \n');
    const blank = await runCli(['manager', '--id', 'm7', '--join', 'https://127.0.0.1:1', '--token-file', empty, '--raft-address', `127.0.0.1:${await freePort()}`, ...flags], { MINKUBE_LOG_LEVEL: 'silent' });
    expect(blank.code).toBe(1);
    expect(blank.stderr).toContain(`error: CONFIG_INVALID: --token-file ${empty}: the file is empty`);
    const both = await runCli(['worker', '--id', 'w7', '--join', 'https://127.0.0.1:1', '--token', 'x', '--token-file', empty, ...flags], { MINKUBE_LOG_LEVEL: 'silent' });
    expect(both.code).toBe(1);
    expect(both.stderr).toContain('error: CONFIG_INVALID: --token and --token-file: give one of them');
    expect(existsSync(join(dir, 'tf-w'))).toBe(false);
  }, 30_000);
});

describe('--join and --token-file values that cannot be right (outside tester)', () => {
  const silent = { MINKUBE_LOG_LEVEL: 'silent' };
  const managerFlags = ['--raft-address', '127.0.62.1:7001', '--api-address', '127.0.62.1:8001', '--data-dir', join(dir, 'bad-m')];
  const workerFlags = ['--api-address', '127.0.62.1:8101', '--data-dir', join(dir, 'bad-w')];

  it('a --join that is neither an http(s) URL nor host:port is CONFIG_INVALID saying so, not a call for --token', async () => {
    const [manager, worker] = await Promise.all([
      runCli(['manager', '--id', 'm8', '--join', 'not-a-url', ...managerFlags], silent),
      runCli(['worker', '--id', 'w8', '--join', 'ftp://127.0.62.1:1', '--token', 'x', ...workerFlags], silent),
    ]);
    expect(manager.code).toBe(1);
    expect(manager.stderr).toContain('error: CONFIG_INVALID: --join not-a-url: not an http(s) URL nor a host:port: "not-a-url"; give a manager\'s API, http://HOST:PORT in an insecure cluster, https://HOST:PORT in a secure one');
    expect(worker.code).toBe(1);
    expect(worker.stderr).toContain('error: CONFIG_INVALID: --join ftp://127.0.62.1:1: not an http(s) URL: ftp://127.0.62.1:1; give a manager\'s API');
    expect(existsSync(join(dir, 'bad-m')) || existsSync(join(dir, 'bad-w'))).toBe(false);
  }, 30_000);

  it('a --token-file that holds no join token is named as the file, its content never echoed', async () => {
    const file = join(dir, 'garbage.token');
    writeFileSync(file, 'mk_0123456789abcdef_not-a-join-token\n');
    const [manager, worker] = await Promise.all([
      runCli(['manager', '--id', 'm8', '--join', 'https://127.0.62.1:1', '--token-file', file, ...managerFlags], silent),
      runCli(['worker', '--id', 'w8', '--join', 'https://127.0.62.1:1', '--token-file', file, ...workerFlags], silent),
    ]);
    for (const r of [manager, worker]) {
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`error: CONFIG_INVALID: --token-file ${file} holds no join token (expected MKTKN-1-<digest>-<secret>;`);
      expect(r.stderr).not.toContain('not-a-join-token');
    }
    expect(existsSync(join(dir, 'bad-m')) || existsSync(join(dir, 'bad-w'))).toBe(false);
  }, 30_000);
});

describe('--join and a join token over plain HTTP (outside tester: the token went out in clear)', () => {
  const silent = { MINKUBE_LOG_LEVEL: 'silent' };
  const host = '127.0.62.6';
  // A plain TCP listener at the --join URL: whatever a join would send (the CA request, then the token) arrives here.
  const received: string[] = [];
  const listener = createServer((socket) => {
    socket.on('data', (d: Buffer) => received.push(d.toString('latin1')));
    socket.on('error', () => undefined);
  });
  let plain = '';
  beforeAll(async () => {
    const port = await freePortIn(host, 20000, 29999);
    await new Promise<void>((r) => listener.listen(port, host, r));
    plain = `${host}:${port}`;
  });
  afterAll(async () => {
    await new Promise((r) => listener.close(r));
  });
  const selfFlags = async (name: string): Promise<string[]> => [
    '--raft-address', `${host}:${await freePortIn(host, 20000, 29999)}`, '--api-address', `${host}:${await freePortIn(host, 20000, 29999)}`, '--data-dir', join(dir, name),
  ];

  it('manager or worker: --join http:// with --token or --token-file is a usage error (exit 2) before anything starts or is sent', async () => {
    const tokenFile = join(dir, 'join.token');
    writeFileSync(tokenFile, 'MKTKN-1-0000000000000000000000000000000000000000000000000000000000000000-secret\n');
    const [manager, managerFromFile, worker] = await Promise.all([
      runCli(['manager', '--id', 'm5', '--join', `http://${plain}`, '--token', 'MKTKN-1-abc-def', ...(await selfFlags('clear-m'))], silent),
      runCli(['manager', '--id', 'm5', '--join', `HTTP://${plain}`, '--token-file', tokenFile, '--config', join(dir, 'no-such-config.json')], silent),
      runCli(['worker', '--id', 'w5', '--join', `http://${plain}`, '--token', 'MKTKN-1-abc-def', '--api-address', `${host}:${await freePortIn(host, 20000, 29999)}`, '--data-dir', join(dir, 'clear-w')], silent),
    ]);
    const give = `give --join https://${plain} or ${plain}`;
    expect(manager.code).toBe(2);
    expect(manager.stderr).toBe(
      `error: --join http://${plain} with --token: a join token is sent only over TLS, pinned to the CA it names, never over plain HTTP: ${give}; an insecure cluster (joined through http://) takes no join token: drop --token\n(run with --help for usage)\n`,
    );
    expect(managerFromFile.code).toBe(2);
    expect(managerFromFile.stderr).toContain(`error: --join HTTP://${plain} with --token-file: a join token is sent only over TLS`);
    expect(worker.code).toBe(2);
    expect(worker.stderr).toContain(`error: --join http://${plain} with --token: a join token is sent only over TLS, pinned to the CA it names, never over plain HTTP: ${give} (a worker joins only a secure cluster`);
    expect(received).toEqual([]);
    expect(existsSync(join(dir, 'clear-m')) || existsSync(join(dir, 'clear-w'))).toBe(false);
  }, 30_000);

  it("a join token with an insecure cluster's config is CONFIG_INVALID, not ignored without a word", async () => {
    const path = join(dir, 'insecure-join.json');
    writeFileSync(path, JSON.stringify({ insecure: true, managers: [{ id: 'm1', raftAddress: `${host}:7001`, apiAddress: `${host}:8001`, dataDir: './never-m1' }] }));
    const r = await runCli(['manager', '--config', path, '--id', 'm4', '--join', `https://${plain}`, '--token', 'MKTKN-1-abc-def', ...(await selfFlags('insecure-m4'))], silent);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`error: CONFIG_INVALID: a join token (--token or --token-file) was given, but ${path} is an insecure cluster's config (insecure: true): an insecure cluster takes no join token; drop it, or give a secure cluster's config`);
    expect(received).toEqual([]);
    expect(existsSync(join(dir, 'insecure-m4'))).toBe(false);
  });
});

describe('a --join URL that is no Minkube manager (outside tester: INTERNAL, reading undefined)', () => {
  const host = '127.0.62.6';
  // Answers every request as no Minkube manager would: a JSON object that is not what was asked.
  const impostor = createHttpServer((req, res) => {
    req.resume();
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ ca: '-----BEGIN CERTIFICATE-----\n...' }));
  });
  let impostorUrl = '';
  beforeAll(async () => {
    const port = await freePortIn(host, 20000, 29999);
    await new Promise<void>((r) => impostor.listen(port, host, r));
    impostorUrl = `http://${host}:${port}`;
  });
  afterAll(async () => {
    impostor.closeAllConnections();
    await new Promise((r) => impostor.close(r));
  });

  it('manager --join: UNREACHABLE naming the URL and what its answer lacked, exit 1, not INTERNAL; the data directory is left empty', async () => {
    const self = ['--raft-address', `${host}:${await freePortIn(host, 20000, 29999)}`, '--api-address', `${host}:${await freePortIn(host, 20000, 29999)}`, '--data-dir', join(dir, 'impostor-m5')];
    const r = await runCli(['manager', '--id', 'm5', '--join', impostorUrl, ...self], { MINKUBE_LOG_LEVEL: 'silent' });
    expect(r.code, r.stderr).toBe(1);
    // Its settings are asked first (a join from flags alone keeps them), then its members.
    expect(r.stderr).toContain(`error: UNREACHABLE: GET ${impostorUrl}/v1/cluster/settings did not answer as a Minkube manager's API does (leaderId: missing): is --join ${impostorUrl} a manager of the cluster?\n`);
    expect(r.stderr).not.toContain('INTERNAL');
    expect(readdirSync(join(dir, 'impostor-m5'))).toEqual([]);
  });
});

describe('a manager started from flags alone (no config file)', () => {
  const flagsFor = async (dataDir: string): Promise<string[]> => ['--raft-address', `127.0.0.1:${await freePort()}`, '--api-address', `127.0.0.1:${await freePort()}`, '--data-dir', dataDir];

  it('joining a secure cluster without --token: CONFIG_INVALID, and no CA or credentials made where it runs', async () => {
    const cwd = mkdtempSync(join(dir, 'joiner-'));
    const r = await runCli(['manager', '--id', 'm6', '--join', 'https://127.0.0.1:1', ...(await flagsFor('./m6'))], { MINKUBE_LOG_LEVEL: 'silent' }, cwd);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain('error: CONFIG_INVALID: a manager joining a secure cluster (https://127.0.0.1:1) without --config needs --token (minkube token create --role manager)');
    expect(existsSync(join(cwd, '.minkube'))).toBe(false);
    expect(existsSync(join(cwd, 'm6'))).toBe(false);
  });

  it('--force-new-cluster over a missing data directory: CONFIG_INVALID, and nothing made (no database, CA or marker)', async () => {
    const cwd = mkdtempSync(join(dir, 'forced-'));
    const path = join(cwd, 'cluster.json');
    writeFileSync(path, JSON.stringify({ managers: [{ id: 'm1', raftAddress: `127.0.0.1:${await freePort()}`, apiAddress: `127.0.0.1:${await freePort()}`, dataDir: './data/m1' }] }));
    const r = await runCli(['manager', '--config', path, '--id', 'm1', '--force-new-cluster'], { MINKUBE_LOG_LEVEL: 'silent' }, cwd);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain('error: CONFIG_INVALID: --force-new-cluster found no log and no snapshot in the data directory of m1');
    expect(readdirSync(cwd)).toEqual(['cluster.json']);
  });

  it('neither joining nor a member already: CONFIG_INVALID naming --join, and no CA made', async () => {
    const cwd = mkdtempSync(join(dir, 'restart-'));
    const r = await runCli(['manager', '--id', 'm6', ...(await flagsFor('./m6'))], { MINKUBE_LOG_LEVEL: 'silent' }, cwd);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/error: CONFIG_INVALID: without --config, a manager joins a running cluster \(--join URL, with --token for a secure one\); .*m6 holds no earlier membership/);
    expect(existsSync(join(cwd, '.minkube'))).toBe(false);
  });

  it('a join through http:// that fails leaves nothing behind, so a start without --join is refused, not a new cluster', async () => {
    const cwd = mkdtempSync(join(dir, 'failed-join-'));
    const flags = await flagsFor('./m7');
    // Nothing listens on port 1: the leader is never reached.
    const r = await runCli(['manager', '--id', 'm7', '--join', 'http://127.0.0.1:1', ...flags], { MINKUBE_LOG_LEVEL: 'silent' }, cwd);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain('UNREACHABLE');
    expect(readdirSync(join(cwd, 'm7'))).toEqual([]);
    expect(existsSync(join(cwd, 'm7.marker'))).toBe(false);
    const again = await runCli(['manager', '--id', 'm7', ...flags], { MINKUBE_LOG_LEVEL: 'silent' }, cwd);
    expect(again.code, again.stderr).toBe(1);
    expect(again.stderr).toMatch(/error: CONFIG_INVALID: without --config, a manager joins a running cluster .*m7 holds no earlier membership/);
  });

  it('--token without --join: CONFIG_INVALID', async () => {
    const r = await runCli(['manager', '--id', 'm6', '--token', 'MKTKN-1-x', ...(await flagsFor(join(dir, 'never')))], { MINKUBE_LOG_LEVEL: 'silent' });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain('error: CONFIG_INVALID: --token goes with --join');
  });

  it('--accept-data-loss without --force-new-cluster: CONFIG_INVALID', async () => {
    const r = await runCli(['manager', '--id', 'm6', '--accept-data-loss', ...(await flagsFor(join(dir, 'never')))], { MINKUBE_LOG_LEVEL: 'silent' });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain('error: CONFIG_INVALID: --accept-data-loss goes with --force-new-cluster');
  });
});

describe('a manager whose operator certificate cannot be used', () => {
  async function secureConfig(name: string, api: object): Promise<string> {
    const path = join(dir, `${name}.json`);
    const managers = [{ id: 'm1', raftAddress: `127.0.0.1:${await freePort()}`, apiAddress: `127.0.0.1:${await freePort()}`, dataDir: `./data-${name}` }];
    writeFileSync(path, JSON.stringify({ managers, api }));
    return path;
  }

  it('a missing file: CONFIG_INVALID naming each key, not INTERNAL', async () => {
    const path = await secureConfig('tls-missing', { tlsCertFile: 'nope.crt', tlsKeyFile: 'nope.key' });
    const r = await runCli(['manager', '--config', path, '--id', 'm1'], { MINKUBE_LOG_LEVEL: 'silent' });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`api.tlsCertFile: cannot read ${join(dir, 'nope.crt')} (ENOENT)`);
    expect(r.stderr).toContain(`api.tlsKeyFile: cannot read ${join(dir, 'nope.key')} (ENOENT)`);
    expect(r.stderr).toMatch(/^error: CONFIG_INVALID: /m);
    // Found before start-up wrote anything: no data directory, no marker, no CA beside the config.
    for (const made of ['data-tls-missing', 'data-tls-missing.marker', '.minkube']) expect(existsSync(join(dir, made)), made).toBe(false);
  });

  it('files that are not a certificate and its key: CONFIG_INVALID naming the pair', async () => {
    writeFileSync(join(dir, 'junk.crt'), 'not a certificate\n');
    writeFileSync(join(dir, 'junk.key'), 'not a key\n');
    const path = await secureConfig('tls-junk', { tlsCertFile: 'junk.crt', tlsKeyFile: 'junk.key' });
    const r = await runCli(['manager', '--config', path, '--id', 'm1'], { MINKUBE_LOG_LEVEL: 'silent' });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^error: CONFIG_INVALID: .*\n {2}- api\.tlsCertFile, api\.tlsKeyFile: .*junk\.crt and .*junk\.key are not a certificate and its key/m);
  });
});
