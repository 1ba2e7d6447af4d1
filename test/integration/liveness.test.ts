import type { ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { releaseStuckWallet } from '../../src/shared/apply/recover-stuck-wallets.js';
import {
  createApplyQueue,
  enqueueApply,
  walletDeduplicationId,
  type ApplyQueue,
} from '../../src/shared/infra/queue.js';
import { findWalletsWithStalePending } from '../../src/shared/transactions/transaction-repository.js';
import { countPending, reserveBehindTheQueue } from '../support/stranded.js';
import { createTestEnv, spawnWorker, stopProcess, waitUntil, type TestEnv } from '../support/test-env.js';

let env: TestEnv;
let redis: Redis;
let queue: ApplyQueue;
const workers: ChildProcess[] = [];

beforeAll(async () => {
  // The test env sweeps every 500 ms and calls a transaction stale after 2 s.
  env = await createTestEnv('liveness');
  redis = new Redis(env.config.REDIS_URL, { maxRetriesPerRequest: null });
  queue = createApplyQueue(redis, env.config.QUEUE_PREFIX);
});

afterAll(async () => {
  await Promise.all(workers.map(stopProcess));
  await queue?.close();
  redis?.disconnect();
  await env?.destroy();
});

let walletCount = 0;
/** A wallet with one pending deposit of 10, created behind the queue's back (no job). */
async function walletWithPendingDeposit(pool = env.pool, createdSecondsAgo = 0): Promise<number> {
  walletCount += 1;
  const walletId = await pool.oneFirst(sql.type(z.object({ id: z.number() }))`
    INSERT INTO wallets (external_id) VALUES (${`liveness-${walletCount}`}) RETURNING id
  `);
  await reserveBehindTheQueue(pool, walletId, {
    fingerprint: `liveness-${walletCount}`,
    ageSeconds: createdSecondsAgo,
  });
  return walletId;
}

const statusOf = (walletId: number) =>
  env.pool.oneFirst(sql.type(z.object({ status: z.string() }))`
    SELECT status FROM transactions WHERE wallet_id = ${walletId}
  `);

const dedupKey = (walletId: number) => queue.shards[0]!.toKey(`de:${walletDeduplicationId(walletId)}`);

/** Adds the wallet's job, then takes it out of the wait list: a job hash that is in no list. */
async function strandJob(walletId: number): Promise<string> {
  await enqueueApply(queue, walletId);
  const jobId = await redis.get(dedupKey(walletId));
  expect(jobId).not.toBeNull();
  expect(await redis.lrem(queue.shards[0]!.toKey('wait'), 0, jobId!)).toBe(1);
  return jobId!;
}

describe('a wallet whose deduplication key names a job that cannot move', () => {
  it('When the job it names is waiting, or active under a lock, then the key is kept', async () => {
    const waiting = await walletWithPendingDeposit();
    await enqueueApply(queue, waiting);
    expect(await releaseStuckWallet(redis, queue, waiting)).toBe(false);

    const active = await walletWithPendingDeposit();
    const jobId = await strandJob(active);
    await redis.lpush(queue.shards[0]!.toKey('active'), jobId);
    await redis.set(queue.shards[0]!.toKey(`${jobId}:lock`), 'some-worker-token', 'PX', 60_000);
    expect(await releaseStuckWallet(redis, queue, active)).toBe(false);

    // Losing the lock (the worker died and the lock expired) makes it stuck.
    await redis.del(queue.shards[0]!.toKey(`${jobId}:lock`));
    expect(await releaseStuckWallet(redis, queue, active)).toBe(true);
    expect(await redis.exists(dedupKey(active))).toBe(0);

    await redis.del(queue.shards[0]!.toKey('wait'), queue.shards[0]!.toKey('active'));
  });

  it('When the job hash exists but sits in no list, then the sweeper releases the wallet and its transaction is applied', async () => {
    const walletId = await walletWithPendingDeposit();
    const jobId = await strandJob(walletId);
    // The state BullMQ cannot leave by itself: key → existing job hash, in no list, no lock.
    expect(await redis.exists(queue.shards[0]!.toKey(jobId))).toBe(1);
    expect(await redis.exists(queue.shards[0]!.toKey(`${jobId}:lock`))).toBe(0);

    const worker = spawnWorker(env);
    workers.push(worker);
    await worker.ready;
    // Stale after 2 s, swept every 500 ms: well within 10 s.
    await waitUntil(
      `wallet ${walletId}'s deposit is applied`,
      async () => (await statusOf(walletId)) === 'applied',
      10_000,
    );
  });
});

describe('the sweeper query', () => {
  it('When more wallets are stale than one sweep takes, then each is returned within ceil(N / limit) sweeps', async () => {
    // A database of its own: no worker applies these.
    const fresh = await createTestEnv('liveness_fair');
    try {
      const wallets = [];
      for (let i = 0; i < 5; i += 1) wallets.push(await walletWithPendingDeposit(fresh.pool, 60));
      let after = 0;
      const seen: number[][] = [];
      for (let sweep = 0; sweep < 3; sweep += 1) {
        const batch = await findWalletsWithStalePending(fresh.pool, 1000, 2, after);
        seen.push([...batch]);
        after = batch.at(-1) ?? 0;
      }
      expect(seen).toEqual([wallets.slice(0, 2), wallets.slice(2, 4), [wallets[4], wallets[0]]]);
    } finally {
      await fresh.destroy();
    }
  });
});

describe('pending markers lost with their unlogged table', () => {
  it('When Postgres empties the markers (as after a crash), then the sweeper rebuilds them and every pending transaction is applied once', async () => {
    const fresh = await createTestEnv('liveness_markers', { SWEEP_INTERVAL_MS: '200' });
    try {
      const wallets = [];
      for (let i = 0; i < 3; i += 1) wallets.push(await walletWithPendingDeposit(fresh.pool, 30));
      // A crash resets an unlogged table to empty: the markers and the sentinel are gone.
      await fresh.pool.query(sql.unsafe`TRUNCATE pending_reservations`);
      expect(await findWalletsWithStalePending(fresh.pool, 0, 100)).toEqual([]);

      const worker = spawnWorker(fresh);
      try {
        await worker.ready;
        await waitUntil('every deposit is applied', async () => (await countPending(fresh.pool)) === 0, 20_000);
      } finally {
        await stopProcess(worker);
      }
      const balances = await fresh.pool.anyFirst(sql.type(z.object({ balance: z.string() }))`
        SELECT balance::text AS balance FROM wallets WHERE id = ANY(${sql.array(wallets, 'int8')})
      `);
      expect(balances).toEqual(['10.00', '10.00', '10.00']);
      // The sentinel is back, and no marker is left behind.
      expect(
        await fresh.pool.anyFirst(sql.type(z.object({ walletId: z.number() }))`
          SELECT wallet_id AS "walletId" FROM pending_reservations
        `),
      ).toEqual([0]);
    } finally {
      await fresh.destroy();
    }
  });
});
