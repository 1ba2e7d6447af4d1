import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { hasAllLabels, whereAll } from '../infra/sql-conditions.js';
import { transactionKeyOf } from './transaction-ids.js';

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

/**
 * A row's id: stored for rows reserved before migration 005, computed from the key (wallet_id,
 * seq) for every later one (see transaction-ids.ts).
 */
const idColumn = sql.fragment`coalesce(id, transaction_id(wallet_id, seq))`;

const transactionColumns = sql.fragment`
  ${idColumn} AS id, wallet_id AS "walletId", amount::text AS amount, fingerprint, labels, description, status,
  reason, refno, oldbalance::text AS oldbalance, newbalance::text AS newbalance, voids, voided_by AS "voidedBy", created
`;

/**
 * What every reserving statement writes besides the rows in its `reserved` CTE: a marker per wallet
 * (the seq range the worker reads its pending transactions from) and one outbox row naming the
 * reserved transactions in reservation order (the relay makes each a TransactionCreated event; it
 * is also the journal that lists and label searches read), with their distinct label sets.
 */
const reservationBookkeeping = sql.fragment`
  marked AS (
    INSERT INTO pending_reservations (wallet_id, first_seq, last_seq)
    SELECT wallet_id, min(seq), max(seq) FROM reserved GROUP BY wallet_id
  ), announced AS (
    INSERT INTO outbox (kind, wallet_ids, seqs, labels)
    SELECT 'transactions_reserved', array_agg(wallet_id ORDER BY seq), array_agg(seq ORDER BY seq),
           jsonb_agg(DISTINCT labels) FILTER (WHERE labels <> '{}'::jsonb)
    FROM reserved HAVING count(*) > 0
  )
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
 * Reserves the fingerprint with a pending row, only if the wallet exists, with its marker and its
 * outbox row in the same statement (so in the same database transaction). Null when the
 * fingerprint is taken or the wallet does not exist; the caller tells which.
 */
export async function insertPendingTransaction(
  db: CommonQueryMethods,
  transaction: NewTransaction,
): Promise<TransactionRow | null> {
  const voids = transaction.voids ?? null;
  return db.maybeOne(sql.type(transactionRowSchema)`
    WITH reserved AS (
      INSERT INTO transactions (wallet_id, amount, fingerprint, labels, description, voids, void_key, trace_context)
      SELECT id, ${transaction.amount}, ${transaction.fingerprint}, ${sql.jsonb(transaction.labels)},
             ${transaction.description}, ${voids}, ${voids}, ${transaction.traceContext ?? null}
      FROM wallets WHERE id = ${transaction.walletId}
      ON CONFLICT (fingerprint) DO NOTHING
      RETURNING *
    ), ${reservationBookkeeping}
    SELECT ${transactionColumns} FROM reserved
  `);
}

export type NewPendingTransaction = Omit<NewTransaction, 'voids' | 'traceContext'> & { traceContext: string | null };

const reservedRowSchema = transactionRowSchema.extend({ ordinal: z.number() });

/**
 * Group commit of reservations: one statement (one round trip, one commit) reserves every
 * fingerprint of the group whose wallet exists, in the group's order (so `seq` keeps arrival
 * order), with the markers and outbox row. A fingerprint taken before, or earlier in the same
 * group, is skipped. It is a plain INSERT, not ON CONFLICT, whose speculative insertion costs a
 * WAL record per row: a fingerprint taken by a concurrent group between the check and the insert
 * fails the statement with a unique violation, and the caller runs it again. Returns the rows it
 * reserved, each with the position (`ordinal`) of the request that made it.
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
  return db.any(sql.prepared('wallet_reserve_group', reservedRowSchema)`
    WITH input AS (
      SELECT * FROM ${sql.unnest(tuples, ['int4', 'int8', 'numeric', 'text', 'jsonb', 'text', 'text'])}
        AS i (ordinal, wallet_id, amount, fingerprint, labels, description, trace_context)
    ), fresh AS (
      SELECT DISTINCT ON (i.fingerprint) i.* FROM input i
      WHERE EXISTS (SELECT 1 FROM wallets w WHERE w.id = i.wallet_id)
        AND NOT EXISTS (SELECT 1 FROM transactions t WHERE t.fingerprint = i.fingerprint)
      ORDER BY i.fingerprint, i.ordinal
    ), reserved AS (
      INSERT INTO transactions (wallet_id, amount, fingerprint, labels, description, trace_context)
      SELECT wallet_id, amount, fingerprint, labels, description, trace_context FROM fresh ORDER BY ordinal
      RETURNING *
    ), ${reservationBookkeeping}
    SELECT ${transactionColumns}, ordinal FROM (SELECT reserved.*, fresh.ordinal FROM reserved JOIN fresh USING (fingerprint)) r
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
  status?: TransactionStatus;
  labels: Record<string, string>;
  limit: number;
}

