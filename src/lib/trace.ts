// W3C trace context (traceparent) and spans on the OpenTelemetry API. Without an SDK (OTEL_EXPORTER_OTLP_ENDPOINT
// unset: see daemon/otel.ts) the API's tracer is a no-op: a span started under a traceparent carries that same
// context on (so the trace id still reaches the proposal, the worker, the container and the logs), and nothing is
// started at all without one.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Span, type SpanContext } from '@opentelemetry/api';

export { SpanKind };

// version-traceid-parentid-flags; ids lower-case hex, not all zeros (checked below); version ff is invalid.
const traceparentPattern = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const zeroTraceId = '0'.repeat(32);
const zeroSpanId = '0'.repeat(16);

/** The span context a traceparent header names, or null when it is not one (then it is ignored, as W3C says). */
export function parseTraceparent(header: string | undefined): SpanContext | null {
  if (header === undefined || header.length < 55 || header.length > 512) return null;
  const m = traceparentPattern.exec(header);
  if (m === null) return null;
  const [, version, traceId, spanId, flags, rest] = m as unknown as [string, string, string, string, string, string | undefined];
  // Version 00 has exactly these four fields; a later version may add more after them.
  if (version === 'ff' || (version === '00' && rest !== undefined)) return null;
  if (traceId === zeroTraceId || spanId === zeroSpanId) return null;
  return { traceId, spanId, traceFlags: parseInt(flags, 16) & 1, isRemote: true };
}

export function formatTraceparent(sc: SpanContext): string {
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

/** The trace id of a traceparent this code wrote or accepted (for log lines). */
export function traceIdOf(traceparent: string): string {
  return traceparent.slice(3, 35);
}

/** A well-formed traceparent (what a command envelope and an assignment may carry). */
export function isTraceparent(s: unknown): s is string {
  return typeof s === 'string' && parseTraceparent(s) !== null;
}

let exporting = false;

/** Set by the daemon once an SDK exports spans: only then does a request without a traceparent start a trace. */
export function setTracingExported(on: boolean): void {
  exporting = on;
}

export function tracingExported(): boolean {
  return exporting;
}

const tracer = trace.getTracer('minkube');

export interface StartedSpan {
  readonly span: Span;
  /** The new span's context as a traceparent, to send on (the parent's own when the tracer records nothing). */
  readonly traceparent: string;
  readonly traceId: string;
}

/**
 * Starts a span under `parent` (a traceparent), or a new trace when spans are exported; null when there is nothing to
 * trace (no parent and no exporter), which costs nothing.
 */
export function startSpan(name: string, parent: string | SpanContext | undefined | null, attributes: Attributes = {}, kind: SpanKind = SpanKind.INTERNAL): StartedSpan | null {
  const parentContext = typeof parent === 'string' ? parseTraceparent(parent) : (parent ?? null);
  if (parentContext === null && !exporting) return null;
  const ctx = parentContext === null ? ROOT_CONTEXT : trace.setSpanContext(ROOT_CONTEXT, parentContext);
  const span = tracer.startSpan(name, { kind, attributes }, ctx);
  const sc = span.spanContext();
  if (sc.traceId === zeroTraceId) return null;
  return { span, traceparent: formatTraceparent(sc), traceId: sc.traceId };
}

/** A span for something that already happened (an entry applied, a task seen running): started and ended at once. */
export function markSpan(name: string, parent: string, attributes: Attributes = {}): string | null {
  const s = startSpan(name, parent, attributes);
  s?.span.end();
  return s?.traceId ?? null;
}

export function endSpan(s: StartedSpan | null, error?: unknown): void {
  if (s === null) return;
  if (error !== undefined) s.span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : typeof error === 'string' ? error : 'failed' });
  s.span.end();
}
