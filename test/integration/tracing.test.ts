import { randomBytes, randomUUID } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { SpanKind, context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startWorker, type RunningWorker } from '../../src/worker/worker.js';
import { request } from '../support/http.js';
import { OtlpReceiver, type ReceivedSpan } from '../support/otlp-receiver.js';
import {
  ROOT,
  createTestEnv,
  silentLogger,
  startTestApi,
  stopProcess,
  waitUntil,
  type TestEnv,
} from '../support/test-env.js';

let env: TestEnv;

beforeAll(async () => {
  env = await createTestEnv('tracing', { METRICS_PORT: '0' });
});

afterAll(async () => {
  await env?.destroy();
});

async function postTransactions(apiUrl: string, walletId: number, count: number, headers: Record<string, string> = {}) {
  const ids: string[] = [];
  for (let i = 0; i < count; i += 1) {
    const posted = await request(apiUrl, 'POST', `/wallets/${walletId}/transactions`, {
      json: { amount: 10 + i, fingerprint: `trace-${randomUUID()}` },
      headers,
    });
    expect(posted.status).toBe(202);
    ids.push(posted.body.id as string);
  }
  return ids;
}

async function waitUntilFinal(walletId: number, count: number) {
  await waitUntil('the transactions are applied', async () => {
    const final = await env.pool.oneFirst(sql.type(z.object({ count: z.number() }))`
      SELECT count(*)::int AS count FROM transactions WHERE wallet_id = ${walletId} AND status <> 'pending'
    `);
    return final === count;
  });
}

/**
 * API and worker in this process with an in-memory exporter. The context still crosses between
 * them only through Redis (job data) and Postgres (the transaction row): the worker's processor
 * runs in BullMQ's loop, not in the request's async context.
 */