const listedTransactionSchema = transactionRowSchema.extend({ seq: z.number() });
export type ListedTransaction = z.infer<typeof listedTransactionSchema>;

const listedColumns = sql.fragment`${transactionColumns}, seq`;

function filterConditions(filter: TransactionFilter) {
  return [filter.status === undefined ? null : sql.fragment`status = ${filter.status}`, hasAllLabels(filter.labels)];
}

/** A wallet's transactions matching the filter, newest reservation first, before `beforeSeq` when given. */
export async function findWalletTransactions(
  db: CommonQueryMethods,
  walletId: number,
  filter: TransactionFilter & { beforeSeq: number | null },
): Promise<readonly ListedTransaction[]> {
  const where = whereAll([
    sql.fragment`wallet_id = ${walletId}`,
    ...filterConditions(filter),
    filter.beforeSeq === null ? null : sql.fragment`seq < ${filter.beforeSeq}`,
  ]);
  return db.any(sql.type(listedTransactionSchema)`
    SELECT ${listedColumns} FROM transactions ${where} ORDER BY seq DESC LIMIT ${filter.limit}
  `);
}

/** A place in the journal's order: a reservation row (its xid and id) and a transaction's place in it. */
export interface JournalPosition {
  xid: string;
  row: number;
  ordinal: number;
}

const journalTransactionSchema = listedTransactionSchema.extend({ position: z.string() });
export type JournalTransaction = z.infer<typeof journalTransactionSchema>;

/**
 * Transactions of all wallets matching the filter, newest reservation first, through the journal
 * (the outbox rows of reservations, kept for good) and each of its transactions by key. With
 * labels, only the journal rows whose label sets hold them (a GIN lookup when the labels are rare,
 * the walk down the journal's order when they are common: the planner picks).
 */
export async function findJournalTransactions(
  db: CommonQueryMethods,
  filter: TransactionFilter & { before: JournalPosition | null },
): Promise<readonly JournalTransaction[]> {
  const labelled = Object.keys(filter.labels).length > 0;
  const journal = whereAll([
    sql.fragment`o.kind IN ('transactions_reserved', 'journal')`,
    labelled ? sql.fragment`o.labels IS NOT NULL AND o.labels @> ${sql.jsonb([filter.labels])}` : null,
    filter.before === null ? null : sql.fragment`(o.xid, o.id) <= (${filter.before.xid}::xid8, ${filter.before.row})`,
  ]);
  const where = whereAll([
    ...filterConditions(filter),
    filter.before === null
      ? null
      : sql.fragment`(c.xid, c.row, c.ordinal) < (${filter.before.xid}::xid8, ${filter.before.row}, ${filter.before.ordinal})`,
  ]);
  return db.any(sql.type(journalTransactionSchema)`
    SELECT ${listedColumns}, c.xid::text || '.' || c.row || '.' || c.ordinal AS position
    FROM (
      SELECT o.xid, o.id AS row, x.ordinal, x.wallet_id, x.seq
      FROM outbox o CROSS JOIN LATERAL unnest(o.wallet_ids, o.seqs) WITH ORDINALITY AS x (wallet_id, seq, ordinal)
      ${journal}
    ) c
    JOIN transactions USING (wallet_id, seq)
    ${where}
    ORDER BY c.xid DESC, c.row DESC, c.ordinal DESC LIMIT ${filter.limit}
  `);
}

