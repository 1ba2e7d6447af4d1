import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { hasAllLabels, whereAll } from '../infra/sql-conditions.js';
import { uuidV7 } from '../infra/uuid7.js';

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

/**
 * What every reserving statement writes besides the rows in its `reserved` CTE: a marker per wallet
 * (the seq range the worker reads its pending transactions from) and one outbox row naming the
 * reserved transactions in reservation order (the relay makes each a TransactionCreated event),
 * with their distinct label sets, which the label search looks up.
 */
const reservationBookkeeping = sql.fragment`
  marked AS (
    INSERT INTO pending_reservations (wallet_id, first_seq, last_seq)
    SELECT wallet_id, min(seq), max(seq) FROM reserved GROUP BY wallet_id
  ), announced AS (
    INSERT INTO outbox (kind, transaction_ids, labels)
    SELECT 'transactions_reserved', array_agg(id ORDER BY seq),
           jsonb_agg(DISTINCT labels) FILTER (WHERE labels <> '{}'::jsonb)
    FROM reserved HAVING count(*) > 0
  )
`;

export interface NewTransaction {
  /** Time-ordered (uuidV7), made by the service; a new one when not given. */
  id?: string;
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
      INSERT INTO transactions (id, wallet_id, amount, fingerprint, labels, description, voids, void_key, trace_context)
      SELECT ${transaction.id ?? uuidV7()}, id, ${transaction.amount}, ${transaction.fingerprint}, ${sql.jsonb(transaction.labels)},
             ${transaction.description}, ${voids}, ${voids}, ${transaction.traceContext ?? null}
      FROM wallets WHERE id = ${transaction.walletId}
      ON CONFLICT (fingerprint) DO NOTHING
      RETURNING *
    ), ${reservationBookkeeping}
    SELECT ${transactionColumns} FROM reserved
  `);
}

/** One row of a reservation group; its `id` (uuidV7) ties the returned row to the request that made it. */
export interface NewPendingTransaction {
  id: string;
  walletId: number;
  amount: string;
  fingerprint: string;
  labels: Record<string, string>;
  description: string | null;
  traceContext: string | null;
}

/**
 * Group commit of reservations: one statement (one round trip, one commit) reserves every
 * fingerprint of the group whose wallet exists, in the group's order (so `seq` keeps arrival
 * order), with the markers and outbox row. A fingerprint taken before, or earlier in the same
 * group, is skipped. It is a plain INSERT, not ON CONFLICT, whose speculative insertion costs a
 * WAL record per row: a fingerprint taken by a concurrent group between the check and the insert
 * fails the statement with a unique violation, and the caller reserves the group one by one.
 */
export async function insertPendingTransactions(
  db: CommonQueryMethods,
  group: readonly NewPendingTransaction[],
): Promise<readonly TransactionRow[]> {
  const tuples = group.map((row, index) => [
    index,
    row.id,
    row.walletId,
    row.amount,
    row.fingerprint,
    JSON.stringify(row.labels),
    row.description,
    row.traceContext,
  ]);
  return db.any(sql.type(transactionRowSchema)`
    WITH input AS (
      SELECT * FROM ${sql.unnest(tuples, ['int4', 'uuid', 'int8', 'numeric', 'text', 'jsonb', 'text', 'text'])}
        AS i (ordinal, id, wallet_id, amount, fingerprint, labels, description, trace_context)
    ), fresh AS (
      SELECT DISTINCT ON (i.fingerprint) i.* FROM input i
      WHERE EXISTS (SELECT 1 FROM wallets w WHERE w.id = i.wallet_id)
        AND NOT EXISTS (SELECT 1 FROM transactions t WHERE t.fingerprint = i.fingerprint)
      ORDER BY i.fingerprint, i.ordinal
    ), reserved AS (
      INSERT INTO transactions (id, wallet_id, amount, fingerprint, labels, description, trace_context)
      SELECT id, wallet_id, amount, fingerprint, labels, description, trace_context FROM fresh ORDER BY ordinal
      RETURNING *
    ), ${reservationBookkeeping}
    SELECT ${transactionColumns} FROM reserved
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

const ledgerLayoutSchema = z.object({ legacyMaxSeq: z.number(), idFloor: z.string() });
export type LedgerLayout = z.infer<typeof ledgerLayoutSchema>;

