import { randomUUID } from 'node:crypto';
import { sql } from 'slonik';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorker, type RunningWorker } from '../../src/worker/worker.js';
import { request } from '../support/http.js';
import { createTestEnv, silentLogger, startTestApi, waitUntil, type TestEnv } from '../support/test-env.js';

/**
 * The service's statements reach the tables that grow by key, whatever the tables held when a
 * statement was first planned (docs/design.md, "Plans"): a plan cached while a new database was
 * empty would scan `transactions` or `transfers` whole, per statement or per row, for ever after
 * (this machine, like many, has no autovacuum to analyze them and replace it).
 */
let env: TestEnv;
let api: Awaited<ReturnType<typeof startTestApi>>;
let worker: RunningWorker;

beforeAll(async () => {
  env = await createTestEnv('db_plans');
  api = await startTestApi(env);
  worker = await startWorker(env.config, silentLogger);
});

afterAll(async () => {
  await worker?.close();
  await api?.close();
  await env?.destroy();
});

const scans = z.object({ relname: z.string(), scans: z.number() });

/** Rows read by sequential scans of the growing tables so far, as the statistics system counts them. */
async function tableScans(): Promise<Record<string, number>> {
  const rows = await env.pool.any(sql.type(scans)`
    SELECT relname, seq_tup_read::int AS scans FROM pg_stat_user_tables
    WHERE relname IN ('transactions', 'transfers', 'holds')
  `);
  return Object.fromEntries(rows.map((row) => [row.relname, row.scans]));
}

/** Deposits, transfers and holds through the API and the worker, each waited for. */
async function traffic(wallets: number[], rounds: number): Promise<void> {
  for (let round = 0; round < rounds; round += 1) {
    await Promise.all(
      wallets.map(async (walletId, index) => {
        const to = wallets[(index + 1) % wallets.length]!;
        const wait = { prefer: 'wait=10' };
        const deposit = await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
          json: { amount: 20, fingerprint: `plan-${randomUUID()}` },
          headers: wait,
        });
        expect(deposit.status).toBe(201);
        const moved = await request(api.url, 'POST', '/transfers', {
          json: { from: walletId, to, amount: '1.00', fingerprint: `plan-${randomUUID()}` },
          headers: wait,
        });
        expect(moved.status).toBe(201);
        const held = await request(api.url, 'POST', `/wallets/${walletId}/holds`, {
          json: { amount: '2.00', fingerprint: `plan-${randomUUID()}` },
          headers: wait,
        });
        expect(held.status).toBe(201);
        const captured = await request(
          api.url,
          'POST',
          `/wallets/${walletId}/holds/${held.body.id as string}/capture`,
          {
            json: { amount: '1.00' },
          },
        );
        expect(captured.status).toBe(202);
      }),
    );
  }
}

describe('statement plans as the tables grow', () => {
  it('When the tables grow from empty under running processes, then no statement of the apply, the relay or the reservations scans transactions, transfers or holds', async () => {
    const wallets: number[] = [];
    for (let i = 0; i < 8; i += 1) {
      const created = await request(api.url, 'POST', '/wallets', { json: { externalId: `plans-${randomUUID()}` } });
      wallets.push(created.body.id as number);
    }
    // While the tables are nearly empty: every named statement runs past the five executions
    // after which Postgres would keep a generic plan.
    await traffic(wallets, 3);
    // Then they grow well past what a scan could be the best plan for.
    await env.pool.query(sql.unsafe`
      INSERT INTO transfers (id, fingerprint, from_wallet, to_wallet, amount, currency, debit_seq)
      SELECT gen_random_uuid(), 'filler-' || i, 1000000 + i, 2000000 + i, 1, 'EUR', i FROM generate_series(1, 30000) AS i
    `);
    await env.pool.query(sql.unsafe`
      INSERT INTO transactions (wallet_id, seq, amount, fingerprint, status, refno, oldbalance, newbalance, finalized)
      OVERRIDING SYSTEM VALUE
      SELECT 1000000, i, 1, 'filler-' || i, 'applied', i, i - 1, i, now() FROM generate_series(1, 30000) AS i
    `);
    // Settled holds (out of `held`), as released holds end: unsettled ones of a wallet that does not
    // exist would have the sweeper enqueue it every pass, and the groups it joined then scanned
    // `transactions` (seen in 1 run of 3 with the sweep due inside the measured window).
    await env.pool.query(sql.unsafe`
      INSERT INTO holds (wallet_id, seq, fingerprint, amount, status, expires_at, held_released)
      SELECT 1000000, 100000 + i, 'filler-' || i, 1, 'released', now(), true FROM generate_series(1, 30000) AS i
    `);
    // Counts reach the statistics system late (an idle backend flushes within 10 s), so a scan of
    // the small tables before the growth may still be counted below: it reads a few hundred rows.
    // A scan after the growth reads every row, 30,000 or more.
    const settle = () => new Promise((resolve) => setTimeout(resolve, 1500));
    const before = await tableScans();
    await traffic(wallets, 3);
    await settle();
    const after = await tableScans();
    for (const table of ['transactions', 'transfers', 'holds']) {
      expect(after[table]! - before[table]!, `rows of ${table} read by scans`).toBeLessThan(30_000);
    }
    await waitUntil('nothing pending', async () => {
      const pending = await env.pool.oneFirst(sql.type(z.object({ n: z.number() }))`
        SELECT count(*)::int AS n FROM transactions WHERE status = 'pending'
      `);
      return pending === 0;
    });
  });
});
