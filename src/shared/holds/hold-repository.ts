import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { LISTING_SCAN_BUDGET, resumeBeforeWindow, type ScannedRows } from '../transactions/transaction-repository.js';

/**
 * Data access for holds (migration 008). A hold is decided through its wallet's queue (the apply
 * statement writes `active` or `rejected` and keeps the wallet's `held`); capture, release and
 * expiry each flip an active hold once, by a conditional update, so exactly one of them wins.
 */

export const holdStatusSchema = z.enum(['pending', 'active', 'rejected', 'captured', 'released', 'expired']);
export type HoldStatus = z.infer<typeof holdStatusSchema>;

export const holdRowSchema = z.object({
  id: z.string(),
  walletId: z.number(),
  seq: z.number(),
  fingerprint: z.string(),
  amount: z.string(),
  status: holdStatusSchema,
  reason: z.string().nullable(),
  labels: z.record(z.string(), z.string()),
  description: z.string().nullable(),
  expiresAt: z.string(),
  capturedAmount: z.string().nullable(),
  /** The capture's debit (a transaction of the wallet), once captured. */
  captureTransactionId: z.string().nullable(),
  /** The capture debit's fingerprint, once captured (a replay of the capture is matched by it). */
  captureFingerprint: z.string().nullable(),
  /** The fingerprint the release was made with, if any (a replay of the release is matched by it). */
  releaseFingerprint: z.string().nullable(),
  /** Whether the wallet's `held` still counts it. */
  heldReleased: z.boolean(),
  created: z.string(),
  decided: z.string().nullable(),
});
export type HoldRow = z.infer<typeof holdRowSchema>;

const holdColumns = sql.fragment`
  h.id, h.wallet_id AS "walletId", h.seq, h.fingerprint, h.amount::text AS amount, h.status, h.reason,
  h.labels, h.description, h.expires_at AS "expiresAt", h.captured_amount::text AS "capturedAmount",
  CASE WHEN h.capture_seq IS NOT NULL THEN transaction_id(h.wallet_id, h.capture_seq) END AS "captureTransactionId",
  (SELECT t.fingerprint FROM transactions t WHERE h.capture_seq IS NOT NULL AND t.wallet_id = h.wallet_id
     AND t.seq = h.capture_seq) AS "captureFingerprint",
  h.release_fingerprint AS "releaseFingerprint", h.held_released AS "heldReleased", h.created, h.decided
`;

export interface NewHold {
  walletId: number;
  fingerprint: string;
  /** Positive exact decimal text. */
  amount: string;
  labels: Record<string, string>;
  description: string | null;
  expiresInSeconds: number;
}

/**
 * Reserves a pending hold of an existing wallet; its seq comes from the transactions' sequence, so
 * the wallet's queue decides it in order with its transactions. Null when the fingerprint is taken
 * or the wallet is missing.
 */
export async function insertHold(db: CommonQueryMethods, hold: NewHold): Promise<HoldRow | null> {
  return db.maybeOne(sql.type(holdRowSchema)`
    WITH h AS (
      INSERT INTO holds (wallet_id, seq, fingerprint, amount, labels, description, expires_at)
      SELECT id, nextval(pg_get_serial_sequence('transactions', 'seq')), ${hold.fingerprint}, ${hold.amount}::numeric,
             ${sql.jsonb(hold.labels)}, ${hold.description}, now() + make_interval(secs => ${hold.expiresInSeconds})
      FROM wallets WHERE id = ${hold.walletId}
      ON CONFLICT (fingerprint) DO NOTHING
      RETURNING *
    )
    SELECT ${holdColumns} FROM h
  `);
}

export async function findHold(db: CommonQueryMethods, walletId: number, id: string): Promise<HoldRow | null> {
  return db.maybeOne(
    sql.type(holdRowSchema)`SELECT ${holdColumns} FROM holds h WHERE h.id = ${id} AND h.wallet_id = ${walletId}`,
  );
}

