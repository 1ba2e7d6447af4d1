import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';

/**
 * The rules of money, checked over the whole database with SQL (exact NUMERIC arithmetic).
 * Returns a description of every violation; an empty list means the ledger is sound.
 */
export async function findLedgerViolations(pool: DatabasePool): Promise<string[]> {
  const violations: string[] = [];
  const pending = await pool.oneFirst(sql.type(z.object({ count: z.number() }))`
    SELECT count(*)::int AS count FROM transactions WHERE status = 'pending'
  `);
  if (pending > 0) violations.push(`${pending} transactions still pending`);

  const wallets = await pool.any(sql.type(
    z.object({
      id: z.number(),
      balanceMatches: z.boolean(),
      refnosContiguous: z.boolean(),
      lastRefnoMatches: z.boolean(),
      chainUnbroken: z.boolean(),
      neverNegative: z.boolean(),
    }),
  )`
    WITH applied AS (
      SELECT wallet_id, refno, amount, oldbalance, newbalance,
             lag(newbalance) OVER (PARTITION BY wallet_id ORDER BY refno) AS previous_newbalance,
             row_number() OVER (PARTITION BY wallet_id ORDER BY refno) AS position
      FROM transactions WHERE status IN ('applied', 'voided')
    )
    SELECT w.id,
      w.balance = coalesce((SELECT sum(amount) FROM applied a WHERE a.wallet_id = w.id), 0) AS "balanceMatches",
      coalesce((SELECT bool_and(refno = position) FROM applied a WHERE a.wallet_id = w.id), true) AS "refnosContiguous",
      w.last_refno = (SELECT count(*) FROM applied a WHERE a.wallet_id = w.id) AS "lastRefnoMatches",
      coalesce((SELECT bool_and(
        oldbalance + amount = newbalance
        AND oldbalance = coalesce(previous_newbalance, 0)
      ) FROM applied a WHERE a.wallet_id = w.id), true) AS "chainUnbroken",
      w.balance >= 0 AND coalesce((SELECT bool_and(newbalance >= 0) FROM applied a WHERE a.wallet_id = w.id), true)
        AS "neverNegative"
    FROM wallets w
  `);
  for (const wallet of wallets) {
    for (const [rule, holds] of Object.entries(wallet)) {
      if (rule !== 'id' && holds !== true) violations.push(`wallet ${wallet.id}: ${rule} is false`);
    }
  }

  const badRejections = await pool.oneFirst(sql.type(z.object({ count: z.number() }))`
    SELECT count(*)::int AS count FROM transactions
    WHERE status = 'rejected' AND (refno IS NOT NULL OR reason IS NULL)
  `);
  if (badRejections > 0) violations.push(`${badRejections} rejected transactions carry a refno or no reason`);
  return violations;
}
