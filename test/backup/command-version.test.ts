// A backup records the command version of the manager that wrote it, so a build that understands less says why it
// refuses the file instead of failing on its content ("kv snapshot: tasks: bad worker 0"), and the file stays format 2,
// which every build that reads format 2 reads.
import { describe, expect, it } from 'vitest';
import { commandVersion, encodeCommand } from '../../src/kv/commands.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { logIndex, nodeId, term } from '../../src/lib/ids.js';
import { encodeBackup, inspectBackup, loadBackup, parseBackup, parseBackupHeader } from '../../src/manager/backup-file.js';
import { encodeSnapshot } from '../../src/manager/members.js';
import { withHeaderRewritten } from '../support/backup-file.js';

async function backup(): Promise<Uint8Array> {
  const sm = new KvStateMachine();
  for (let i = 1; i <= 3; i++) sm.apply(i, encodeCommand({ clientId: 'c', seq: i, cmd: { op: 'put', key: `k${i}`, value: `v${i}` } }));
  const meta = { index: logIndex(3), term: term(1), voters: [nodeId('m1')], learners: [] };
  const body = encodeSnapshot([[nodeId('m1'), { raftAddress: '127.0.65.1:1', apiAddress: '127.0.65.1:2' }]], await sm.captureSnapshot()());
  return encodeBackup(meta, body, '2030-01-01T00:00:00.000Z');
}

describe("a backup's command version", () => {
  it('is written in the format-2 header, and inspect shows it', async () => {
    const file = await backup();
    const { header } = parseBackupHeader(file);
    expect(header).toMatchObject({ format: 2, commandVersion });
    expect(inspectBackup(file)).toMatchObject({ format: 2, commandVersion, keys: 3 });
  });

  it('an earlier build\'s file, without one, is read as before', async () => {
    const file = withHeaderRewritten(await backup(), (json) => json.replace(`,"commandVersion":${commandVersion}`, ''));
    expect(parseBackupHeader(file).header.commandVersion).toBeUndefined();
    expect(inspectBackup(file)).toMatchObject({ commandVersion: null, keys: 3 });
  });

  it('a file made by a manager of a newer command version is refused, saying so, by inspect and restore alike', async () => {
    const file = withHeaderRewritten(await backup(), (json) => json.replace(`"commandVersion":${commandVersion}`, `"commandVersion":${commandVersion + 1}`));
    const said = `the snapshot was made by a manager of command version ${commandVersion + 1}; this one understands ${commandVersion}: restore it with a newer build`;
    expect(() => inspectBackup(file)).toThrow(said);
    expect(() => loadBackup(parseBackup(file))).toThrow(expect.objectContaining({ code: 'SNAPSHOT_INVALID' }) as Error);
  });
});
