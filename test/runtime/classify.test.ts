// classifyRuntimeError over the error shapes dockerode, node:net and child_process really produce (captured from
// Docker 20.10 and Node 20), and the shared spec and log helpers.
import { describe, expect, it } from 'vitest';
import { classifyRuntimeError } from '../../src/runtime/classify.js';
import { tailBytes, tailLines, validateRunSpec } from '../../src/runtime/spec.js';
import { RuntimeFailure, type RunSpec } from '../../src/runtime/types.js';

/** What docker-modem rejects with for an HTTP error: "(HTTP code N) reason - message", statusCode, json. */
function dockerError(statusCode: number, reason: string | undefined, message: string): Error {
  const err = new Error(`(HTTP code ${statusCode}) ${reason ?? 'unexpected'} - ${message} `) as Error & Record<string, unknown>;
  err.reason = reason;
  err.statusCode = statusCode;
  err.json = { message };
  return err;
}

function systemError(code: string, syscall: string, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(`${syscall} ${code}`), { code, syscall, errno: -1, ...extra });
}

const oci = 'failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: ';

const cases: Array<[string, unknown, string, 'transient' | 'permanent']> = [
  ['404 no such image (image inspect)', dockerError(404, 'no such image', 'no such image: nope:1: No such image: nope:1'), 'image-not-found', 'permanent'],
  ['404 No such image (create)', dockerError(404, 'no such container', 'No such image: nope:1'), 'image-not-found', 'permanent'],
  ['404 pull access denied', dockerError(404, undefined, "pull access denied for nope, repository does not exist or may require 'docker login'"), 'image-not-found', 'permanent'],
  ['404 no such container', dockerError(404, 'no such container', 'No such container: abc'), 'container-not-found', 'permanent'],
  ['400 executable not in $PATH (start)', dockerError(400, undefined, `${oci}exec: "nope": executable file not found in $PATH: unknown`), 'command-not-found', 'permanent'],
  ['500 executable not in $PATH (older daemons)', dockerError(500, 'server error', `${oci}exec: "nope": executable file not found in $PATH: unknown`), 'command-not-found', 'permanent'],
  ['400 absolute path missing', dockerError(400, undefined, `${oci}exec: "/nope": stat /nope: no such file or directory: unknown`), 'command-not-found', 'permanent'],
  ['400 not executable', dockerError(400, undefined, `${oci}exec: "/etc/passwd": permission denied: unknown`), 'command-not-found', 'permanent'],
  ['400 bad parameter', dockerError(400, 'bad parameter', 'Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available'), 'invalid-spec', 'permanent'],
  ['400 host out of memory at start', dockerError(400, undefined, `${oci}fork/exec /proc/self/exe: cannot allocate memory: unknown`), 'daemon-error', 'transient'],
  ['409 name in use', dockerError(409, undefined, 'Conflict. The container name "/x" is already in use by container "abc".'), 'name-conflict', 'permanent'],
  ['409 removal in progress', dockerError(409, undefined, 'removal of container abc is already in progress'), 'daemon-error', 'transient'],
  ['500 no space left (create)', dockerError(500, 'server error', 'mkdir /var/lib/docker/vfs/dir/abc: no space left on device'), 'out-of-space', 'transient'],
  ['500 no space left (pull)', new Error('write /var/lib/docker/tmp/GetImageBlob1: no space left on device'), 'out-of-space', 'transient'],
  ['ENOSPC system error', systemError('ENOSPC', 'write'), 'out-of-space', 'transient'],
  ['500 other daemon failure', dockerError(500, 'server error', 'driver failed programming external connectivity'), 'daemon-error', 'transient'],
  ['503 daemon busy', dockerError(503, undefined, 'service unavailable'), 'daemon-error', 'transient'],
  ['ECONNREFUSED on a tcp DOCKER_HOST', systemError('ECONNREFUSED', 'connect', { address: '127.0.0.1', port: 2375 }), 'daemon-unreachable', 'transient'],
  ['ENOENT on the socket', systemError('ENOENT', 'connect', { address: '/var/run/docker.sock' }), 'daemon-unreachable', 'transient'],
  ['EACCES on the socket', systemError('EACCES', 'connect', { address: '/var/run/docker.sock' }), 'daemon-unreachable', 'transient'],
  ['ECONNRESET (daemon restarted mid-call)', systemError('ECONNRESET', 'read'), 'daemon-unreachable', 'transient'],
  ['socket hang up', new Error('socket hang up'), 'daemon-unreachable', 'transient'],
  ['AbortError from a deadline', Object.assign(new Error('The operation was aborted'), { name: 'AbortError', code: 'ABORT_ERR' }), 'timeout', 'transient'],
  ['ETIMEDOUT', systemError('ETIMEDOUT', 'connect'), 'timeout', 'transient'],
  ['spawn ENOENT', systemError('ENOENT', 'spawn nope', { path: 'nope' }), 'command-not-found', 'permanent'],
  ['spawn EACCES', systemError('EACCES', 'spawn /etc/passwd', { path: '/etc/passwd' }), 'command-not-found', 'permanent'],
  ['a request path Node will not send (an image with a space)', Object.assign(new TypeError('Request path contains unescaped characters'), { code: 'ERR_UNESCAPED_CHARACTERS' }), 'invalid-spec', 'permanent'],
  ['something else', new Error('the moon is in the wrong phase'), 'unknown', 'transient'],
  ['a thrown string', 'boom', 'unknown', 'transient'],
];

