import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { findEventsAfter, listOutboxEvents, readRelayCursor } from '../../src/shared/events/outbox-repository.js';
import { eventStreamKey } from '../../src/shared/events/event-stream.js';
import { createApplyQueue, queueLayout, shardOfWallet } from '../../src/shared/infra/queue.js';
import { connectRedis } from '../../src/shared/infra/redis.js';
import { findLedgerViolations } from './ledger-invariants.js';
import { createWallets, postTransactionLoad } from './load.js';
import { request } from './http.js';
import type { RedisTopology } from './redis-topologies.js';
import {
  applyGroupWaitsOnLock,
  createPool,
  createTestEnv,
  spawnWorker,
  startTestApi,
  stopProcess,
  waitForExit,
  waitUntil,
  type ServiceProcess,
  type TestEnv,
} from './test-env.js';

/**
 * Workers that die (SIGKILL mid-run, SIGTERM while busy, SIGKILL inside a group's write): every
 * transaction still ends final exactly once. One body for every Redis topology: crash.test.ts runs
 * it on one Redis, cluster.test.ts on a Redis Cluster with sharded queues.
 */
export function describeWorkersThatDie(topology: RedisTopology): void {
  describe(`workers that die (${topology.name})`, () => {
    let env: TestEnv;
    let api: Awaited<ReturnType<typeof startTestApi>>;
    const workers: ServiceProcess[] = [];

    beforeAll(async () => {
      // Small batches keep jobs busy, so the kill lands mid-job; a short lock lets BullMQ notice quickly.
      env = await createTestEnv(`crash_${topology.name}`, {
        WORKER_CONCURRENCY: '4',
        APPLY_BATCH_SIZE: '5',
        ...topology.env,
      });
      api = await startTestApi(env);
    });

    afterAll(async () => {
      await Promise.all(workers.map(stopProcess));
      await api?.close();
      await env?.destroy();
    });

    const pendingCount = () =>
      env.pool.oneFirst(sql.type(z.object({ n: z.number() }))`
        SELECT count(*)::int AS n FROM transactions WHERE status = 'pending'
      `);
    const unpublishedCount = async () =>
      (await findEventsAfter(env.pool, await readRelayCursor(env.pool), 100_000)).length;
    const finalCount = () =>
      env.pool.oneFirst(sql.type(z.object({ n: z.number() }))`
        SELECT count(*)::int AS n FROM transactions WHERE status <> 'pending'
      `);

    /**
     * Another session locks one transaction's row (FOR UPDATE) until `release`: an apply group that
     * reaches it waits there, in the middle of its statements.
     */
    async function lockTransactionRow(fingerprint: string) {
      const holder = await createPool(env.config.DATABASE_URL, { maxPoolSize: 1 });
      let release!: () => void;
      let locked!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      const isLocked = new Promise<void>((resolve) => (locked = resolve));
      const holding = holder.transaction(async (tx) => {
        await tx.query(sql.unsafe`SELECT 1 FROM transactions WHERE fingerprint = ${fingerprint} FOR UPDATE`);
        locked();
        await released;
      });
      await isLocked;
      return { release, done: holding.finally(() => holder.end()) };
    }

    it('When a worker is SIGKILLed mid-run and another starts, then every transaction still ends final exactly once', async () => {
      const doomed = spawnWorker(env);
      const survivor = spawnWorker(env);
      workers.push(doomed, survivor);
      await Promise.all([doomed.ready, survivor.ready]);
      const walletIds = await createWallets(api.url, 4, 'crash');

      let killed = false;
      const load = postTransactionLoad({
        apiUrl: api.url,
        walletIds,
        count: 2000,
        concurrency: 32,
        seed: 4242,
        onAccepted: async (accepted) => {
          if (killed || accepted < 600) return;
          killed = true;
          // Only once the workers are really applying, so the kill interrupts work in progress.
          if ((await finalCount()) === 0) killed = false;
          else doomed.kill('SIGKILL');
        },
      });
      const result = await load;
      expect(killed).toBe(true);
      expect(await waitForExit(doomed)).toEqual({ code: null, signal: 'SIGKILL' });
      workers.push(spawnWorker(env));

      expect(result.unexpected).toEqual([]);
      await waitUntil('every transaction is final', async () => (await pendingCount()) === 0, 120_000);
      expect(await findLedgerViolations(env.pool)).toEqual([]);
      const stored = await env.pool.anyFirst(
        sql.type(z.object({ fingerprint: z.string() }))`SELECT fingerprint FROM transactions`,
      );
      expect(new Set(stored)).toEqual(result.accepted);

      // The killed worker may have been relaying events: each still reaches the stream exactly once.
      await waitUntil('the outbox is drained', async () => (await unpublishedCount()) === 0, 60_000);
      const outboxIds = (await listOutboxEvents(env.pool)).map((event) => event.eventId);
      const redis = connectRedis(env.config, {});
      try {
        const entries = await redis.xrange(eventStreamKey(env.config.QUEUE_PREFIX), '-', '+');
        const streamIds = entries.map(
          ([, fields]) => (JSON.parse(fields[fields.indexOf('event') + 1]!) as { id: string }).id,
        );
        expect(streamIds).toHaveLength(outboxIds.length);
        expect(new Set(streamIds)).toEqual(new Set(outboxIds));
      } finally {
        redis.disconnect();
      }
    }, 180_000);

    it('When a worker gets SIGTERM while busy, then it finishes the jobs it holds before it exits 0, and nothing is lost', async () => {
      await Promise.all(workers.map(stopProcess));
      const walletIds = await createWallets(api.url, 3, 'sigterm');
      const fingerprints = walletIds.flatMap((walletId) =>
        Array.from({ length: 12 }, (_, i) => `sigterm-${walletId}-${i}`),
      );
      for (const fingerprint of fingerprints) {
        const walletId = Number(fingerprint.split('-')[1]);
        const posted = await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
          json: { amount: 2, fingerprint },
        });
        expect(posted.status).toBe(202);
      }
      // Another session holds the first transaction's row: the leaving worker's group waits on it
      // mid-job, so the signal surely comes while the worker holds jobs.
      const held = await lockTransactionRow(fingerprints[0]!);
      const redis = connectRedis(env.config, { maxRetriesPerRequest: null });
      const queue = createApplyQueue(redis, env.config.QUEUE_PREFIX, queueLayout(env.config));
      const activeJobs = async () => (await Promise.all(queue.shards.map((shard) => shard.getActive()))).flat();
      try {
        const leaving = spawnWorker(env);
        workers.push(leaving);
        await leaving.ready;
        await waitUntil('a group waits on the held row', () => applyGroupWaitsOnLock(env.pool));
        const jobs = (await activeJobs()).map((job) => ({ id: job.id!, walletId: job.data.walletId }));
        expect(jobs.length).toBeGreaterThan(0);
        leaving.kill('SIGTERM');
        await waitUntil('the worker begins its shutdown', () =>
          Promise.resolve(leaving.output().includes('shutting down')),
        );
        // Its job cannot finish while the row is held, so neither can the worker.
        expect(leaving.exitCode).toBeNull();
        held.release();
        expect(await waitForExit(leaving), leaving.output()).toEqual({ code: 0, signal: null });

        // Checked before any other worker runs, so none can have finished them in its place: the
        // jobs it held are done (completed jobs are removed; a failed one would stay), none is left
        // active for another worker to take over once its lock expires, and the held transaction,
        // which its job had in hand, is applied.
        const states = await Promise.all(
          jobs.map(
            async ({ id, walletId }) =>
              (await (await queue.forWallet(walletId).getJob(id))?.getState()) ?? 'completed and removed',
          ),
        );
        expect(states).toEqual(jobs.map(() => 'completed and removed'));
        for (const shard of queue.shards) {
          expect(await shard.getJobCounts('active', 'failed')).toEqual({ active: 0, failed: 0 });
        }
        const inHand = await request(api.url, 'GET', `/transactions/by-fingerprint/${fingerprints[0]!}`);
        expect(inHand.body.status).toBe('applied');
      } finally {
        held.release();
        await held.done;
        await queue.close();
        redis.disconnect();
      }
      // What it had not started is left pending for the next worker, which applies all of it.
      workers.push(spawnWorker(env));
      await waitUntil('every transaction is final', async () => (await pendingCount()) === 0, 60_000);
      expect(await findLedgerViolations(env.pool)).toEqual([]);
      const balances = await Promise.all(
        walletIds.map(async (walletId) => (await request(api.url, 'GET', `/wallets/${walletId}/balance`)).text),
      );
      expect(balances).toEqual(walletIds.map(() => '24.0'));
    }, 120_000);

    it('When a worker is SIGKILLed in the middle of the write statement of its group, then nothing of the group is written and another worker applies it once', async () => {
      await Promise.all(workers.map(stopProcess));
      const walletIds = await createWallets(api.url, 6, 'worker-mid-group');
      const [blocked] = walletIds;
      for (const walletId of walletIds) {
        for (let i = 0; i < 3; i += 1) {
          const response = await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
            json: { amount: 4, fingerprint: `worker-mid-${walletId}-${i}` },
          });
          expect(response.status).toBe(202);
        }
      }

      // Another session holds one pending transaction's row: the group reads, and its write statement
      // updates the balances, then waits on that row's outcome UPDATE, before its commit.
      const held = await lockTransactionRow(`worker-mid-${blocked!}-0`);
      try {
        // It serves only the blocked wallet's shard, so every wallet it takes is in one group with
        // the blocked one (workers of several shards would form groups of their own, which commit).
        const doomed = spawnWorker(env, {
          WORKER_CONCURRENCY: '64',
          QUEUE_SHARDS_SERVED: String(shardOfWallet(blocked!, env.config.QUEUE_SHARDS)),
        });
        workers.push(doomed);
        await doomed.ready;
        await waitUntil('a group waits on the held row', () => applyGroupWaitsOnLock(env.pool));
        doomed.kill('SIGKILL');
        expect(await waitForExit(doomed)).toEqual({ code: null, signal: 'SIGKILL' });
        // The group had written balances when it was cut off: none of it is visible.
        const written = await env.pool.oneFirst(sql.type(z.object({ n: z.number() }))`
        SELECT count(*)::int AS n FROM transactions WHERE fingerprint LIKE 'worker-mid-%' AND status <> 'pending'
      `);
        expect(written).toBe(0);
        const balances = await env.pool.anyFirst(sql.type(z.object({ balance: z.string() }))`
        SELECT balance::text AS balance FROM wallets WHERE id = ANY(${sql.array(walletIds, 'int8')})
      `);
        expect(new Set(balances)).toEqual(new Set(['0.00']));
      } finally {
        held.release();
        await held.done;
      }
      workers.push(spawnWorker(env));
      await waitUntil('every transaction is final', async () => (await pendingCount()) === 0, 60_000);
      const refnos = await env.pool.any(sql.type(z.object({ walletId: z.number(), refnos: z.array(z.number()) }))`
      SELECT wallet_id AS "walletId", array_agg(refno ORDER BY refno) AS refnos FROM transactions
      WHERE fingerprint LIKE 'worker-mid-%' GROUP BY wallet_id
    `);
      expect(refnos.map((row) => row.refnos)).toEqual(walletIds.map(() => [1, 2, 3]));
      expect(await findLedgerViolations(env.pool)).toEqual([]);
    }, 90_000);
  });
}