describe('trace shape with an in-memory exporter', () => {
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  let api: Awaited<ReturnType<typeof startTestApi>>;
  let worker: RunningWorker;

  beforeAll(async () => {
    // What sdk-node sets up in production: async context, W3C propagation and the provider.
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    trace.setGlobalTracerProvider(provider);
    api = await startTestApi(env);
  });

  afterAll(async () => {
    await worker?.close();
    await api?.close();
    await provider.shutdown();
  });

  const spanId = (span: ReadableSpan) => span.spanContext().spanId;
  const traceId = (span: ReadableSpan) => span.spanContext().traceId;
  const parentId = (span: ReadableSpan) => span.parentSpanContext?.spanId;

  it('When transactions coalesce into one apply job, then every transaction trace reaches the worker and the apply span links to each request', async () => {
    const wallet = await request(api.url, 'POST', '/wallets', { json: { externalId: `trace-${randomUUID()}` } });
    const walletId = wallet.body.id as number;
    // No worker yet: the three wait, and one job applies them all.
    const ids = await postTransactions(api.url, walletId, 3);
    worker = await startWorker(env.config, silentLogger);
    await waitUntilFinal(walletId, 3);

    let spans: ReadableSpan[] = [];
    await waitUntil('the finalize spans are exported', () => {
      spans = exporter.getFinishedSpans();
      return Promise.resolve(spans.filter((span) => span.name === 'wallet.transaction.finalize').length === 3);
    });

    const reserves = spans.filter((span) => span.name === 'wallet.reserve');
    expect(reserves).toHaveLength(3);
    const applies = spans.filter((span) => span.name === 'wallet.apply' && span.attributes['wallet.id'] === walletId);
    expect(applies.length).toBeGreaterThanOrEqual(1);
    const linked = applies.flatMap((span) => span.links);

    for (const id of ids) {
      const reserve = reserves.find((span) => span.attributes['wallet.transaction.id'] === id)!;
      expect(reserve, id).toBeDefined();
      expect(reserve.attributes['wallet.id']).toBe(walletId);

      // The row carries the reserve span's context: the worker never saw the request otherwise.
      const stored = await env.pool.oneFirst(
        sql.type(z.object({ traceContext: z.string().nullable() }))`
          SELECT trace_context AS "traceContext" FROM transactions WHERE coalesce(id, transaction_id(wallet_id, seq)) = ${id}
        `,
      );
      expect(stored).toBe(`00-${traceId(reserve)}-${spanId(reserve)}-01`);

      // One trace per transaction: its finalize span is the reserve span's child, in the worker.
      const finalize = spans.find(
        (span) => span.name === 'wallet.transaction.finalize' && span.attributes['wallet.transaction.id'] === id,
      )!;
      expect(traceId(finalize)).toBe(traceId(reserve));
      expect(parentId(finalize)).toBe(spanId(reserve));
      expect(finalize.attributes).toMatchObject({ 'wallet.id': walletId, 'wallet.transaction.status': 'applied' });
      expect(applies.map(spanId)).toContain(finalize.links[0]?.context.spanId);

      // And the apply span links back to the request of every transaction it applied.
      expect(linked.map((link) => link.context.spanId)).toContain(spanId(reserve));
    }
    const coalesced = applies.find((span) => span.attributes['wallet.transactions.count'] === 3);
    expect(coalesced, 'one job applied all three').toBeDefined();
    expect(coalesced!.kind).toBe(SpanKind.CONSUMER);
    expect(coalesced!.attributes['wallet.transaction.ids']).toEqual(ids);
    expect(coalesced!.attributes['wallet.transactions.applied']).toBe(3);
    // Its parent is the request that enqueued the job (carried in the job data).
    expect(reserves.map(spanId)).toContain(parentId(coalesced!));
  });

  it("When a transfer completes, then its credit leg's apply, in the destination's job, is in the trace of the request that created the transfer and links to it", async () => {
    worker ??= await startWorker(env.config, silentLogger);
    const walletOf = async () =>
      (await request(api.url, 'POST', '/wallets', { json: { externalId: `trace-${randomUUID()}` } })).body.id as number;
    const from = await walletOf();
    const to = await walletOf();
    const deposit = await request(api.url, 'POST', `/wallets/${from}/transactions`, {
      json: { amount: 50, fingerprint: `trace-deposit-${randomUUID()}` },
      headers: { prefer: 'wait=10' },
    });
    expect(deposit.status).toBe(201);
    const made = await request(api.url, 'POST', '/transfers', {
      json: { from, to, amount: 20, fingerprint: `trace-transfer-${randomUUID()}` },
      headers: { prefer: 'wait=10' },
    });
    expect(made.status).toBe(201);
    const creditId = made.body.credit as string;

    let spans: ReadableSpan[] = [];
    const finalizeOf = (id: string) =>
      spans.find(
        (span) => span.name === 'wallet.transaction.finalize' && span.attributes['wallet.transaction.id'] === id,
      );
    await waitUntil(
      'the credit leg is finalized in a trace',
      () => {
        spans = exporter.getFinishedSpans();
        return Promise.resolve(finalizeOf(creditId) !== undefined);
      },
      10_000,
    );
    const transferSpan = spans.find(
      (span) => span.name === 'wallet.transfer' && span.attributes['wallet.transfer.id'] === made.body.id,
    )!;
    expect(transferSpan).toBeDefined();
    const credit = finalizeOf(creditId)!;
    expect(traceId(credit)).toBe(traceId(transferSpan));
    expect(credit.attributes).toMatchObject({ 'wallet.id': to, 'wallet.transaction.status': 'applied' });
    const debit = finalizeOf(made.body.debit as string)!;
    expect(traceId(debit)).toBe(traceId(transferSpan));
    // Both legs' finalize spans are children of the context the debit leg stored at reservation.
    expect(parentId(credit)).toBe(parentId(debit));
    // The destination's apply span links to the transfer's request.
    const destinationApplies = spans.filter(
      (span) => span.name === 'wallet.apply' && span.attributes['wallet.id'] === to,
    );
    expect(destinationApplies.flatMap((span) => span.links).map((link) => link.context.traceId)).toContain(
      traceId(transferSpan),
    );
  });
});

