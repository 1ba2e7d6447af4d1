import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import type { Outcome } from '../ledger/ledger.js';
import { centsToDecimal } from '../ledger/money.js';
import { hasAllLabels, whereAll } from '../infra/sql-conditions.js';

/** Data access for the transactions table. */

export const transactionStatusSchema = z.enum(['pending', 'applied', 'rejected', 'voided']);
export type TransactionStatus = z.infer<typeof transactionStatusSchema>;

export const transactionRowSchema = z.object({
  id: z.string(),
  walletId: z.number(),
  amount: z.string(),
  fingerprint: z.string(),
  labels: z.record(z.string(), z.string()),
  description: z.string().nullable(),
  status: transactionStatusSchema,
  reason: z.string().nullable(),
  refno: z.number().nullable(),
  oldbalance: z.string().nullable(),
  newbalance: z.string().nullable(),
  voids: z.string().nullable(),
  voidedBy: z.string().nullable(),
  created: z.string(),
});
export type TransactionRow = z.infer<typeof transactionRowSchema>;

const transactionColumns = sql.fragment`
  id, wallet_id AS "walletId", amount::text AS amount, fingerprint, labels, description, status, reason,
  refno, oldbalance::text AS oldbalance, newbalance::text AS newbalance, voids, voided_by AS "voidedBy", created
`;

/** The TransactionCreated event of every row in a `reserved` CTE, in reservation order (an outbox insert). */
const transactionCreatedEvents = sql.fragment`
  INSERT INTO outbox_events (wallet_id, type, subject, data)
  SELECT wallet_id, 'TransactionCreated', id::text, jsonb_build_object(
    'id', id, 'walletId', wallet_id, 'amount', amount, 'fingerprint', fingerprint, 'labels', labels,
    'description', description, 'status', status, 'voids', voids, 'created', created)
  FROM reserved ORDER BY seq
`;

export interface NewTransaction {
  walletId: number;
  amount: string;
  fingerprint: string;
  labels: Record<string, string>;
  description: string | null;
  /** For a reversal: the id of the transaction it voids. */
  voids?: string;
  /** W3C traceparent of the reserving request, so the worker can link its apply span to it. */
  traceContext?: string | null;
}

/**
 * Reserves the fingerprint with a pending row, only if the wallet exists, and records the
 * TransactionCreated event in the same statement (so in the same database transaction).
 * Null when the fingerprint is taken or the wallet does not exist; the caller tells which.
 */
export async function insertPendingTransaction(
  db: CommonQueryMethods,
  transaction: NewTransaction,
): Promise<TransactionRow | null> {
  return db.maybeOne(sql.type(transactionRowSchema)`
    WITH reserved AS (
      INSERT INTO transactions (wallet_id, amount, fingerprint, labels, description, voids, trace_context)
      SELECT id, ${transaction.amount}, ${transaction.fingerprint}, ${sql.jsonb(transaction.labels)},
             ${transaction.description}, ${transaction.voids ?? null}, ${transaction.traceContext ?? null}
      FROM wallets WHERE id = ${transaction.walletId}
      ON CONFLICT (fingerprint) DO NOTHING
      RETURNING *
    ), created_event AS (${transactionCreatedEvents})
    SELECT ${transactionColumns} FROM reserved
  `);
}

/** One row of a reservation group; `ordinal` ties each returned row to the request that made it. */
export interface NewPendingTransaction {
  walletId: number;
  amount: string;
  fingerprint: string;
  labels: Record<string, string>;
  description: string | null;
  traceContext: string | null;
}

const reservedRowSchema = transactionRowSchema.extend({ ordinal: z.number() });

/**
 * Group commit of reservations: one statement (one round trip, one commit) reserves every
 * fingerprint of the group whose wallet exists, in the group's order (so `seq` keeps arrival
 * order), with each TransactionCreated event. A fingerprint taken before, or earlier in the same
 * group, is skipped. Returns the rows it reserved, each with the position of its request.
 */
