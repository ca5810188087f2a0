// --force-new-cluster starts a one-member cluster from a surviving manager's data: from a data directory that holds
// none (a wrong --id or --data-dir) it refuses, rather than start a new, empty cluster in the place of the lost one.
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryMarker } from '../../src/storage/marker.js';
import { DriverCluster } from './driver-harness.js';

let cluster: DriverCluster | null = null;
afterEach(async () => {
  await cluster?.close();
  cluster = null;
});

describe('--force-new-cluster', () => {
  it('refuses a data directory with no log and no snapshot', async () => {
    cluster = new DriverCluster({ ids: ['m1'] });
    await expect(cluster.open('m1', { forceNewCluster: true })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringContaining('--force-new-cluster found no log and no snapshot in the data directory of m1') as string,
    });
  });

  it('refuses a survivor whose storage is damaged (it lost writes it acknowledged) unless --accept-data-loss (outside tester)', async () => {
    cluster = new DriverCluster();
    await cluster.startAll();
    await cluster.leader();
    await cluster.put(20);
    for (const id of ['m1', 'm2', 'm3']) await cluster.stop(id);
    await expect(cluster.start('m1', { forceNewCluster: true, markerDamaged: true })).rejects.toMatchObject({
      code: 'STORAGE_CORRUPT',
      message: expect.stringMatching(/^--force-new-cluster refused: the storage of m1 is damaged \(.+\), and a new cluster from it would lose for good any write it acknowledged past what its log holds\. Start --force-new-cluster on a manager whose storage is intact, or add --accept-data-loss to go on from this one$/) as string,
    });
    const survivor = await cluster.start('m1', { forceNewCluster: true, markerDamaged: true, acceptDataLoss: true });
    expect(survivor.driver.conf().voters).toEqual(['m1']);
    expect((await cluster.leader()).id).toBe('m1');
  });

  it.each([
    ['damaged (no intact slot)', (m: MemoryMarker) => (m.damaged = true)],
    ['ahead of its log (an older copy of the data directory)', (m: MemoryMarker) => (m.value = { ackedIndex: 500, ackedTerm: 9, term: 9, vote: null })],
  ])('a refusal over a marker %s writes nothing: the marker and the log stay as they were (outside re-test)', async (_, damage) => {
    cluster = new DriverCluster();
    await cluster.startAll();
    await cluster.leader();
    await cluster.put(20);
    for (const id of ['m1', 'm2', 'm3']) await cluster.stop(id);
    const marker = new MemoryMarker();
    damage(marker);
    const before = { value: marker.value, damaged: marker.damaged };
    const disk = cluster.disks.get('m1')!;
    const logOf = (): unknown => ({ hardState: disk.hardState, firstIndex: disk.firstIndex, entries: disk.entries.map((e) => ({ ...e, data: [...e.data] })) });
    const log = logOf();
    for (let i = 0; i < 2; i++) {
      await expect(cluster.open('m1', { forceNewCluster: true, marker })).rejects.toMatchObject({ code: 'STORAGE_CORRUPT' });
      expect(marker.writes).toBe(0);
      expect({ value: marker.value, damaged: marker.damaged }).toEqual(before);
      expect(logOf()).toEqual(log);
    }
    // --accept-data-loss goes on from it, and the marker follows the forced entry.
    await cluster.start('m1', { forceNewCluster: true, acceptDataLoss: true, marker });
    expect((await cluster.leader()).id).toBe('m1');
    expect(marker.damaged).toBe(false);
    expect(marker.writes).toBeGreaterThan(0);
  });

  it('with --accept-data-loss and nothing of the damaged log kept: STORAGE_CORRUPT saying so, not "a wrong --id" (outside re-test)', async () => {
    cluster = new DriverCluster({ ids: ['m1'] });
    await expect(cluster.open('m1', { forceNewCluster: true, markerDamaged: true, acceptDataLoss: true })).rejects.toMatchObject({
      code: 'STORAGE_CORRUPT',
      message: expect.stringMatching(/^--force-new-cluster: nothing of the log of m1 could be kept \(.+\): there is no state to start a new cluster from/) as string,
    });
  });

  it("starts from a survivor's data, alone", async () => {
    cluster = new DriverCluster();
    await cluster.startAll();
    await cluster.leader();
    await cluster.put(20);
    for (const id of ['m1', 'm2', 'm3']) await cluster.stop(id);
    const survivor = await cluster.start('m1', { forceNewCluster: true });
    expect(survivor.driver.conf().voters).toEqual(['m1']);
    expect((await cluster.leader()).id).toBe('m1');
  });
});
