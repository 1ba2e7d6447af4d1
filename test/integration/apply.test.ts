import { randomUUID } from 'node:crypto';
import { Worker } from 'bullmq';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  WalletApplyGroups,
  applyPendingTransactions,
  applyWalletBatches,
} from '../../src/shared/apply/apply-pending-transactions.js';
import { APPLY_QUEUE_NAME, createApplyQueue, enqueueApply, type ApplyJobData } from '../../src/shared/infra/queue.js';
import { createRedis } from '../../src/shared/infra/redis.js';
import { insertPendingTransaction } from '../../src/shared/transactions/transaction-repository.js';
import { insertWallet } from '../../src/shared/wallets/wallet-repository.js';
import { readPendingWork, writeDecisions, type WalletDecision } from '../../src/shared/apply/apply-repository.js';
import { startWorker } from '../../src/worker/worker.js';
import { findLedgerViolations } from '../support/ledger-invariants.js';
import { createPool, createTestEnv, silentLogger, waitUntil, type TestEnv } from '../support/test-env.js';
import { decimalToUnits } from '../../src/shared/ledger/money.js';

const EUR = { code: 'EUR', minorUnits: 2 };

let env: TestEnv;

beforeAll(async () => {
  env = await createTestEnv('apply');
});

afterAll(async () => {
  await env?.destroy();
});

async function walletWithPending(amounts: string[]): Promise<number> {
  const wallet = await insertWallet(env.pool, { externalId: randomUUID(), labels: {}, currency: EUR });
  for (const amount of amounts) {
    await insertPendingTransaction(env.pool, {
      walletId: wallet!.id,
      amount,
      fingerprint: randomUUID(),
      labels: {},
      description: null,
    });
  }
  return wallet!.id;
}

const statusCounts = (walletId: number) =>
  env.pool.any(sql.type(z.object({ status: z.string(), n: z.number() }))`
    SELECT status, count(*)::int AS n FROM transactions WHERE wallet_id = ${walletId} GROUP BY status ORDER BY status
  `);

describe('applyPendingTransactions', () => {
  it('When a wallet has many pending transactions, then one call applies them all in bounded batches', async () => {
    const walletId = await walletWithPending(Array.from({ length: 50 }, () => '2.00'));
    const summary = await applyPendingTransactions(env.pool, walletId, { batchSize: 20 });
    expect(summary).toMatchObject({ applied: 50, rejected: 0, voided: 0, batches: 3, conflictRetries: 0 });
    expect(summary.batchSizes).toEqual([20, 20, 10]);
    expect(summary.finalized).toHaveLength(50);
    expect(await statusCounts(walletId)).toEqual([{ status: 'applied', n: 50 }]);
    expect(await findLedgerViolations(env.pool)).toEqual([]);
  });

  it('When transactions are applied, then they follow reservation order', async () => {
    // 10 then -10 then -1: in order the last is rejected; any other order would reject another one.
    const walletId = await walletWithPending(['10.00', '-10.00', '-1.00']);
    await applyPendingTransactions(env.pool, walletId, { batchSize: 2 });
    const rows = await env.pool.any(sql.type(z.object({ amount: z.string(), status: z.string() }))`
      SELECT amount::text AS amount, status FROM transactions WHERE wallet_id = ${walletId} ORDER BY seq
    `);
    expect(rows).toEqual([
      { amount: '10.00', status: 'applied' },
      { amount: '-10.00', status: 'applied' },
      { amount: '-1.00', status: 'rejected' },
    ]);
  });

  it('When several appliers race on one wallet, then each transaction is applied exactly once', async () => {
    const walletId = await walletWithPending(Array.from({ length: 200 }, (_, i) => (i % 3 === 2 ? '-2.00' : '1.00')));
    const summaries = await Promise.all(
      Array.from({ length: 4 }, () => applyPendingTransactions(env.pool, walletId, { batchSize: 10 })),
    );
    const total = summaries.reduce((sum, summary) => sum + summary.applied + summary.rejected, 0);
    expect(total).toBe(200);
    expect(await findLedgerViolations(env.pool)).toEqual([]);
  });

  it('When a wallet row moved on since it was read, then the versioned write records the others and nothing of that one', async () => {
    const moved = await walletWithPending(['1.00']);
    const still = await walletWithPending(['2.00']);
    const work = await readPendingWork(env.pool, [moved, still], 10);
    const decide = (walletId: number, balance: string): WalletDecision => {
      const { wallet, pending, markers } = work.find((entry) => entry.wallet.id === walletId)!;
      return {
        walletId,
        expectedVersion: wallet.version,
        balance,
        lastRefno: 1,
        outcomes: [
          { id: pending[0]!.id, status: 'applied', refno: 1, oldBalance: 0n, newBalance: decimalToUnits(balance)! },
        ],
        seqs: [pending[0]!.seq],
        coveredMarkers: markers.map((marker) => marker.firstSeq),
      };
    };
    // Another applier writes `moved` first; the stale decision for it must then lose whole.
    expect((await writeDecisions(env.pool, [decide(moved, '1.00')])).won).toEqual(new Set([moved]));
    expect((await writeDecisions(env.pool, [decide(moved, '9.00'), decide(still, '2.00')])).won).toEqual(
      new Set([still]),
    );
    const balances = await env.pool.any(sql.type(z.object({ id: z.number(), balance: z.string() }))`
      SELECT id, balance::text AS balance FROM wallets WHERE id = ANY(${sql.array([moved, still], 'int8')})
    `);
    expect(Object.fromEntries(balances.map((row) => [row.id, row.balance]))).toEqual({
      [moved]: '1.00',
      [still]: '2.00',
    });
    expect(await statusCounts(moved)).toEqual([{ status: 'applied', n: 1 }]);
    expect(await findLedgerViolations(env.pool)).toEqual([]);
  });

  it('When the wallet has nothing pending or does not exist, then nothing happens', async () => {
    const empty = await walletWithPending([]);
    expect(await applyPendingTransactions(env.pool, empty, { batchSize: 5 })).toMatchObject({ applied: 0, batches: 0 });
    expect(await applyPendingTransactions(env.pool, 99_999_999, { batchSize: 5 })).toMatchObject({ applied: 0 });
  });
});

