import { sql, type CommonQueryMethods, type FragmentSqlToken } from 'slonik';
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
  /** For a leg of a transfer: the transfer. */
  transferId: z.string().nullable(),
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
  reason, refno, oldbalance::text AS oldbalance, newbalance::text AS newbalance, voids, voided_by AS "voidedBy",
  transfer_id AS "transferId", created
`;

/**
 * What every reserving statement writes besides the rows in its `reserved` CTE: a marker per wallet
 * (the seq range the worker reads its pending transactions from) and one outbox row naming the
 * reserved transactions in reservation order (the relay makes each a TransactionCreated event; it
 * is also the journal that lists and label searches read), with their distinct label sets.
 */
export const reservationBookkeeping = sql.fragment`
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
  /** For the reversal of a transfer's leg: the transfer. */
  transferId?: string;
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
      INSERT INTO transactions (wallet_id, amount, fingerprint, labels, description, voids, void_key, trace_context, transfer_id)
      SELECT id, ${transaction.amount}, ${transaction.fingerprint}, ${sql.jsonb(transaction.labels)},
             ${transaction.description}, ${voids}, ${voids}, ${transaction.traceContext ?? null},
             ${transaction.transferId ?? null}
      FROM wallets WHERE id = ${transaction.walletId}
      ON CONFLICT (fingerprint) DO NOTHING
      RETURNING *
    ), ${reservationBookkeeping}
    SELECT ${transactionColumns} FROM reserved
  `);
}

export type NewPendingTransaction = Omit<NewTransaction, 'voids' | 'traceContext' | 'transferId'> & {
  traceContext: string | null;
};

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
  // Planned per run (unnamed): a plan cached while `transactions` was small checks fingerprints by a
  // scan of the whole table (docs/design.md, "Plans").
  return db.any(sql.type(reservedRowSchema)`
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

/**
 * Most of a wallet's rows one listing request reads when it filters, so that a filter few rows
 * match costs a bounded amount: the page then comes back short, with where the scan stopped to
 * go on from.
 */
export const LISTING_SCAN_BUDGET = 10_000;

/** Rows of a listing, and where its scan stopped short of the end (null when it reached it). */
export interface ScannedRows<T, K> {
  rows: readonly T[];
  resumeBefore: K | null;
}

/**
 * Where a filtered listing goes on from: the oldest seq of its scanned window (`window`, at most
 * `budget` rows with a `seq`, newest first) when the window was full, null when it reached the end.
 */
export async function resumeBeforeWindow(
  db: CommonQueryMethods,
  window: FragmentSqlToken,
  budget: number,
): Promise<number | null> {
  const edge = await db.one(sql.type(z.object({ scanned: z.number(), oldest: z.number().nullable() }))`
    SELECT count(*)::int AS scanned, min(seq) AS oldest FROM (${window}) AS scanned
  `);
  return edge.scanned === budget ? edge.oldest : null;
}

function isFiltered(filter: TransactionFilter): boolean {
  return filter.status !== undefined || Object.keys(filter.labels).length > 0;
}

/**
 * A wallet's transactions matching the filter, newest reservation first, before `beforeSeq` when
 * given: at most `limit`, from at most LISTING_SCAN_BUDGET of the wallet's rows when it filters.
 */
export async function findWalletTransactions(
  db: CommonQueryMethods,
  walletId: number,
  filter: TransactionFilter & { beforeSeq: number | null },
): Promise<ScannedRows<ListedTransaction, number>> {
  const budget = isFiltered(filter) ? LISTING_SCAN_BUDGET : filter.limit;
  const scan = whereAll([
    sql.fragment`wallet_id = ${walletId}`,
    filter.beforeSeq === null ? null : sql.fragment`seq < ${filter.beforeSeq}`,
  ]);
  const rows = await db.any(sql.type(listedTransactionSchema)`
    SELECT ${listedColumns}
    FROM (SELECT * FROM transactions ${scan} ORDER BY seq DESC LIMIT ${budget}) AS scanned
    ${whereAll(filterConditions(filter))}
    ORDER BY seq DESC LIMIT ${filter.limit}
  `);
  if (rows.length === filter.limit || budget === filter.limit) return { rows, resumeBefore: null };
  const window = sql.fragment`SELECT seq FROM transactions ${scan} ORDER BY seq DESC LIMIT ${budget}`;
  return { rows, resumeBefore: await resumeBeforeWindow(db, window, budget) };
}

