import { randomUUID } from 'node:crypto';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { z } from 'zod';
import { APPLY_QUEUE_NAME, createApplyQueue } from '../../src/shared/infra/queue.js';
import { request } from '../support/http.js';
import {
  createTestEnv,
  spawnWorker,
  startTestApi,
  stopProcess,
  waitUntil,
  type ServiceProcess,
  type TestEnv,
} from '../support/test-env.js';
import { reserveBehindTheQueue } from '../support/stranded.js';
import { parseMetrics, sampleValue, type MetricSamples } from '../support/prometheus-text.js';

let env: TestEnv;
let api: Awaited<ReturnType<typeof startTestApi>>;
let worker: ServiceProcess | undefined;

/** Every metric the issue asks for, by the name operators query. */
const SERVICE_METRICS = [
  'wallet_http_requests_total',
  'wallet_http_request_duration_seconds',
  'wallet_transactions_reserved_total',
  'wallet_transactions_applied_total',
  'wallet_transactions_rejected_total',
  'wallet_transactions_voided_total',
  'wallet_transfers_total',
  'wallet_transaction_end_to_end_seconds',
  'wallet_apply_batch_size',
  'wallet_apply_conflict_retries_total',
  'wallet_apply_job_duration_seconds',
  'wallet_apply_job_failures_total',
  'wallet_queue_jobs',
  'wallet_outbox_backlog_events',
  'wallet_outbox_oldest_unpublished_age_seconds',
  'wallet_db_pool_connections',
  'wallet_db_pool_max_connections',
  'wallet_sweeper_reenqueued_total',
  'wallet_sweeper_errors_total',
];