describe('the per-wallet queue', () => {
  it('When jobs for a wallet are added while its job is active, then exactly one more runs after it, never in parallel', async () => {
    const prefix = `${env.config.QUEUE_PREFIX}_dedup`;
    const connection = createRedis(env.config, 'test-queue', silentLogger);
    const workerConnection = createRedis(env.config, 'test-worker', silentLogger);
    const queue = createApplyQueue(connection, prefix);
    let running = 0;
    let maxRunning = 0;
    const runs: number[] = [];
    let release!: () => void;
    const firstRunHolds = new Promise<void>((resolve) => (release = resolve));
    const worker = new Worker<ApplyJobData>(
      APPLY_QUEUE_NAME,
      async (job) => {
        running += 1;
        maxRunning = Math.max(maxRunning, running);
        runs.push(job.data.walletId);
        if (runs.length === 1) await firstRunHolds;
        running -= 1;
      },
      { connection: workerConnection, prefix, concurrency: 8 },
    );
    try {
      await enqueueApply(queue, 1);
      await waitUntil('the first job is active', () => Promise.resolve(runs.length === 1));
      for (let i = 0; i < 10; i += 1) await enqueueApply(queue, 1);
      await enqueueApply(queue, 2); // another wallet runs beside it
      await waitUntil('wallet 2 ran', () => Promise.resolve(runs.includes(2)));
      release();
      await waitUntil('the kept job ran', () => Promise.resolve(runs.filter((id) => id === 1).length === 2));
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(runs.filter((id) => id === 1)).toHaveLength(2);
      expect(maxRunning).toBe(2); // wallet 1 and wallet 2 together, never wallet 1 twice
      expect(await queue.shards[0]!.getJobCounts('waiting', 'active', 'delayed')).toEqual({
        waiting: 0,
        active: 0,
        delayed: 0,
      });
    } finally {
      release();
      await worker.close();
      await queue.shards[0]!.obliterate({ force: true });
      await queue.close();
      await Promise.all([connection.quit(), workerConnection.quit()]);
    }
  });
});