export async function findHoldByFingerprint(db: CommonQueryMethods, fingerprint: string): Promise<HoldRow | null> {
  return db.maybeOne(sql.type(holdRowSchema)`SELECT ${holdColumns} FROM holds h WHERE h.fingerprint = ${fingerprint}`);
}

/**
 * A wallet's holds, newest first, optionally of one status, before `beforeSeq` when given: at most
 * `limit`, from at most LISTING_SCAN_BUDGET of the wallet's holds when it filters by status (as
 * the transaction listings), so a status few holds have costs a bounded amount; the page then
 * comes back short, with where the scan stopped to go on from.
 */
export async function findWalletHolds(
  db: CommonQueryMethods,
  walletId: number,
  filter: { status: HoldStatus | null; beforeSeq: number | null; limit: number },
): Promise<ScannedRows<HoldRow, number>> {
  const budget = filter.status === null ? filter.limit : LISTING_SCAN_BUDGET;
  const status = filter.status === null ? sql.fragment`true` : sql.fragment`h.status = ${filter.status}`;
  const before = filter.beforeSeq === null ? sql.fragment`true` : sql.fragment`seq < ${filter.beforeSeq}`;
  const scanned = sql.fragment`
    SELECT * FROM holds WHERE wallet_id = ${walletId} AND ${before} ORDER BY seq DESC LIMIT ${budget}
  `;
  const rows = await db.any(sql.type(holdRowSchema)`
    SELECT ${holdColumns} FROM (${scanned}) h
    WHERE ${status}
    ORDER BY h.seq DESC LIMIT ${filter.limit}
  `);
  if (rows.length === filter.limit || budget === filter.limit) return { rows, resumeBefore: null };
  return { rows, resumeBefore: await resumeBeforeWindow(db, scanned, budget) };
}

/**
 * The outbox row of holds flipped by one statement (kind holds_settled, migration 009): it names
 * them by key, in order, with what the statement did to them, so their events (HoldCaptured,
 * HoldReleased, HoldExpired) are built from that record, written once with the flip.
 */
function settledAnnouncement(flipped: string, outcome: 'captured' | 'released' | 'expired') {
  return sql.fragment`
    SELECT 'holds_settled' AS kind, array_agg(wallet_id ORDER BY wallet_id, seq) AS wallet_ids,
           array_agg(seq ORDER BY wallet_id, seq) AS seqs, NULL::jsonb AS labels,
           array_agg(${outcome}::text) AS outcomes
    FROM ${sql.identifier([flipped])} HAVING count(*) > 0
  `;
}

/**
 * Captures an active, unexpired hold: flips it to captured and reserves its debit (a pending
 * transaction of -amount that names the hold, with its marker and outbox row), in one statement.
 * The flip's outbox row (HoldCaptured) comes before the debit's (TransactionCreated).
 * Null when the hold was not active (or had expired) at that moment. A taken debit fingerprint
 * raises the unique violation of transactions' fingerprint.
 */
export async function captureHold(
  db: CommonQueryMethods,
  walletId: number,
  id: string,
  capture: { amount: string | null; fingerprint: string; traceContext: string | null },
): Promise<HoldRow | null> {
  return db.maybeOne(sql.type(holdRowSchema)`
    WITH h AS (
      UPDATE holds SET status = 'captured', captured_amount = coalesce(${capture.amount}::numeric, amount),
        capture_seq = nextval(pg_get_serial_sequence('transactions', 'seq'))
      WHERE id = ${id} AND wallet_id = ${walletId} AND status = 'active' AND expires_at > now()
      RETURNING *
    ), reserved AS (
      INSERT INTO transactions (wallet_id, seq, amount, fingerprint, labels, description, trace_context, hold_id)
      OVERRIDING SYSTEM VALUE
      SELECT wallet_id, capture_seq, -captured_amount, ${capture.fingerprint}, labels, description,
             ${capture.traceContext}, id
      FROM h
      RETURNING *
    ), marked AS (
      INSERT INTO pending_reservations (wallet_id, first_seq, last_seq) SELECT wallet_id, seq, seq FROM reserved
    ), announced AS (
      INSERT INTO outbox (kind, wallet_ids, seqs, labels, outcomes)
      SELECT kind, wallet_ids, seqs, labels, outcomes FROM (
        SELECT 1 AS place, * FROM (${settledAnnouncement('h', 'captured')}) settled
        UNION ALL
        SELECT 2, 'transactions_reserved', ARRAY[wallet_id], ARRAY[seq],
               CASE WHEN labels <> '{}'::jsonb THEN jsonb_build_array(labels) END, NULL
        FROM reserved
      ) announcement ORDER BY place
    )
    SELECT ${holdColumns} FROM h
  `);
}

