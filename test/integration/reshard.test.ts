import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadConfig } from '../../src/shared/infra/config.js';
import { APPLY_QUEUE_NAME, createApplyQueue, queueLayout } from '../../src/shared/infra/queue.js';
import { connectRedis } from '../../src/shared/infra/redis.js';
import { request } from '../support/http.js';
import { parseMetrics, sampleValue } from '../support/prometheus-text.js';
import { findLedgerViolations } from '../support/ledger-invariants.js';
import { createWallets, postTransactionLoad } from '../support/load.js';
import {
  createTestEnv,
  spawnService,
  spawnWorker,
  startTestApi,
  stopProcess,
  waitUntil,
  type ServiceProcess,
  type TestEnv,
} from '../support/test-env.js';

/**
 * Changing QUEUE_SHARDS on a running deployment (docs/scaling.md): wallet W moves from shard
 * W mod old to W mod new. Pending transactions live in Postgres, so the sweeper re-enqueues what
 * the old queues hold into the new shards; while old and new processes overlap, a wallet can have
 * a job in each, and the optimistic version check keeps the ledger exact.
 */
let env: TestEnv;
const processes: ServiceProcess[] = [];

beforeAll(async () => {
  // QUEUE_SHARDS=1 on one Redis: the unsharded queue `wallet-apply`, as a deployment before shards had.
  env = await createTestEnv('reshard', { WORKER_CONCURRENCY: '8', APPLY_BATCH_SIZE: '20' });
});

afterAll(async () => {
  await Promise.all(processes.map(stopProcess));
  await env?.destroy();
});

const pendingCount = () =>
  env.pool.oneFirst(sql.type(z.object({ n: z.number() }))`
    SELECT count(*)::int AS n FROM transactions WHERE status = 'pending'
  `);

describe('changing the number of queue shards', () => {
  it('When QUEUE_SHARDS goes from 1 to 3 with jobs still queued, then workers on 3 shards apply every pending transaction (the sweeper moves them) and the old queue is left to delete', async () => {
    const api = await startTestApi(env);
    let walletIds: number[];
    try {
      walletIds = await createWallets(api.url, 6, 'reshard-stop');
      for (const walletId of walletIds) {
        for (let i = 0; i < 4; i += 1) {
          const posted = await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
            json: { amount: 5, fingerprint: `reshard-stop-${walletId}-${i}` },
          });
          expect(posted.status).toBe(202);
        }
      }
    } finally {
      await api.close();
    }
    // No worker served the old layout: every wallet's job waits in `wallet-apply`.
    const redis = connectRedis(env.config, { maxRetriesPerRequest: null });
    const oldQueue = createApplyQueue(redis, env.config.QUEUE_PREFIX);
    try {
      expect(oldQueue.shards[0]!.name).toBe(APPLY_QUEUE_NAME);
      expect(await oldQueue.shards[0]!.getWaitingCount()).toBe(6);

      const worker = spawnWorker(env, { QUEUE_SHARDS: '3' });
      processes.push(worker);
      await worker.ready;
      await waitUntil('every transaction is final', async () => (await pendingCount()) === 0, 30_000);
      await stopProcess(worker);

      // Applied through the new shards: the old queue's jobs were never taken.
      expect(await oldQueue.shards[0]!.getWaitingCount()).toBe(6);
      const newQueue = createApplyQueue(
        redis,
        env.config.QUEUE_PREFIX,
        queueLayout({ ...env.config, QUEUE_SHARDS: 3 }),
      );
      expect(newQueue.shards.map((shard) => shard.name)).toEqual([
        '{wallet-apply-0}',
        '{wallet-apply-1}',
        '{wallet-apply-2}',
      ]);
      await newQueue.close();
      const balances = await env.pool.anyFirst(sql.type(z.object({ balance: z.string() }))`
        SELECT balance::text AS balance FROM wallets WHERE id = ANY(${sql.array(walletIds, 'int8')})
      `);
      expect(balances).toEqual(walletIds.map(() => '20.00'));
      expect(await findLedgerViolations(env.pool)).toEqual([]);
      // What docs/scaling.md says to do once the new workers run: drop the old queue's keys.
      await oldQueue.shards[0]!.obliterate({ force: true });
    } finally {
      await oldQueue.close();
      redis.disconnect();
    }
  }, 60_000);

  it('When old (1 shard) and new (3 shards) APIs and workers run side by side under load on the same wallets, then every transaction ends final exactly once and every wallet balances', async () => {
    const oldApi = await startTestApi(env);
    const newEnv = { QUEUE_SHARDS: '3' };
    expect(loadConfig({ ...env.env, ...newEnv }).QUEUE_SHARDS).toBe(3);
    const newApi = spawnService(env, 'api', newEnv);
    const oldWorker = spawnWorker(env, { METRICS_PORT: '0' });
    const newWorker = spawnWorker(env, { ...newEnv, METRICS_PORT: '0' });
    processes.push(newApi, oldWorker, newWorker);
    try {
      await Promise.all(processes.map((process) => process.ready));
      const walletIds = await createWallets(oldApi.url, 4, 'reshard-overlap');
      const loads = await Promise.all([
        postTransactionLoad({ apiUrl: oldApi.url, walletIds, count: 600, concurrency: 16, seed: 17 }),
        postTransactionLoad({
          apiUrl: `http://127.0.0.1:${newApi.port}`,
          walletIds,
          count: 600,
          concurrency: 16,
          seed: 1717,
        }),
      ]);
      for (const load of loads) {
        expect(load.unexpected).toEqual([]);
        expect(load.accepted.size).toBe(600);
      }
      await waitUntil('every transaction is final', async () => (await pendingCount()) === 0, 60_000);
      const counts = await env.pool.one(sql.type(z.object({ applied: z.number(), rejected: z.number() }))`
        SELECT count(*) FILTER (WHERE status = 'applied')::int AS applied,
               count(*) FILTER (WHERE status = 'rejected')::int AS rejected
        FROM transactions WHERE wallet_id = ANY(${sql.array(walletIds, 'int8')})
      `);
      expect(counts.applied + counts.rejected).toBe(1200);
      expect(counts.rejected).toBeGreaterThan(0);
      expect(await findLedgerViolations(env.pool)).toEqual([]);
      // Both layouts carried work: the old worker (queue `wallet-apply`) and the new one (3 shards) each applied some.
      for (const worker of [oldWorker, newWorker]) {
        const metrics = parseMetrics(await (await fetch(`http://127.0.0.1:${worker.port}/metrics`)).text());
        expect(sampleValue(metrics, 'wallet_transactions_applied_total') ?? 0, worker.output()).toBeGreaterThan(0);
      }
    } finally {
      await oldApi.close();
    }
  }, 120_000);
});
