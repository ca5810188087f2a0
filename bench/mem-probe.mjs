// Loaded into a benchmark's managers with `node --import bench/mem-probe.mjs`: on SIGUSR2 the process writes its
// memory breakdown (process.memoryUsage() and V8's heap spaces) to $MINKUBE_MEM_PROBE_DIR/<pid>.json.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getHeapSpaceStatistics } from 'node:v8';

const dir = process.env.MINKUBE_MEM_PROBE_DIR;
if (dir !== undefined) {
  process.on('SIGUSR2', () => {
    const spaces = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }]));
    writeFileSync(join(dir, `${process.pid}.json`), JSON.stringify({ ...process.memoryUsage(), spaces }));
  });
}