/**
 * Pending transactions of all wallets matching the labels, newest reservation first: read through
 * the markers (pending work is small) instead of walking every row for the few still pending.
 */
export async function findPendingTransactions(
  db: CommonQueryMethods,
  filter: Omit<TransactionFilter, 'status'> & { beforeSeq: number | null },
): Promise<readonly ListedTransaction[]> {
  const where = whereAll([
    sql.fragment`(wallet_id, seq) IN (
      SELECT t.wallet_id, t.seq FROM pending_reservations m
      JOIN transactions t ON t.wallet_id = m.wallet_id AND t.seq BETWEEN m.first_seq AND m.last_seq
      WHERE t.status = 'pending'
    )`,
    hasAllLabels(filter.labels),
    filter.beforeSeq === null ? null : sql.fragment`seq < ${filter.beforeSeq}`,
  ]);
  return db.any(sql.type(listedTransactionSchema)`
    SELECT ${listedColumns} FROM transactions ${where} ORDER BY seq DESC LIMIT ${filter.limit}
  `);
}

/** The live (pending or applied) reversal of a transaction, if any. */
export async function findVoidOf(db: CommonQueryMethods, originalId: string): Promise<TransactionRow | null> {
  return db.maybeOne(sql.type(transactionRowSchema)`
    SELECT ${transactionColumns} FROM transactions WHERE void_key = ${originalId}
  `);
}

/** A wallet's transaction by id: by its key when the id was computed from one, else by its stored id. */
export async function findWalletTransaction(
  db: CommonQueryMethods,
  walletId: number,
  transactionId: string,
): Promise<TransactionRow | null> {
  const key = transactionKeyOf(transactionId);
  if (key) {
    if (key.walletId !== walletId) return null;
    return db.maybeOne(sql.type(transactionRowSchema)`
      SELECT ${transactionColumns} FROM transactions WHERE wallet_id = ${walletId} AND seq = ${key.seq} AND id IS NULL
    `);
  }
  return db.maybeOne(sql.type(transactionRowSchema)`
    SELECT ${transactionColumns} FROM transactions WHERE id = ${transactionId} AND wallet_id = ${walletId}
  `);
}

/**
 * The wallet's applied transaction with the highest refno (`last_refno`), found by walking the
 * wallet's rows newest first: refno follows reservation order closely, so it is among the first.
 */
export async function findLatestAppliedTransaction(
  db: CommonQueryMethods,
  walletId: number,
): Promise<TransactionRow | null> {
  return db.maybeOne(sql.type(transactionRowSchema)`
    SELECT ${transactionColumns} FROM transactions t
    WHERE t.wallet_id = ${walletId} AND t.refno = (SELECT w.last_refno FROM wallets w WHERE w.id = ${walletId})
    ORDER BY t.seq DESC LIMIT 1
  `);
}

/**
 * Wallets with a transaction pending for longer than `olderThanMs` (by their markers): candidates
 * for a new apply job. Round-robin by wallet id from `afterWalletId` (wrapping to the lowest id),
 * so wallets that stay stuck cannot hold the first `limit` places forever: with N stale wallets
 * each is returned within ceil(N / limit) calls.
 */
export async function findWalletsWithStalePending(
  db: CommonQueryMethods,
  olderThanMs: number,
  limit: number,
  afterWalletId = 0,
): Promise<readonly number[]> {
  return db.anyFirst(sql.type(z.object({ walletId: z.number() }))`
    SELECT wallet_id AS "walletId" FROM pending_reservations
    WHERE wallet_id > 0 AND created < now() - make_interval(secs => ${olderThanMs / 1000})
    GROUP BY wallet_id
    ORDER BY wallet_id <= ${afterWalletId}, wallet_id
    LIMIT ${limit}
  `);
}
