import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { findLedgerViolations } from './ledger-invariants.js';
import { createWallets, postTransactionLoad } from './load.js';
import type { RedisTopology } from './redis-topologies.js';
import {
  createTestEnv,
  spawnWorker,
  startTestApi,
  stopProcess,
  waitUntil,
  type TestEnv,
  type ServiceProcess,
} from './test-env.js';

/**
 * Many clients, a handful of wallets, three worker processes: every transaction ends final exactly
 * once and every wallet balances. One body for every Redis topology (concurrency.test.ts: one
 * Redis; cluster.test.ts: a Redis Cluster with the apply queue in shards).
 */
export function describeConcurrency(topology: RedisTopology): void {
  describe(`many clients, a handful of wallets, three worker processes (${topology.name})`, () => {
    let env: TestEnv;
    let api: Awaited<ReturnType<typeof startTestApi>>;
    const workers: ServiceProcess[] = [];

    beforeAll(async () => {
      env = await createTestEnv(`concurrency_${topology.name}`, {
        WORKER_CONCURRENCY: '4',
        APPLY_BATCH_SIZE: '50',
        ...topology.env,
      });
      api = await startTestApi(env);
    });

    afterAll(async () => {
      await Promise.all(workers.map(stopProcess));
      await api?.close();
      await env?.destroy();
    });

    const countByStatus = () =>
      env.pool.any(sql.type(z.object({ status: z.string(), n: z.number() }))`
    SELECT status, count(*)::int AS n FROM transactions GROUP BY status ORDER BY status
  `);

    it('When 2,400 transactions arrive at once, some retried and some overdrawing, then every one ends final exactly once and every wallet balances', async () => {
      workers.push(spawnWorker(env), spawnWorker(env), spawnWorker(env));
      await Promise.all(workers.map((worker) => worker.ready));
      const walletIds = await createWallets(api.url, 6, 'concurrency');

      const load = await postTransactionLoad({
        apiUrl: api.url,
        walletIds,
        count: 2400,
        concurrency: 48,
        seed: 20261125,
      });

      expect(load.unexpected).toEqual([]);
      expect(load.retries).toBeGreaterThan(100);
      expect(load.duplicatesRefused).toBe(load.retries);
      expect(load.accepted.size).toBe(2400);

      await waitUntil(
        'every transaction is final',
        async () => (await countByStatus()).every((row) => row.status !== 'pending'),
        120_000,
      );
      const counts = {
        applied: 0,
        rejected: 0,
        ...Object.fromEntries((await countByStatus()).map((row) => [row.status, row.n])),
      };
      expect(counts.applied + counts.rejected).toBe(2400);
      expect(counts.rejected).toBeGreaterThan(0);
      expect(counts.applied).toBeGreaterThan(counts.rejected);
      expect(await findLedgerViolations(env.pool)).toEqual([]);

      const stored = await env.pool.anyFirst(sql.type(z.object({ fingerprint: z.string() }))`
      SELECT fingerprint FROM transactions
    `);
      expect(new Set(stored)).toEqual(load.accepted);
    }, 180_000);
  });
}
