import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  context,
  isSpanContextValid,
  propagation,
  trace,
  type Link,
  type Span,
  type SpanContext,
} from '@opentelemetry/api';

/**
 * Tracing helpers. The OpenTelemetry SDK is started by src/instrumentation.ts (loaded with
 * `node --import` before the app) only when an exporter is configured; without it every call here
 * goes to the no-op API and costs next to nothing. See docs/operations.md, "Traces".
 */
export const tracer = trace.getTracer('wallet-service');

/** Most transaction ids put on one apply span as an attribute; the count is always there. */
export const MAX_ID_ATTRIBUTES = 20;
/** Most links on one apply span (the SDK's default span link limit). */
export const MAX_LINKS = 128;

/** The active span's context as a W3C `traceparent`, or null when nothing is traced. */
export function currentTraceparent(): string | null {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent ?? null;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** Parses a W3C traceparent (as stored on a transaction row) without needing a propagator. */
export function spanContextFromTraceparent(traceparent: string | null | undefined): SpanContext | null {
  const match = traceparent ? TRACEPARENT.exec(traceparent) : null;
  if (!match) return null;
  const spanContext: SpanContext = {
    traceId: match[1]!,
    spanId: match[2]!,
    traceFlags: Number.parseInt(match[3]!, 16) & TraceFlags.SAMPLED,
    isRemote: true,
  };
  return isSpanContextValid(spanContext) ? spanContext : null;
}

function contextFromTraceparent(traceparent: string | null | undefined) {
  const spanContext = spanContextFromTraceparent(traceparent);
  return spanContext ? trace.setSpanContext(ROOT_CONTEXT, spanContext) : ROOT_CONTEXT;
}

/** trace_id and span_id of the active span, for log lines (pino mixin). */
export function traceLogFields(): { trace_id?: string; span_id?: string } {
  const spanContext = trace.getActiveSpan()?.spanContext();
  if (!spanContext || !isSpanContextValid(spanContext)) return {};
  return { trace_id: spanContext.traceId, span_id: spanContext.spanId };
}

/** Runs `work` in a span that records a thrown error; the span ends when `work` settles. */
export async function inSpan<T>(
  name: string,
  options: { kind?: SpanKind; attributes?: Record<string, string | number | boolean>; parent?: string | null },
  work: (span: Span) => Promise<T>,
): Promise<T> {
  const parent = options.parent === undefined ? context.active() : contextFromTraceparent(options.parent);
  return tracer.startActiveSpan(
    name,
    { kind: options.kind ?? SpanKind.INTERNAL, attributes: options.attributes ?? {} },
    parent,
    async (span) => {
      try {
        return await work(span);
      } catch (error) {
        span.recordException(error as Error);
        span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
        throw error;
      } finally {
        span.end();
      }
    },
  );
}

/** What the apply tracing needs to know about each transaction a job finalized. */
export interface FinalizedForTracing {
  id: string;
  status: string;
  reason: string | null;
  refno: number | null;
  traceContext: string | null;
  batchStartedAt: number;
  committedAt: number;
}

/**
 * Connects an apply job to the requests that caused it. One job applies every pending transaction
 * of its wallet (coalescing), and BullMQ deduplication keeps only one add's job data, so the job's
 * own parent is just one of those requests. Therefore:
 * - the apply span (the caller's) gets a link to each transaction's request context (first
 *   MAX_LINKS) and the first MAX_ID_ATTRIBUTES transaction ids;
 * - each transaction's own trace gets a `wallet.transaction.finalize` span, child of the context
 *   stored on its row at reservation, covering the batch that decided it and linking back to the
 *   apply span: one trace per transaction, from the HTTP request to the commit in the worker.
 */
export function traceFinalized(applySpan: Span, walletId: number, finalized: readonly FinalizedForTracing[]): void {
  applySpan.setAttribute('wallet.transactions.count', finalized.length);
  if (finalized.length > 0) {
    applySpan.setAttribute(
      'wallet.transaction.ids',
      finalized.slice(0, MAX_ID_ATTRIBUTES).map((transaction) => transaction.id),
    );
  }
  const links: Link[] = [];
  for (const transaction of applySpan.isRecording() ? finalized : []) {
    if (links.length >= MAX_LINKS) break;
    const requestContext = spanContextFromTraceparent(transaction.traceContext);
    if (requestContext)
      links.push({ context: requestContext, attributes: { 'wallet.transaction.id': transaction.id } });
  }
  if (links.length > 0) applySpan.addLinks(links);

  // Each transaction's own (parent-based) sampling decision holds, whether or not the job's was sampled.
  const applyContext = applySpan.spanContext();
  for (const transaction of finalized) {
    if (!transaction.traceContext) continue;
    const span = tracer.startSpan(
      'wallet.transaction.finalize',
      {
        kind: SpanKind.INTERNAL,
        startTime: transaction.batchStartedAt,
        links: [{ context: applyContext }],
        attributes: {
          'wallet.id': walletId,
          'wallet.transaction.id': transaction.id,
          'wallet.transaction.status': transaction.status,
          ...(transaction.reason === null ? {} : { 'wallet.transaction.reason': transaction.reason }),
          ...(transaction.refno === null ? {} : { 'wallet.transaction.refno': transaction.refno }),
        },
      },
      contextFromTraceparent(transaction.traceContext),
    );
    span.end(transaction.committedAt);
  }
}

export { SpanKind };
export type { Span };

/** Set by src/instrumentation.ts when it started the SDK: flushes and stops it. */
const SHUTDOWN_HOOK = Symbol.for('wallet-service.otel.shutdown');

export function registerTracingShutdown(shutdown: () => Promise<void>): void {
  (globalThis as Record<symbol, unknown>)[SHUTDOWN_HOOK] = shutdown;
}

/** Flushes spans not yet exported (bounded wait); a no-op when tracing is off. */
export async function shutdownTracing(timeoutMs = 5000): Promise<void> {
  const shutdown = (globalThis as Record<symbol, unknown>)[SHUTDOWN_HOOK] as (() => Promise<void>) | undefined;
  if (!shutdown) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    shutdown().catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
}
