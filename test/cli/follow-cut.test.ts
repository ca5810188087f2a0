// A followed log cut part-way says why when the manager would: a revoked or expired token (401/403 to the next
// request) is shown instead of the cut; a cut for any other reason stays UNREACHABLE.
import { describe, expect, it } from 'vitest';
import { whyCut } from '../../src/cli/tasks.js';
import { MinkubeError } from '../../src/lib/errors.js';
import type { TaskRecord } from '../../src/contracts/task-model.js';

const cut = new MinkubeError('UNREACHABLE', 'the answer of GET https://m1/v1/tasks/t1/logs was cut off part-way (other side closed)');
const asking = (answer: () => Promise<TaskRecord>) => ({ get: answer });

describe('whyCut', () => {
  it('shows the 401 the next request gets, naming the cut', async () => {
    const why = await whyCut(asking(() => Promise.reject(new MinkubeError('UNAUTHENTICATED', 'unknown, revoked or expired token'))), 't1', cut);
    expect(why).toBeInstanceOf(MinkubeError);
    expect((why as MinkubeError).code).toBe('UNAUTHENTICATED');
    expect((why as MinkubeError).message).toBe('the followed output was cut: unknown, revoked or expired token');
  });

  it('keeps the cut when the next request passes or fails otherwise, and any other error as it is', async () => {
    expect(await whyCut(asking(() => Promise.resolve({} as TaskRecord)), 't1', cut)).toBe(cut);
    expect(await whyCut(asking(() => Promise.reject(new MinkubeError('UNREACHABLE', 'gone'))), 't1', cut)).toBe(cut);
    const other = new MinkubeError('TASK_NOT_FOUND', 'no task t1');
    expect(await whyCut(asking(() => Promise.reject(new Error('not asked'))), 't1', other)).toBe(other);
  });
});