export async function insertPendingTransactions(
  db: CommonQueryMethods,
  group: readonly NewPendingTransaction[],
): Promise<readonly z.infer<typeof reservedRowSchema>[]> {
  const tuples = group.map((row, index) => [
    index,
    row.walletId,
    row.amount,
    row.fingerprint,
    JSON.stringify(row.labels),
    row.description,
    row.traceContext,
  ]);
  return db.any(sql.type(reservedRowSchema)`
    WITH input AS (
      SELECT * FROM ${sql.unnest(tuples, ['int4', 'int8', 'numeric', 'text', 'jsonb', 'text', 'text'])}
        AS i (ordinal, wallet_id, amount, fingerprint, labels, description, trace_context)
    ), reserved AS (
      INSERT INTO transactions (wallet_id, amount, fingerprint, labels, description, trace_context)
      SELECT i.wallet_id, i.amount, i.fingerprint, i.labels, i.description, i.trace_context
      FROM input i JOIN wallets w ON w.id = i.wallet_id
      ORDER BY i.ordinal
      ON CONFLICT (fingerprint) DO NOTHING
      RETURNING *
    ), created_event AS (${transactionCreatedEvents})
    SELECT ${transactionColumns}, (
      SELECT min(i.ordinal) FROM input i WHERE i.fingerprint = reserved.fingerprint AND i.wallet_id = reserved.wallet_id
    ) AS ordinal
    FROM reserved
  `);
}

