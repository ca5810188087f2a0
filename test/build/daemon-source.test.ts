// bin/minkube.js runs dist/ or, when asked (MINKUBE_FROM_SOURCE=1) or when a source is newer than the build, the
// TypeScript sources. A daemon it starts must come from the same side: from the sources, an older build of the
// manager must never be loaded in their place. A preload watches the loader bin/minkube.js offers for the bundles.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { minkubeBin } from '../support/cluster.js';

const dir = mkdtempSync(join(tmpdir(), 'minkube-daemon-source-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Says on stderr, at exit, which daemon bundles were asked of bin/minkube.js's loader.
const probe = join(dir, 'probe.mjs');
writeFileSync(
  probe,
  `const key = Symbol.for('minkube.loadDaemon');
   const asked = [];
   let load;
   Object.defineProperty(globalThis, key, { configurable: true, get: () => (load === undefined ? undefined : (name) => (asked.push(name), load(name))), set: (f) => (load = f) });
   process.on('exit', () => process.stderr.write('bundles asked: ' + JSON.stringify(asked) + '\\n'));`,
);
// A manager that stops at once, after its code is loaded: its data directory is a file.
const blocker = join(dir, 'not-a-dir');
writeFileSync(blocker, '');
const config = join(dir, 'cluster.json');
writeFileSync(config, JSON.stringify({ insecure: true, managers: [{ id: 'm1', raftAddress: '127.0.0.1:1', apiAddress: '127.0.0.1:2', dataDir: blocker }] }));

function startManager(fromSource: '0' | '1'): Promise<string> {
  const env = { ...process.env, MINKUBE_FROM_SOURCE: fromSource, MINKUBE_LOG_LEVEL: 'silent', NODE_OPTIONS: `--import ${probe}` };
  return new Promise((resolve) => execFile(process.execPath, [minkubeBin, 'manager', '--config', config, '--id', 'm1'], { env, timeout: 60_000 }, (_err, _out, stderr) => resolve(stderr)));
}

it('from the sources, the manager runs from the sources; from dist/, from its bundle', async () => {
  const [source, built] = await Promise.all([startManager('1'), startManager('0')]);
  for (const stderr of [source, built]) expect(stderr).toContain(`error: CONFIG_INVALID: dataDir ${blocker} cannot be used as a directory`);
  expect(source).toContain('bundles asked: []');
  expect(built).toContain('bundles asked: ["manager"]');
}, 90_000);