async function scrape(baseUrl: string): Promise<MetricSamples> {
  const response = await fetch(`${baseUrl}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseMetrics(await response.text());
}

beforeAll(async () => {
  env = await createTestEnv('metrics', { METRICS_PORT: '0' });
  api = await startTestApi(env);
});

afterAll(async () => {
  if (worker) await stopProcess(worker);
  await api?.close();
  await env?.destroy();
});

describe('Prometheus metrics', () => {
  it('When the API is scraped, then it serves default Node metrics and every service metric, with HELP and TYPE', async () => {
    const response = await fetch(`${api.url}/metrics`);
    const text = await response.text();
    for (const name of [
      'process_cpu_user_seconds_total',
      'nodejs_eventloop_lag_seconds',
      'nodejs_heap_size_used_bytes',
    ]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    for (const name of SERVICE_METRICS) {
      expect(text, name).toContain(`# HELP ${name} `);
      expect(text, name).toContain(`# TYPE ${name} `);
    }
  });

  it('When requests are answered, then they are counted and timed by route template, method and status, never by raw URL', async () => {
    const wallet = await request(api.url, 'POST', '/wallets', { json: { externalId: `metrics-${randomUUID()}` } });
    expect(wallet.status).toBe(201);
    const fingerprint = `fp-${randomUUID()}`;
    expect(
      (await request(api.url, 'POST', `/wallets/${wallet.body.id}/transactions`, { json: { amount: 5, fingerprint } }))
        .status,
    ).toBe(202);
    expect(
      (await request(api.url, 'POST', `/wallets/${wallet.body.id}/transactions`, { json: { amount: 5, fingerprint } }))
        .status,
    ).toBe(409);
    expect((await request(api.url, 'GET', `/wallets/${wallet.body.id}`)).status).toBe(200);
    expect((await request(api.url, 'GET', `/no/such/route/${randomUUID()}`)).status).toBe(404);

    const text = await (await fetch(`${api.url}/metrics`)).text();
    const samples = parseMetrics(text);
    const posted = { method: 'POST', route: '/wallets/:id/transactions' };
    expect(sampleValue(samples, 'wallet_http_requests_total', { ...posted, status: '202' })).toBe(1);
    expect(sampleValue(samples, 'wallet_http_requests_total', { ...posted, status: '409' })).toBe(1);
    expect(
      sampleValue(samples, 'wallet_http_requests_total', { method: 'GET', route: '/wallets/:id', status: '200' }),
    ).toBe(1);
    expect(
      sampleValue(samples, 'wallet_http_requests_total', { method: 'GET', route: '(unmatched)', status: '404' }),
    ).toBe(1);
    expect(sampleValue(samples, 'wallet_http_request_duration_seconds_count', { ...posted, status: '202' })).toBe(1);
    expect(
      sampleValue(samples, 'wallet_http_request_duration_seconds_bucket', { ...posted, status: '202', le: '+Inf' }),
    ).toBe(1);
    expect(sampleValue(samples, 'wallet_transactions_reserved_total')).toBe(1);

    // Low cardinality: no wallet id, transaction path or fingerprint ever becomes a label value.
    expect(text).not.toContain(fingerprint);
    expect(text).not.toMatch(/route="[^"]*\/wallets\/\d/);
    expect(text).not.toContain('/no/such/route');
  });

  it('When jobs wait in the queue, then the depth gauge reports them per queue and state', async () => {
    const connection = new Redis(env.config.REDIS_URL, { maxRetriesPerRequest: null });
    const queue = createApplyQueue(connection, env.config.QUEUE_PREFIX);
    try {
      // Delayed by an hour for a wallet that does not exist: nothing takes it during the test.
      const job = await queue.shards[0]!.add('apply', { walletId: 999_999_999 }, { delay: 3_600_000 });
      const samples = await scrape(api.url);
      expect(sampleValue(samples, 'wallet_queue_jobs', { queue: APPLY_QUEUE_NAME, state: 'delayed' })).toBe(1);
      for (const state of ['waiting', 'active', 'failed']) {
        expect(sampleValue(samples, 'wallet_queue_jobs', { queue: APPLY_QUEUE_NAME, state })).toBeTypeOf('number');
      }
      await job.remove();
    } finally {
      await queue.close();
      connection.disconnect();
    }
  });

  it('When outbox events wait unpublished, then the backlog and the age of the oldest are reported', async () => {
    const wallet = await request(api.url, 'POST', '/wallets', { json: { externalId: `outbox-${randomUUID()}` } });
    // No worker (and so no relay) runs yet in this file: the wallet's row stays unpublished while we scrape.
    await env.pool.query(sql.unsafe`
      UPDATE outbox SET created = now() - interval '120 seconds' WHERE kind = 'wallet_created' AND wallet_id = ${wallet.body.id as number}
    `);
    const samples = await scrape(api.url);
    expect(sampleValue(samples, 'wallet_outbox_backlog_events')).toBeGreaterThanOrEqual(1);
    expect(sampleValue(samples, 'wallet_outbox_oldest_unpublished_age_seconds')).toBeGreaterThanOrEqual(119);
  });

  it('When a worker applies and rejects transactions, then its own /metrics counts them with latency, batch sizes and pool state', async () => {
    const wallet = await request(api.url, 'POST', '/wallets', { json: { externalId: `worker-${randomUUID()}` } });
    const walletId = wallet.body.id as number;
    // Stranded: pending for an hour and never enqueued, so only the sweeper can get it applied.
    await reserveBehindTheQueue(env.pool, walletId, { ageSeconds: 3600 });
    // Earlier tests left deposits pending (no worker ran yet): this worker applies those too.
    const before = await env.pool.one(sql.type(z.object({ transactions: z.number(), wallets: z.number() }))`
      SELECT count(*)::int AS transactions, count(DISTINCT wallet_id)::int AS wallets
      FROM transactions WHERE status = 'pending'
    `);
    worker = spawnWorker(env, { METRICS_PORT: '0' });
    await worker.ready;
    expect(worker.port).toBeGreaterThan(0);
    const workerUrl = `http://127.0.0.1:${worker.port}`;

    await waitUntil(
      'the sweeper got the stranded transaction applied',
      async () => (await request(api.url, 'GET', `/wallets/${walletId}/balance`)).text === '10.0',
      20_000,
    );
    const overdraw = await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
      json: { amount: -50, fingerprint: `overdraw-${randomUUID()}` },
      headers: { prefer: 'wait=10' },
    });
    expect(overdraw.status).toBe(422);

    let samples: MetricSamples = new Map();
    await waitUntil('the worker counted both outcomes', async () => {
      samples = await scrape(workerUrl);
      return (sampleValue(samples, 'wallet_transaction_end_to_end_seconds_count', { status: 'rejected' }) ?? 0) >= 1;
    });
    expect(sampleValue(samples, 'wallet_transactions_applied_total')).toBe(before.transactions);
    expect(sampleValue(samples, 'wallet_transactions_rejected_total', { reason: 'insufficient_funds' })).toBe(1);
    expect(sampleValue(samples, 'wallet_transaction_end_to_end_seconds_count', { status: 'applied' })).toBe(
      before.transactions,
    );
    // The stranded one waited an hour before it was applied: the latency runs from its reservation.
    expect(sampleValue(samples, 'wallet_transaction_end_to_end_seconds_sum', { status: 'applied' })).toBeGreaterThan(
      3500,
    );
    // One batch per wallet that had pending transactions, one more for the overdraw.
    expect(sampleValue(samples, 'wallet_apply_batch_size_count')).toBe(before.wallets + 1);
    expect(sampleValue(samples, 'wallet_apply_batch_size_sum')).toBe(before.transactions + 1);
    expect(
      sampleValue(samples, 'wallet_apply_job_duration_seconds_count', { outcome: 'completed' }),
    ).toBeGreaterThanOrEqual(2);
    expect(sampleValue(samples, 'wallet_sweeper_reenqueued_total')).toBeGreaterThanOrEqual(1);
    expect(sampleValue(samples, 'wallet_apply_conflict_retries_total')).toBe(0);
    expect(sampleValue(samples, 'wallet_transactions_voided_total')).toBe(0);
    expect(sampleValue(samples, 'wallet_db_pool_max_connections', { pool: 'worker' })).toBe(10);
    for (const state of ['in_use', 'idle', 'waiting']) {
      expect(sampleValue(samples, 'wallet_db_pool_connections', { pool: 'worker', state })).toBeTypeOf('number');
    }
    expect(sampleValue(samples, 'wallet_queue_jobs', { queue: APPLY_QUEUE_NAME, state: 'waiting' })).toBeTypeOf(
      'number',
    );
    // Workers also report the webhook delivery queue.
    expect(sampleValue(samples, 'wallet_queue_jobs', { queue: 'webhook-delivery', state: 'failed' })).toBeTypeOf(
      'number',
    );
    expect(sampleValue(samples, 'process_cpu_user_seconds_total')).toBeTypeOf('number');

    // The API counted the reservation; the worker reserves nothing.
    expect(sampleValue(await scrape(api.url), 'wallet_transactions_reserved_total')).toBeGreaterThanOrEqual(2);
    expect(sampleValue(samples, 'wallet_transactions_reserved_total')).toBe(0);
  });
});