/**
 * Releases an active hold (status `released`, keeping the release's fingerprint if one was given)
 * with its outbox row (HoldReleased); the wallet's queue then takes it out of `held`. Null when
 * the hold was not active (or had expired). A fingerprint another release used raises the unique
 * violation of holds_release_fingerprint.
 */
export async function releaseHold(
  db: CommonQueryMethods,
  walletId: number,
  id: string,
  release: { fingerprint: string | null },
): Promise<HoldRow | null> {
  return db.maybeOne(sql.type(holdRowSchema)`
    WITH h AS (
      UPDATE holds SET status = 'released', release_fingerprint = ${release.fingerprint}
      WHERE id = ${id} AND wallet_id = ${walletId} AND status = 'active' AND expires_at > now()
      RETURNING *
    ), announced AS (
      INSERT INTO outbox (kind, wallet_ids, seqs, labels, outcomes) ${settledAnnouncement('h', 'released')}
    )
    SELECT ${holdColumns} FROM h
  `);
}

/**
 * Expires active holds past their expiry (all of them, or the one named), at most `limit`: each
 * flips once, and one outbox row names them (HoldExpired). Answers the wallets to enqueue, whose queue takes them out of `held`.
 * The sweep skips holds another expiry has locked; the one named waits for it, so its caller then
 * reads the hold decided.
 */
export async function expireHolds(
  db: CommonQueryMethods,
  options: { limit: number; hold?: { walletId: number; id: string } },
): Promise<{ walletIds: number[]; expired: number }> {
  const only = options.hold
    ? sql.fragment`AND id = ${options.hold.id} AND wallet_id = ${options.hold.walletId}`
    : sql.fragment``;
  const rows = await db.any(sql.type(z.object({ walletId: z.number() }))`
    WITH flipped AS (
      UPDATE holds SET status = 'expired'
      WHERE id IN (
        SELECT id FROM holds WHERE status = 'active' AND expires_at <= now() ${only}
        ORDER BY expires_at LIMIT ${options.limit} FOR UPDATE ${options.hold ? sql.fragment`` : sql.fragment`SKIP LOCKED`}
      ) AND status = 'active'
      RETURNING wallet_id, seq
    ), announced AS (
      INSERT INTO outbox (kind, wallet_ids, seqs, labels, outcomes) ${settledAnnouncement('flipped', 'expired')}
    )
    SELECT wallet_id AS "walletId" FROM flipped
  `);
  return { walletIds: [...new Set(rows.map((row) => row.walletId))], expired: rows.length };
}

/** Wallets with holds still to decide or to take out of `held` for longer than `olderThanMs` (the sweeper's net). */
export async function findWalletsWithStaleHoldWork(
  db: CommonQueryMethods,
  olderThanMs: number,
  limit: number,
): Promise<readonly number[]> {
  return db.anyFirst(sql.type(z.object({ walletId: z.number() }))`
    SELECT DISTINCT wallet_id AS "walletId" FROM holds
    WHERE (status = 'pending' OR (status IN ('released', 'expired') AND NOT held_released))
      AND created < now() - make_interval(secs => ${olderThanMs / 1000})
    LIMIT ${limit}
  `);
}
