import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { Writable } from 'node:stream';
import { endpointProblem, startTracing } from '../../src/daemon/otel.js';

describe('OTLP export settings', () => {
  it('takes http and https URLs, and says what is wrong with anything else', () => {
    expect(endpointProblem('http://127.0.0.1:4318')).toBeNull();
    expect(endpointProblem('https://collector.example:4318/v1/traces')).toBeNull();
    expect(endpointProblem('not a url')).toMatch(/^OTEL_EXPORTER_OTLP_ENDPOINT is not a URL \("not a url"\); give one such as http:\/\/127\.0\.0\.1:4318$/);
    expect(endpointProblem('grpc://127.0.0.1:4317')).toMatch(/is not an http or https URL \("grpc:\/\/127\.0\.0\.1:4317"\)/);
  });

  it('a malformed endpoint leaves tracing off with a warn line, instead of dropping every span in silence', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, new Writable({ write: (chunk: Buffer, _e, cb) => { lines.push(chunk.toString()); cb(); } }));
    const saved = process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = 'not a url';
    try {
      const tracing = await startTracing('minkube-manager', 'm1', logger);
      await tracing.shutdown();
    } finally {
      if (saved === undefined) delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
      else process.env.OTEL_EXPORTER_OTLP_ENDPOINT = saved;
    }
    const warned = lines.map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level === 40);
    expect(warned.map((l) => l.msg)).toEqual(['OpenTelemetry export is off: OTEL_EXPORTER_OTLP_ENDPOINT is not a URL ("not a url"); give one such as http://127.0.0.1:4318']);
    expect(lines.join('')).not.toContain('exporting traces');
  });
});
