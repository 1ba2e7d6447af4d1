/**
 * Issue 9's question: apply a group of wallets with the worker's set-based statements
 * (applyWalletBatches: decide in TypeScript with the ledger rules) or with one server-side
 * PL/pgSQL function call per group? Both run on the same data, database side only:
 * N wallets with one pending deposit or withdrawal each, groups of G wallets, C connections.
 *
 *   npx tsx bench/apply-function.ts [wallets=8000] [group=32] [connections=8]
 *
 * The function below exists only in this bench's database (wallet_bench_applyfn, dropped at the
 * end); it mirrors the ledger rules for plain deposits and withdrawals (no voids), enough to time
 * the round trips it saves. It is not the product's code.
 */
import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { applyWalletBatches } from '../src/shared/apply/apply-pending-transactions.js';
import { createDatabasePool } from '../src/shared/infra/db.js';
import { dropDatabase } from '../src/shared/infra/migrate.js';
import { freshDatabase } from './database.js';
import { findLedgerViolations } from '../test/support/ledger-invariants.js';

const WALLETS = Number(process.argv[2] ?? 8_000);
const GROUP = Number(process.argv[3] ?? 32);
const CONNECTIONS = Number(process.argv[4] ?? 8);
const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/wallet_bench_applyfn';

const APPLY_FUNCTION = sql.unsafe`
  CREATE FUNCTION bench_apply_wallets(wallet_ids bigint[], batch int) RETURNS int LANGUAGE plpgsql AS $$
  DECLARE
    w record; t record; bal numeric; ref bigint; applied int := 0;
  BEGIN
    FOR w IN SELECT id, balance, last_refno FROM wallets WHERE id = ANY(wallet_ids) ORDER BY id FOR NO KEY UPDATE LOOP
      bal := w.balance; ref := w.last_refno;
      FOR t IN SELECT id, amount FROM transactions WHERE wallet_id = w.id AND status = 'pending' ORDER BY seq LIMIT batch LOOP
        IF bal + t.amount < 0 THEN
          UPDATE transactions SET status = 'rejected', reason = 'insufficient_funds', finalized = now() WHERE id = t.id;
        ELSIF bal + t.amount > 9999999999999.99 THEN
          UPDATE transactions SET status = 'rejected', reason = 'balance_limit_exceeded', finalized = now() WHERE id = t.id;
        ELSE
          ref := ref + 1;
          UPDATE transactions SET status = 'applied', refno = ref, oldbalance = bal, newbalance = bal + t.amount,
                 finalized = now() WHERE id = t.id;
          bal := bal + t.amount;
        END IF;
        INSERT INTO outbox_events (wallet_id, type, subject, data)
        SELECT wallet_id, CASE WHEN status = 'rejected' THEN 'TransactionRejected' ELSE 'BalanceChanged' END, id::text,
               jsonb_build_object('walletId', wallet_id, 'transactionId', id, 'refno', refno, 'amount', amount,
                                  'oldbalance', oldbalance, 'newbalance', newbalance, 'reason', reason)
        FROM transactions WHERE id = t.id;
        applied := applied + 1;
      END LOOP;
      UPDATE wallets SET balance = bal, last_refno = ref, version = version + 1 WHERE id = w.id;
    END LOOP;
    RETURN applied;
  END $$
`;

async function seedPending(pool: DatabasePool, round: number): Promise<void> {
  // One pending transaction per wallet: a deposit, or every seventh a withdrawal of 2.00.
  await pool.query(sql.unsafe`
    INSERT INTO transactions (wallet_id, amount, fingerprint)
    SELECT id, CASE WHEN id % 7 = 0 THEN -2.00 ELSE 5.00 END, 'r' || ${round} || '-' || id FROM wallets ORDER BY id
  `);
  await pool.query(sql.unsafe`ANALYZE transactions`);
}

async function timeGroups(label: string, ids: readonly number[], apply: (group: number[]) => Promise<unknown>) {
  const groups: number[][] = [];
  for (let i = 0; i < ids.length; i += GROUP) groups.push(ids.slice(i, i + GROUP));
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      for (let index = next++; index < groups.length; index = next++) await apply(groups[index]!);
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return {
    approach: label,
    wallets: ids.length,
    seconds: Number(seconds.toFixed(2)),
    perSecond: Math.round(ids.length / seconds),
  };
}

await freshDatabase(DATABASE_URL);
const pool = await createDatabasePool({ DATABASE_URL, DB_POOL_SIZE: CONNECTIONS });
try {
  await pool.query(APPLY_FUNCTION);
  await pool.query(sql.unsafe`
    INSERT INTO wallets (external_id) SELECT 'w' || i FROM generate_series(1, ${WALLETS}) AS i
  `);
  const ids = await pool.anyFirst(sql.type(z.object({ id: z.number() }))`SELECT id FROM wallets ORDER BY id`);
  const results = [];
  for (let round = 1; round <= 4; round += 1) {
    await seedPending(pool, round);
    // Alternate, so neither approach always meets the warmer (or more bloated) tables.
    results.push(
      round % 2 === 1
        ? await timeGroups('set-based statements (applyWalletBatches)', ids, (group) =>
            applyWalletBatches(pool, group, 500),
          )
        : await timeGroups('PL/pgSQL function, one call per group', ids, (group) =>
            pool.oneFirst(sql.type(z.object({ n: z.number() }))`
              SELECT bench_apply_wallets(${sql.array(group, 'int8')}, 500) AS n
            `),
          ),
    );
  }
  const pending = await pool.oneFirst(
    sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM transactions WHERE status = 'pending'`,
  );
  const violations = await findLedgerViolations(pool);
  console.log(
    JSON.stringify({ wallets: WALLETS, group: GROUP, connections: CONNECTIONS, results, pending, violations }, null, 2),
  );
} finally {
  await pool.end();
  await dropDatabase(DATABASE_URL);
}
