// OpenTelemetry export, only when OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set: the
// SDK and the OTLP/HTTP exporter (JSON) are imported then, not before, so a node without them pays nothing. One
// provider per process: a second node in the same process (tests) shares the first one's.
import type { Logger } from 'pino';
import { setTracingExported } from '../lib/trace.js';

export interface Tracing {
  /** Exports what is buffered, then stops exporting. */
  shutdown(): Promise<void>;
}

const none: Tracing = { shutdown: async () => undefined };
let started: Promise<Tracing> | null = null;

export function otlpEndpoint(env: NodeJS.ProcessEnv = process.env): string | null {
  const e = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT;
  return e === undefined || e === '' ? null : e;
}

/** Why the OTLP endpoint cannot be exported to (not an http or https URL), or null. */
export function endpointProblem(endpoint: string): string | null {
  const which = process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT === endpoint ? 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' : 'OTEL_EXPORTER_OTLP_ENDPOINT';
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return `${which} is not a URL (${JSON.stringify(endpoint)}); give one such as http://127.0.0.1:4318`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `${which} is not an http or https URL (${JSON.stringify(endpoint)}): spans go over OTLP/HTTP`;
  return null;
}

/** Starts exporting spans when the environment asks for it; `service` is the resource's service.name. */
export function startTracing(service: 'minkube-manager' | 'minkube-worker', nodeId: string, logger: Logger): Promise<Tracing> {
  const endpoint = otlpEndpoint();
  if (endpoint === null) return Promise.resolve(none);
  const problem = endpointProblem(endpoint);
  if (problem !== null) {
    // The exporter would take it, drop every span and say nothing: say it once, and leave tracing off.
    logger.warn({ endpoint }, `OpenTelemetry export is off: ${problem}`);
    return Promise.resolve(none);
  }
  started ??= load(service, nodeId, endpoint, logger).catch((err: unknown) => {
    logger.warn({ err }, 'OpenTelemetry export could not start; tracing stays off');
    return none;
  });
  return started;
}

async function load(service: string, nodeId: string, endpoint: string, logger: Logger): Promise<Tracing> {
  const [api, sdk, otlp, resources] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  // The exporter reads the endpoint variables itself (and appends /v1/traces to the general one); JSON over HTTP.
  const exporter = new otlp.OTLPTraceExporter();
  const delayMs = Number(process.env.OTEL_BSP_SCHEDULE_DELAY ?? 5000);
  const provider = new sdk.TracerProvider({
    resource: resources.resourceFromAttributes({ 'service.name': service, 'service.instance.id': nodeId }),
    spanProcessors: [new sdk.BatchSpanProcessor({ exporter, scheduledDelayMillis: Number.isFinite(delayMs) && delayMs > 0 ? delayMs : 5000 })],
  });
  // Export failures (a collector down, refusing) are otherwise silent: a warn line, at most one a minute.
  let lastWarnMs = -Infinity;
  const warn = (...args: unknown[]): void => {
    const nowMs = Date.now();
    if (nowMs - lastWarnMs < 60_000) return;
    lastWarnMs = nowMs;
    logger.warn({ endpoint, detail: args.map((a) => (a instanceof Error ? a.message : String(a))).join(' ').slice(0, 500) }, 'OpenTelemetry export failed (said at most once a minute)');
  };
  api.diag.setLogger({ error: warn, warn, info: () => undefined, debug: () => undefined, verbose: () => undefined }, api.DiagLogLevel.WARN);
  api.trace.setGlobalTracerProvider(provider);
  setTracingExported(true);
  logger.info({ endpoint, service }, 'exporting traces (OTLP/HTTP)');
  return {
    shutdown: async () => {
      setTracingExported(false);
      await provider.shutdown();
    },
  };
}
