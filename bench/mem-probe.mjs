// Loaded into a benchmark's managers with `node --import bench/mem-probe.mjs`: on SIGUSR2 the process writes its
// memory breakdown (process.memoryUsage() and V8's heap spaces) to $MINKUBE_MEM_PROBE_DIR/<pid>.json. If the file
// <pid>.gc is there, it runs full garbage collections first (what is left is what the process holds live): two, with
// a pause between, as array buffers' memory is given back by a sweeper after the collection that found them dead.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const dir = process.env.MINKUBE_MEM_PROBE_DIR;
if (dir !== undefined) {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc');
  const pause = () => sleep(100);
  process.on('SIGUSR2', async () => {
    if (existsSync(join(dir, `${process.pid}.gc`))) {
      gc();
      await pause();
      gc();
      await pause();
    }
    const spaces = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }]));
    writeFileSync(join(dir, `${process.pid}.json`), JSON.stringify({ ...process.memoryUsage(), spaces }));
  });
}