/** The transactions holding any of `fingerprints`. */
export async function findTransactionsByFingerprints(
  db: CommonQueryMethods,
  fingerprints: readonly string[],
): Promise<readonly TransactionRow[]> {
  return db.any(sql.type(transactionRowSchema)`
    SELECT ${transactionColumns} FROM transactions WHERE fingerprint = ANY(${sql.array(fingerprints, 'text')})
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

export interface TransactionFilter {
  walletId?: number;
  status?: TransactionStatus;
  labels: Record<string, string>;
  /** Only transactions reserved before this one (its seq): the page after a cursor. */
  beforeSeq: number | null;
  limit: number;
}

const listedTransactionSchema = transactionRowSchema.extend({ seq: z.number() });
export type ListedTransaction = z.infer<typeof listedTransactionSchema>;

/** Transactions matching the filter, newest reservation first. */
export async function findTransactions(
  db: CommonQueryMethods,
  filter: TransactionFilter,
): Promise<readonly ListedTransaction[]> {
  const where = whereAll([
    filter.walletId === undefined ? null : sql.fragment`wallet_id = ${filter.walletId}`,
    filter.status === undefined ? null : sql.fragment`status = ${filter.status}`,
    hasAllLabels(filter.labels),
    filter.beforeSeq === null ? null : sql.fragment`seq < ${filter.beforeSeq}`,
  ]);
  return db.any(sql.type(listedTransactionSchema)`
    SELECT ${transactionColumns}, seq FROM transactions ${where} ORDER BY seq DESC LIMIT ${filter.limit}
  `);
}

/** The live (pending or applied) reversal of a transaction, if any. */
export async function findVoidOf(db: CommonQueryMethods, originalId: string): Promise<TransactionRow | null> {
  return db.maybeOne(sql.type(transactionRowSchema)`
    SELECT ${transactionColumns} FROM transactions WHERE voids = ${originalId} AND status IN ('pending', 'applied')
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

const pendingEntrySchema = z.object({
  id: z.string(),
  walletId: z.number(),
  amount: z.string(),
  voids: z.string().nullable(),
  originalStillApplied: z.boolean().nullable(),
  traceContext: z.string().nullable(),
  /** Seconds since it was reserved, by the database clock (for the end-to-end latency metric). */
  ageSeconds: z.number(),
});

/**
 * Each wallet's oldest pending transactions (at most `limitPerWallet`), in reservation order;
 * reversals with their original's state. One index range scan per wallet.
 */
export async function findPendingEntries(
  db: CommonQueryMethods,
  walletIds: readonly number[],
  limitPerWallet: number,
): Promise<readonly z.infer<typeof pendingEntrySchema>[]> {
  return db.any(sql.type(pendingEntrySchema)`
    SELECT p.* FROM unnest(${sql.array(walletIds, 'int8')}) AS w (id)
    CROSS JOIN LATERAL (
      SELECT t.id, t.wallet_id AS "walletId", t.amount::text AS amount, t.voids,
             original.status = 'applied' AS "originalStillApplied", t.trace_context AS "traceContext",
             extract(epoch FROM clock_timestamp() - t.created)::float8 AS "ageSeconds"
      FROM transactions t
      LEFT JOIN transactions original ON original.id = t.voids
      WHERE t.wallet_id = w.id AND t.status = 'pending'
      ORDER BY t.seq LIMIT ${limitPerWallet}
    ) AS p
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

/** Marks the originals of applied reversals voided; returns how many it marked. */
export async function markOriginalsVoided(
  db: CommonQueryMethods,
  reversals: readonly { reversalId: string; originalId: string }[],
): Promise<number> {
  if (reversals.length === 0) return 0;
  const result = await db.query(sql.unsafe`
    UPDATE transactions AS t SET status = 'voided', voided_by = r.reversal_id
    FROM ${sql.unnest(
      reversals.map((reversal) => [reversal.reversalId, reversal.originalId]),
      ['uuid', 'uuid'],
    )} AS r (reversal_id, original_id)
    WHERE t.id = r.original_id AND t.status = 'applied'
  `);
  return result.rowCount;
}

/**
 * Records what a batch did as events, in the order it did it: BalanceChanged (and TransactionVoid
 * for a reversal) per applied transaction, TransactionRejected per rejected one.
 */
export async function appendOutcomeEvents(db: CommonQueryMethods, transactionIds: readonly string[]): Promise<void> {
  await db.query(sql.unsafe`
    INSERT INTO outbox_events (wallet_id, type, subject, data)
    SELECT wallet_id, type, subject, data FROM (
      SELECT t.seq, 0 AS step, t.wallet_id, t.id::text AS subject,
        CASE WHEN t.status = 'rejected' THEN 'TransactionRejected' ELSE 'BalanceChanged' END AS type,
        CASE WHEN t.status = 'rejected'
          THEN jsonb_build_object('walletId', t.wallet_id, 'transactionId', t.id, 'amount', t.amount, 'reason', t.reason)
          ELSE jsonb_build_object('walletId', t.wallet_id, 'transactionId', t.id, 'refno', t.refno, 'amount', t.amount,
                                  'oldbalance', t.oldbalance, 'newbalance', t.newbalance)
        END AS data
      FROM transactions t WHERE t.id = ANY(${sql.array(transactionIds, 'uuid')})
      UNION ALL
      SELECT t.seq, 1, t.wallet_id, t.voids::text, 'TransactionVoid',
        jsonb_build_object('walletId', t.wallet_id, 'transactionId', t.voids, 'reversalId', t.id, 'amount', t.amount)
      FROM transactions t
      WHERE t.id = ANY(${sql.array(transactionIds, 'uuid')}) AND t.voids IS NOT NULL AND t.status = 'applied'
    ) AS events
    ORDER BY seq, step
  `);
}

/**
 * Wallets with a transaction pending for longer than `olderThanMs`: candidates for a new apply job.
 * Round-robin by wallet id from `afterWalletId` (wrapping to the lowest id), so wallets that stay
 * stuck cannot hold the first `limit` places forever: with N stale wallets each is returned within
 * ceil(N / limit) calls.
 */
export async function findWalletsWithStalePending(
  db: CommonQueryMethods,
  olderThanMs: number,
  limit: number,
  afterWalletId = 0,
): Promise<readonly number[]> {
  return db.anyFirst(sql.type(z.object({ walletId: z.number() }))`
    SELECT wallet_id AS "walletId" FROM transactions
    WHERE status = 'pending' AND created < now() - make_interval(secs => ${olderThanMs / 1000})
    GROUP BY wallet_id
    ORDER BY wallet_id <= ${afterWalletId}, wallet_id
    LIMIT ${limit}
  `);
}
