// The loggers' err serializer: a cause whose words the message already holds is not appended again.
import { describe, expect, it } from 'vitest';
import { classifyRuntimeError } from '../../src/runtime/classify.js';
import { RuntimeFailure } from '../../src/runtime/types.js';
import { messageWithNewCauses, serializeError } from '../../src/lib/log-errors.js';

describe('serializeError', () => {
  it('says a wrapped cause once: "docker list: connect ECONNREFUSED ..." not twice', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED /tmp/d.sock'), { code: 'ECONNREFUSED' });
    const failure = new RuntimeFailure(classifyRuntimeError(refused).reason, `docker list: ${refused.message}`, { cause: refused });
    expect(serializeError(failure)).toMatchObject({ message: 'docker list: connect ECONNREFUSED /tmp/d.sock', type: 'RuntimeFailure' });
  });

  it('still appends a cause with words of its own', () => {
    const err = new Error('could not open the store', { cause: new Error('EACCES: permission denied') });
    expect(messageWithNewCauses(err)).toBe('could not open the store: EACCES: permission denied');
  });
});