describe('the sweeper', () => {
  it('When a pending transaction was never enqueued (the API died after reserving), then a worker applies it anyway', async () => {
    const walletId = await walletWithPending(['4.00', '-1.00']);
    // Make the reservation look old enough to be stale.
    await env.pool.query(
      sql.unsafe`UPDATE transactions SET created = now() - interval '1 minute' WHERE wallet_id = ${walletId}`,
    );
    await env.pool.query(
      sql.unsafe`UPDATE pending_reservations SET created = now() - interval '1 minute' WHERE wallet_id = ${walletId}`,
    );
    const worker = await startWorker(env.config, silentLogger);
    try {
      await waitUntil(
        'the sweeper re-enqueued the wallet',
        async () => {
          const counts = await statusCounts(walletId);
          return counts.length === 1 && counts[0]!.status === 'applied';
        },
        20_000,
      );
    } finally {
      await worker.close();
    }
    const state = await env.pool.one(sql.type(z.object({ balance: z.string(), lastRefno: z.number() }))`
      SELECT balance::text AS balance, last_refno AS "lastRefno" FROM wallets WHERE id = ${walletId}
    `);
    expect(state).toEqual({ balance: '3.00', lastRefno: 2 });
  });
});

describe('many wallets in one database transaction', () => {
  it('When another applier holds one wallet of a group, then the group does not wait for it: the others are written and that one is retried alone', async () => {
    const [moved, first, second] = [
      await walletWithPending(['5.00', '-2.00']),
      await walletWithPending(['7.00']),
      await walletWithPending(['1.00', '-9.00']),
    ];
    // Another applier holds the moved wallet (its advisory lock, as every applier takes) while the group runs.
    const other = await createPool(env.config.DATABASE_URL, { maxPoolSize: 1 });
    try {
      let release!: () => void;
      let held!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      const isHeld = new Promise<void>((resolve) => (held = resolve));
      const holding = other.transaction(async (tx) => {
        await tx.query(sql.unsafe`SELECT pg_advisory_xact_lock(${moved})`);
        held();
        await released;
      });
      await isHeld;
      const results = await applyWalletBatches(env.pool, [moved, first, second], 10);
      release();
      await holding;
      expect(results.get(moved)).toEqual({ won: false });
      expect(results.get(first)).toMatchObject({ won: true, batch: { outcomes: [{ status: 'applied', refno: 1 }] } });
      expect(results.get(second)).toMatchObject({
        won: true,
        batch: { outcomes: [{ status: 'applied' }, { status: 'rejected', reason: 'insufficient_funds' }] },
      });
    } finally {
      await other.end();
    }
    expect(await statusCounts(moved)).toEqual([{ status: 'pending', n: 2 }]);
    // Retried (alone), the loser is applied in full.
    expect(await applyPendingTransactions(env.pool, moved, { batchSize: 10 })).toMatchObject({ applied: 2 });
    expect(await findLedgerViolations(env.pool)).toEqual([]);
  });

  it('When many wallets are applied at once through shared groups, then each ends in order and every ledger balances', async () => {
    const groups = new WalletApplyGroups(env.pool, 3, {
      maxSize: 16,
      maxDelayMs: 0,
      maxInFlight: 1,
      timeoutMs: 30_000,
    });
    const wallets = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        walletWithPending(['10.00', '-4.00', `-${(i % 8) + 1}.00`, '2.00', '-20.00']),
      ),
    );
    const summaries = await Promise.all(
      wallets.map((walletId) =>
        applyPendingTransactions(env.pool, walletId, { batchSize: 3, applyBatch: groups.applyBatch }),
      ),
    );
    for (const summary of summaries) {
      expect(summary.applied + summary.rejected).toBe(5);
      expect(summary.batchSizes).toEqual([3, 2]);
    }
    // -20.00 always overdraws; the third (-k) is rejected too where k > 10 - 4, i.e. k = 7 or 8 (10 wallets).
    const rejected = summaries.map((summary) => summary.rejected);
    expect(rejected.filter((n) => n === 1)).toHaveLength(30);
    expect(await findLedgerViolations(env.pool)).toEqual([]);
  });
});

describe('stopping between batches', () => {
  it('When the worker is shutting down, then a busy wallet stops after the batch in hand and the rest stays pending for the next job', async () => {
    const walletId = await walletWithPending(Array.from({ length: 30 }, () => '1.00'));
    const summary = await applyPendingTransactions(env.pool, walletId, { batchSize: 10, shouldStop: () => true });
    expect(summary).toMatchObject({ interrupted: true, applied: 10, batches: 1 });
    expect(await statusCounts(walletId)).toEqual([
      { status: 'applied', n: 10 },
      { status: 'pending', n: 20 },
    ]);
    const rest = await applyPendingTransactions(env.pool, walletId, { batchSize: 10 });
    expect(rest).toMatchObject({ interrupted: false, applied: 20 });
  });
});