/** A place in the journal's order: a reservation row (its xid and id) and a transaction's place in it. */
export interface JournalPosition {
  xid: string;
  row: number;
  ordinal: number;
}

const journalTransactionSchema = listedTransactionSchema.extend({ position: z.string() });
export type JournalTransaction = z.infer<typeof journalTransactionSchema>;

/** Journal rows a labelled listing checks in order before it asks the labels index for older ones. */
const RECENT_JOURNAL_ROWS = 200;

/**
 * Most transactions one filtering listing of all wallets looks up by key (each a few buffers of
 * the primary key and the heap, about 10 µs warm): its bound on one request's work.
 */
export const JOURNAL_LOOKUP_BUDGET = 5_000;

/**
 * Transactions of all wallets matching the filter, newest reservation first, through the journal
 * (the outbox rows of reservations, kept for good) and each of its transactions by key, walking
 * the journal down its primary key. With labels, the journal rows whose label sets hold them:
 * among the newest RECENT_JOURNAL_ROWS by that walk (a common label fills the page there), and
 * only if those are not enough, older ones through the GIN index `outbox_labels` (a rare label:
 * few rows to sort). Each such row holds at least one match, so `limit + 1` rows are enough; with
 * a status, up to 1,000 rows. At most JOURNAL_LOOKUP_BUDGET transactions are looked up when it
 * filters (unfiltered, only as many as the page takes): a filter few rows match answers a short
 * page, with the journal row it stopped at.
 */