/**
 * Where the time-ordered ids begin: rows reserved before migration 005 carry random ids and are
 * listed by seq (seq <= legacyMaxSeq, their own partial index); every later row is listed by id,
 * which the service makes time-ordered, so the primary key serves "newest first".
 */
export async function findLedgerLayout(db: CommonQueryMethods): Promise<LedgerLayout> {
  return db.one(sql.type(ledgerLayoutSchema)`
    SELECT legacy_max_seq AS "legacyMaxSeq", id_floor::text AS "idFloor" FROM ledger_layout
  `);
}

/** Time-ordered transactions (reserved since migration 005) matching the filter, newest first. */
export async function findRecentTransactions(
  db: CommonQueryMethods,
  layout: LedgerLayout,
  filter: TransactionFilter & { beforeId: string | null },
): Promise<readonly ListedTransaction[]> {
  const where = whereAll([
    sql.fragment`id >= ${layout.idFloor} AND seq > ${layout.legacyMaxSeq}`,
    ...filterConditions(filter),
    filter.beforeId === null ? null : sql.fragment`id < ${filter.beforeId}`,
  ]);
  return db.any(sql.type(listedTransactionSchema)`
    SELECT ${listedColumns} FROM transactions ${where} ORDER BY id DESC LIMIT ${filter.limit}
  `);
}

/** A place in the outbox's order: a reservation row (its xid and id) and a transaction's place in it. */
export interface ReservationPosition {
  xid: string;
  row: number;
  ordinal: number;
}

const labelledTransactionSchema = listedTransactionSchema.extend({ position: z.string() });
export type LabelledTransaction = z.infer<typeof labelledTransactionSchema>;

/**
 * Transactions of all wallets having all the given labels, newest reservation first, through the
 * outbox rows of their reservations: those whose label sets hold the labels (a GIN lookup when they
 * are rare, a walk down the outbox's order when they are common), then each of their transactions.
 */
export async function findLabelledTransactions(
  db: CommonQueryMethods,
  filter: TransactionFilter & { before: ReservationPosition | null },
): Promise<readonly LabelledTransaction[]> {
  const before =
    filter.before === null
      ? null
      : sql.fragment`(o.xid, o.id, x.ordinal) < (${filter.before.xid}::xid8, ${filter.before.row}, ${filter.before.ordinal})`;
  const candidates = whereAll([
    sql.fragment`o.labels IS NOT NULL AND o.labels @> ${sql.jsonb([filter.labels])}`,
    before,
  ]);
  const where = whereAll(filterConditions(filter));
  return db.any(sql.type(labelledTransactionSchema)`
    SELECT ${listedColumns}, c.xid::text || '.' || c.row || '.' || c.ordinal AS position
    FROM (
      SELECT o.xid, o.id AS row, x.ordinal, x.id AS transaction_id
      FROM outbox o CROSS JOIN LATERAL unnest(o.transaction_ids) WITH ORDINALITY AS x (id, ordinal)
      ${candidates}
    ) c
    JOIN transactions ON transactions.id = c.transaction_id
    ${where}
    ORDER BY c.xid DESC, c.row DESC, c.ordinal DESC LIMIT ${filter.limit}
  `);
}

/** Transactions reserved before migration 005 matching the filter, newest first, before `beforeSeq`. */
export async function findLegacyTransactions(
  db: CommonQueryMethods,
  layout: LedgerLayout,
  filter: TransactionFilter & { beforeSeq: number | null },
): Promise<readonly ListedTransaction[]> {
  const before =
    filter.beforeSeq === null ? layout.legacyMaxSeq + 1 : Math.min(filter.beforeSeq, layout.legacyMaxSeq + 1);
  const where = whereAll([
    sql.fragment`seq <= ${layout.legacyMaxSeq}`,
    ...filterConditions(filter),
    sql.fragment`seq < ${before}`,
  ]);
  return db.any(sql.type(listedTransactionSchema)`
    SELECT ${listedColumns} FROM transactions ${where} ORDER BY seq DESC LIMIT ${filter.limit}
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
    sql.fragment`id IN (
      SELECT t.id FROM pending_reservations m
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

export async function findWalletTransaction(
  db: CommonQueryMethods,
  walletId: number,
  transactionId: string,
): Promise<TransactionRow | null> {
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