/** `wallet api|worker` as its own process with src/instrumentation.ts loaded first, as in production. */
function spawnInstrumented(role: 'api' | 'worker', extraEnv: Record<string, string>) {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--import', path.join(ROOT, 'src/instrumentation.ts'), path.join(ROOT, 'src/cli.ts'), role],
    { cwd: ROOT, env: { ...env.env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const lines: string[] = [];
  let partial = '';
  child.stdout.on('data', (chunk: Buffer) => {
    const parts = (partial + chunk.toString()).split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
  });
  let errors = '';
  child.stderr.on('data', (chunk: Buffer) => (errors = (errors + chunk.toString()).slice(-4000)));
  const ready = new Promise<number>((resolve, reject) => {
    const timer = setInterval(() => {
      const line = lines.find((text) => /"msg":"(api listening|worker started)"/.test(text));
      if (line) {
        clearInterval(timer);
        resolve((JSON.parse(line) as { port: number }).port);
      }
    }, 50);
    child.once('exit', (code) => {
      clearInterval(timer);
      reject(new Error(`${role} exited (${code}) before ready: ${errors} ${lines.slice(-5).join('\n')}`));
    });
  });
  ready.catch(() => undefined);
  return { child, ready, lines };
}

/** The production entry point, end to end: two processes export over OTLP to a receiver in this test. */
describe('traces across processes over OTLP', () => {
  const receiver = new OtlpReceiver();
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    await receiver.start();
  });

  afterAll(async () => {
    for (const child of children) await stopProcess(child);
    await receiver.stop();
  });

  it("When a traced client posts a transaction, then the API's HTTP and database spans and the worker's spans share its trace, and worker logs carry its trace id", async () => {
    const otel = {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '100',
      AUTH_DISABLED: 'true',
    };
    const api = spawnInstrumented('api', { ...otel, OTEL_SERVICE_NAME: 'wallet-api', LOG_LEVEL: 'info' });
    const worker = spawnInstrumented('worker', { ...otel, OTEL_SERVICE_NAME: 'wallet-worker', LOG_LEVEL: 'debug' });
    children.push(api.child, worker.child);
    const apiUrl = `http://127.0.0.1:${await api.ready}`;
    await worker.ready;

    const wallet = await request(apiUrl, 'POST', '/wallets', { json: { externalId: `otlp-${randomUUID()}` } });
    expect(wallet.status).toBe(201);
    const traceId = randomBytes(16).toString('hex');
    const clientSpanId = randomBytes(8).toString('hex');
    const [transactionId] = await postTransactions(apiUrl, wallet.body.id as number, 1, {
      traceparent: `00-${traceId}-${clientSpanId}-01`,
    });

    let trace: ReceivedSpan[] = [];
    await waitUntil('the worker exported the finalize span', () => {
      trace = receiver.spans.filter((span) => span.traceId === traceId);
      return Promise.resolve(trace.some((span) => span.name === 'wallet.transaction.finalize'));
    });

    const server = trace.find(
      (span) => span.service === 'wallet-api' && span.kind === 2 && span.parentSpanId === clientSpanId,
    );
    expect(server, 'the HTTP server span continues the client trace').toBeDefined();
    const reserve = trace.find((span) => span.name === 'wallet.reserve')!;
    expect(reserve).toMatchObject({
      service: 'wallet-api',
      attributes: { 'wallet.id': wallet.body.id, 'wallet.transaction.id': transactionId },
    });
    expect(
      trace.some((span) => span.service === 'wallet-api' && span.attributes['db.system.name'] === 'postgresql'),
      'pg is instrumented',
    ).toBe(true);
    expect(trace.some((span) => span.service === 'wallet-api' && span.attributes['db.system.name'] === 'redis')).toBe(
      true,
    );

    const finalize = trace.find((span) => span.name === 'wallet.transaction.finalize')!;
    expect(finalize).toMatchObject({ service: 'wallet-worker', parentSpanId: reserve.spanId });
    const apply = receiver.spans.find(
      (span) => span.name === 'wallet.apply' && span.spanId === finalize.links[0]?.spanId,
    );
    expect(apply, 'the finalize span links to the apply span').toBeDefined();
    expect(apply!.links).toContainEqual(expect.objectContaining({ traceId, spanId: reserve.spanId }));
    expect(apply!.attributes).toMatchObject({ 'wallet.id': wallet.body.id, 'wallet.transaction.ids': [transactionId] });

    const logged = worker.lines
      .map((line) => JSON.parse(line) as { msg: string; trace_id?: string; span_id?: string })
      .find((line) => line.msg === 'applied pending transactions' && line.trace_id === apply!.traceId);
    expect(logged, 'the worker log line inside the apply span carries its trace id').toMatchObject({
      span_id: apply!.spanId,
    });
  });
});