export async function findJournalTransactions(
  db: CommonQueryMethods,
  filter: TransactionFilter & { before: JournalPosition | null },
): Promise<ScannedRows<JournalTransaction, JournalPosition>> {
  const { before } = filter;
  const labels = Object.keys(filter.labels).length > 0 ? sql.jsonb([filter.labels]) : null;
  const rowBudget = filter.status === undefined ? filter.limit + 1 : 1000;
  const seqBudget = isFiltered(filter) ? JOURNAL_LOOKUP_BUDGET : filter.limit;
  const reservations = sql.fragment`o.kind IN ('transactions_reserved', 'journal')`;
  const beforeCursor =
    before === null
      ? sql.fragment`true`
      : before.ordinal === 0 // that row was read whole
        ? sql.fragment`(o.xid, o.id) < (${before.xid}::xid8, ${before.row})`
        : sql.fragment`(o.xid, o.id) <= (${before.xid}::xid8, ${before.row})`;
  const journalRows =
    labels === null
      ? sql.fragment`
        SELECT o.xid, o.id, o.wallet_ids, o.seqs FROM outbox o WHERE ${reservations} AND ${beforeCursor}
        ORDER BY o.xid DESC, o.id DESC LIMIT ${rowBudget}`
      : sql.fragment`
        WITH recent AS MATERIALIZED (
          SELECT o.xid, o.id, o.wallet_ids, o.seqs, o.labels FROM outbox o WHERE ${reservations} AND ${beforeCursor}
          ORDER BY o.xid DESC, o.id DESC LIMIT ${RECENT_JOURNAL_ROWS}
        )
        SELECT xid, id, wallet_ids, seqs FROM recent WHERE labels IS NOT NULL AND labels @> ${labels}
        UNION ALL
        (SELECT o.xid, o.id, o.wallet_ids, o.seqs FROM outbox o
         WHERE ${reservations} AND o.labels IS NOT NULL AND o.labels @> ${labels}
           AND (SELECT count(*) FROM recent) = ${RECENT_JOURNAL_ROWS}
           AND (SELECT count(*) FROM recent WHERE labels @> ${labels}) < ${rowBudget}
           AND (o.xid, o.id) < (SELECT r.xid, r.id FROM recent r ORDER BY r.xid, r.id LIMIT 1)
         ORDER BY o.xid DESC, o.id DESC LIMIT ${rowBudget})
        ORDER BY xid DESC, id DESC LIMIT ${rowBudget}`;
  // The journal rows to read, newest first, each with how many transactions the ones before it
  // may answer (of the cursor's row, only those before the cursor).
  const candidates =
    before === null
      ? sql.fragment`cardinality(j.seqs)`
      : sql.fragment`CASE WHEN (j.xid, j.id) = (${before.xid}::xid8, ${before.row})
                          THEN least(cardinality(j.seqs), ${before.ordinal} - 1) ELSE cardinality(j.seqs) END`;
  const scanned = sql.fragment`
    SELECT j.xid, j.id AS row, j.wallet_ids, j.seqs,
           sum(${candidates}) OVER (ORDER BY j.xid DESC, j.id DESC ROWS UNBOUNDED PRECEDING) - ${candidates} AS seqs_before
    FROM (${journalRows}) j
  `;
  const where = whereAll([
    ...filterConditions(filter),
    before === null
      ? null
      : sql.fragment`(c.xid, c.row, c.ordinal) < (${before.xid}::xid8, ${before.row}, ${before.ordinal})`,
  ]);
  const rows = await db.any(sql.type(journalTransactionSchema)`
    SELECT ${listedColumns}, c.xid::text || '.' || c.row || '.' || c.ordinal AS position
    FROM (
      SELECT s.xid, s.row, x.ordinal, x.wallet_id, x.seq
      FROM (${scanned}) s CROSS JOIN LATERAL unnest(s.wallet_ids, s.seqs) WITH ORDINALITY AS x (wallet_id, seq, ordinal)
      WHERE s.seqs_before < ${seqBudget}
    ) c
    JOIN transactions USING (wallet_id, seq)
    ${where}
    ORDER BY c.xid DESC, c.row DESC, c.ordinal DESC LIMIT ${filter.limit}
  `);
  if (rows.length === filter.limit || !isFiltered(filter)) return { rows, resumeBefore: null };
  // A short page: did the scan stop at its budget, and at which journal row?
  const edge = await db.maybeOne(sql.type(z.object({ xid: z.string(), row: z.number() }))`
    WITH s AS (${scanned})
    SELECT kept.xid::text AS xid, kept.row
    FROM (SELECT xid, row FROM s WHERE seqs_before < ${seqBudget} ORDER BY xid, row LIMIT 1) kept
    WHERE (SELECT count(*) FROM s) = ${rowBudget} OR EXISTS (SELECT 1 FROM s WHERE seqs_before >= ${seqBudget})
  `);
  // Ordinals start at 1: ordinal 0 of a row is before every transaction it names.
  return { rows, resumeBefore: edge === null ? null : { xid: edge.xid, row: edge.row, ordinal: 0 } };
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

/** How many of a wallet's newest rows the latest-applied lookup reads before it searches them all. */
const LATEST_APPLIED_WALK = 1_000;

/**
 * The wallet's applied transaction with the highest refno (`last_refno`). No index holds refnos
 * (migration 005), and refno follows reservation order closely, so it walks the wallet's newest
 * rows by its key first; only when they are all later (a run of rejections or pending rows) does
 * it search the wallet's older rows. Left to itself, the planner filtered every row of the wallet
 * (110 ms at 1,000,000).
 */
export async function findLatestAppliedTransaction(
  db: CommonQueryMethods,
  walletId: number,
): Promise<TransactionRow | null> {
  // A refno names one applied row of a wallet, so the two branches never both find one; the
  // second runs only when the first finds none among the newest rows.
  return db.maybeOne(sql.type(transactionRowSchema)`
    WITH target AS (SELECT w.last_refno FROM wallets w WHERE w.id = ${walletId})
    (SELECT ${transactionColumns}
     FROM (SELECT * FROM transactions WHERE wallet_id = ${walletId} ORDER BY seq DESC LIMIT ${LATEST_APPLIED_WALK}) AS newest
     WHERE refno = (SELECT last_refno FROM target))
    UNION ALL
    (SELECT ${transactionColumns} FROM transactions
     WHERE wallet_id = ${walletId} AND refno = (SELECT last_refno FROM target)
       AND seq < (SELECT seq FROM transactions WHERE wallet_id = ${walletId}
                  ORDER BY seq DESC OFFSET ${LATEST_APPLIED_WALK - 1} LIMIT 1))
    LIMIT 1
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
