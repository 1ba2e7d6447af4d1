import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import type { Outcome } from './ledger.js';
import { centsToDecimal } from './money.js';

/** Data access for the transactions table. */

export const transactionStatusSchema = z.enum(['pending', 'applied', 'rejected']);
export type TransactionStatus = z.infer<typeof transactionStatusSchema>;

export const transactionRowSchema = z.object({
  id: z.string(),
  walletId: z.number(),
  amount: z.string(),
  fingerprint: z.string(),
  labels: z.record(z.string()),
  description: z.string().nullable(),
  status: transactionStatusSchema,
  reason: z.string().nullable(),
  refno: z.number().nullable(),
  oldbalance: z.string().nullable(),
  newbalance: z.string().nullable(),
  created: z.string(),
});
export type TransactionRow = z.infer<typeof transactionRowSchema>;

const transactionColumns = sql.fragment`
  id, wallet_id AS "walletId", amount::text AS amount, fingerprint, labels, description, status, reason,
  refno, oldbalance::text AS oldbalance, newbalance::text AS newbalance, created
`;

export interface NewTransaction {
  walletId: number;
  amount: string;
  fingerprint: string;
  labels: Record<string, string>;
  description: string | null;
}

/**
 * Reserves the fingerprint with a pending row, only if the wallet exists.
 * Null when the fingerprint is taken or the wallet does not exist; the caller tells which.
 */
export async function insertPendingTransaction(
  db: CommonQueryMethods,
  transaction: NewTransaction,
): Promise<TransactionRow | null> {
  return db.maybeOne(sql.type(transactionRowSchema)`
    INSERT INTO transactions (wallet_id, amount, fingerprint, labels, description)
    SELECT id, ${transaction.amount}, ${transaction.fingerprint}, ${sql.jsonb(transaction.labels)},
           ${transaction.description}
    FROM wallets WHERE id = ${transaction.walletId}
    ON CONFLICT (fingerprint) DO NOTHING
    RETURNING ${transactionColumns}
  `);
}

export async function findTransactionByFingerprint(
  db: CommonQueryMethods,
  fingerprint: string,
): Promise<TransactionRow | null> {
  return db.maybeOne(sql.type(transactionRowSchema)`
    SELECT ${transactionColumns} FROM transactions WHERE fingerprint = ${fingerprint}
  `);
}

export async function findWalletTransaction(
  db: CommonQueryMethods,
  walletId: number,
  transactionId: string,
): Promise<TransactionRow | null> {
  return db.maybeOne(sql.type(transactionRowSchema)`
    SELECT ${transactionColumns} FROM transactions WHERE id = ${transactionId} AND wallet_id = ${walletId}
  `);
}

export async function findLatestAppliedTransaction(
  db: CommonQueryMethods,
  walletId: number,
): Promise<TransactionRow | null> {
  return db.maybeOne(sql.type(transactionRowSchema)`
    SELECT ${transactionColumns} FROM transactions
    WHERE wallet_id = ${walletId} AND refno IS NOT NULL
    ORDER BY refno DESC LIMIT 1
  `);
}

const pendingEntrySchema = z.object({ id: z.string(), amount: z.string() });

/** The wallet's oldest pending transactions, in reservation order. */
export async function findPendingEntries(
  db: CommonQueryMethods,
  walletId: number,
  limit: number,
): Promise<readonly z.infer<typeof pendingEntrySchema>[]> {
  return db.any(sql.type(pendingEntrySchema)`
    SELECT id, amount::text AS amount FROM transactions
    WHERE wallet_id = ${walletId} AND status = 'pending'
    ORDER BY seq LIMIT ${limit}
  `);
}

/** Records each outcome on its still-pending row; returns how many rows it finalized. */
export async function recordOutcomes(db: CommonQueryMethods, outcomes: readonly Outcome[]): Promise<number> {
  const tuples = outcomes.map((outcome) =>
    outcome.status === 'applied'
      ? [
          outcome.id,
          'applied',
          null,
          outcome.refno,
          centsToDecimal(outcome.oldBalance),
          centsToDecimal(outcome.newBalance),
        ]
      : [outcome.id, 'rejected', outcome.reason, null, null, null],
  );
  const result = await db.query(sql.unsafe`
    UPDATE transactions AS t
    SET status = o.status, reason = o.reason, refno = o.refno,
        oldbalance = o.oldbalance, newbalance = o.newbalance, finalized = now()
    FROM ${sql.unnest(tuples, ['uuid', 'text', 'text', 'int8', 'numeric', 'numeric'])}
      AS o (id, status, reason, refno, oldbalance, newbalance)
    WHERE t.id = o.id AND t.status = 'pending'
  `);
  return result.rowCount;
}

/** Wallets with a transaction pending for longer than `olderThanMs`: candidates for a new apply job. */
export async function findWalletsWithStalePending(
  db: CommonQueryMethods,
  olderThanMs: number,
  limit: number,
): Promise<readonly number[]> {
  return db.anyFirst(sql.type(z.object({ walletId: z.number() }))`
    SELECT DISTINCT wallet_id AS "walletId" FROM transactions
    WHERE status = 'pending' AND created < now() - make_interval(secs => ${olderThanMs / 1000})
    LIMIT ${limit}
  `);
}