describe('classifyRuntimeError', () => {
  it.each(cases)('%s', (_label, err, reason, failureClass) => {
    const failure = classifyRuntimeError(err);
    expect({ reason: failure.reason, failureClass: failure.failureClass }).toEqual({ reason, failureClass });
    expect(failure.cause).toBe(err);
    expect(failure.code).toBe('RUNTIME_ERROR');
  });

  it('uses the daemon’s own words as the message', () => {
    const failure = classifyRuntimeError(dockerError(404, 'no such image', 'No such image: nope:1'));
    expect(failure.message).toBe('No such image: nope:1');
  });

  it('passes a RuntimeFailure through unchanged, and the error body carries reason and class', () => {
    const original = new RuntimeFailure('timeout', 'slow');
    expect(classifyRuntimeError(original)).toBe(original);
    expect(original.toBody()).toEqual({
      error: { code: 'RUNTIME_ERROR', message: 'slow', details: { reason: 'timeout', failureClass: 'transient' } },
    });
  });
});

describe('validateRunSpec', () => {
  const good: RunSpec = { name: 'n', image: 'i', command: ['true'], labels: { a: 'b' } };
  const problems: Array<[string, RunSpec]> = [
    ['empty name', { ...good, name: '' }],
    ['empty image', { ...good, image: '' }],
    ['empty command', { ...good, command: [] }],
    ['env name with =', { ...good, env: { 'A=B': 'c' } }],
    ['zero cpus', { ...good, resources: { cpus: 0 } }],
    ['NaN memory', { ...good, resources: { memoryMb: Number.NaN } }],
  ];

  it.each(problems)('refuses %s as a permanent invalid-spec', (_label, spec) => {
    let caught: unknown;
    try {
      validateRunSpec(spec, { commandRequired: false });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(RuntimeFailure);
    expect((caught as RuntimeFailure).failureClass).toBe('permanent');
  });

  it('requires a command only where the runtime needs one', () => {
    const { command: _command, ...noCommand } = good;
    expect(() => validateRunSpec(noCommand, { commandRequired: false })).not.toThrow();
    expect(() => validateRunSpec(noCommand, { commandRequired: true })).toThrow(RuntimeFailure);
  });
});

describe('log bounding', () => {
  it('tailBytes keeps the newest bytes, cut at a line start', () => {
    expect(tailBytes(Buffer.from('one\ntwo\nthree\n'), 100)).toBe('one\ntwo\nthree\n');
    expect(tailBytes(Buffer.from('one\ntwo\nthree\n'), 9)).toBe('three\n');
  });

  it('tailBytes keeps the end of a line longer than a quarter of its budget rather than dropping it whole', () => {
    expect(tailBytes(Buffer.from(`${'x'.repeat(100)}\nend\n`), 20)).toBe(`${'x'.repeat(15)}\nend\n`);
  });

  it('tailBytes never splits a character when there is no line to cut at', () => {
    expect(tailBytes(Buffer.from('ééé'), 3)).toBe('é');
  });

  it('tailLines returns the last n lines', () => {
    expect(tailLines('a\nb\nc\n', 2)).toBe('b\nc\n');
    expect(tailLines('a\nb\nc', 2)).toBe('b\nc');
    expect(tailLines('a\nb\n', 5)).toBe('a\nb\n');
    expect(tailLines('a\nb\n', 0)).toBe('');
  });
});
