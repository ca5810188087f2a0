// The build's route serializers (scripts/serializers.mjs) are one self-contained file: a node loads it through
// bin/minkube.js's cached loader, and nothing it needs (fast-json-stringify's serializer and validator, Ajv) is
// looked up in node_modules file by file with a route's first answer.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../support/cluster.js';

const file = join(repoRoot, 'dist', 'api', 'serializers.generated.cjs');

describe('the build-time route serializers', () => {
  it('load and run without requiring any other file', () => {
    expect(existsSync(file), `${file} is missing: npm run build`).toBe(true);
    const script = `
      const Module = require('node:module');
      const loaded = [];
      const load = Module._load;
      Module._load = function (request, ...rest) { loaded.push(request); return load.call(this, request, ...rest); };
      const serializers = require(${JSON.stringify(file)});
      for (const make of serializers.values()) make();
      const cluster = [...serializers].find(([key]) => key.startsWith('["GET","/v1/cluster","200"'));
      const out = cluster[1]()({ id: 'm1', role: 'leader', term: 2, leaderId: null, commitIndex: 3, appliedIndex: 3, members: [], firstIndex: 1, lastIndex: 3, snapshotIndex: 0, storage: 'ok', storageReason: null, storageTargetIndex: null, noQuorumReason: null, backup: null });
      console.log(JSON.stringify({ count: serializers.size, loaded, out: JSON.parse(out) }));`;
    const r = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })) as { count: number; loaded: string[]; out: Record<string, unknown> };
    expect(r.count).toBeGreaterThan(20);
    expect(r.loaded).toEqual([file]);
    expect(r.out).toMatchObject({ id: 'm1', role: 'leader', leaderId: null, backup: null });
  });
});
