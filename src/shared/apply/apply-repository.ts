import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import type { HoldOutcome, Outcome } from '../ledger/ledger.js';
import { unitsToDecimal } from '../ledger/money.js';

/**
 * Data access of the apply step, which spans wallets, transactions, pending markers and the outbox:
 * one statement reads a group of wallets' pending work, one statement writes their decisions.
 */

const pendingEntrySchema = z.object({
  id: z.string(),
  walletId: z.number(),
  seq: z.number(),
  amount: z.string(),
  voids: z.string().nullable(),
  originalStillApplied: z.boolean().nullable(),
  traceContext: z.string().nullable(),
  /** For a leg of a transfer: the transfer. */
  transferId: z.string().nullable(),
  /** For the debit that captures a hold: the hold's whole amount (it leaves `held` as this applies). */
  holdAmount: z.string().nullable(),
  /** Seconds since it was reserved, by the database clock (for the end-to-end latency metric). */
  ageSeconds: z.number(),
});
export type PendingEntryRow = z.infer<typeof pendingEntrySchema>;

const walletStateSchema = z.object({
  id: z.number(),
  balance: z.string(),
  lastRefno: z.number(),
  version: z.number(),
  minorUnits: z.number(),
  held: z.string(),
});
/** A hold the apply must decide (status pending) or take out of `held` (released or expired). */
const holdWorkSchema = z.object({
  id: z.string(),
  walletId: z.number(),
  seq: z.number(),
  amount: z.string(),
  status: z.enum(['pending', 'released', 'expired']),
});
export type HoldWorkRow = z.infer<typeof holdWorkSchema>;
const markerSchema = z.object({ walletId: z.number(), firstSeq: z.number(), lastSeq: z.number() });
export type PendingMarker = z.infer<typeof markerSchema>;

const pendingWorkSchema = z.object({
  wallets: z.array(walletStateSchema),
  markers: z.array(markerSchema),
  pending: z.array(pendingEntrySchema),
  holds: z.array(holdWorkSchema),
});

export interface WalletPendingWork {
  wallet: z.infer<typeof walletStateSchema>;
  markers: PendingMarker[];
  /** The oldest pending transactions (at most the limit), in reservation order. */
  pending: PendingEntryRow[];
  /** Its holds to decide or to release from `held` (at most the limit), in seq order. */
  holds: HoldWorkRow[];
}

/**
 * In one statement (one snapshot): each existing wallet's balance, last refno and version, its
 * pending markers, and its oldest pending transactions from its oldest marker on (reversals with
 * their original's state). A wallet without markers has nothing pending.
 */
export async function readPendingWork(
  db: CommonQueryMethods,
  walletIds: readonly number[],
  limitPerWallet: number,
): Promise<WalletPendingWork[]> {
  const ids = sql.array(walletIds, 'int8');
  // Planned per run (unnamed): its plan cached while the tables were small took 26 ms a call on the
  // hot-source bench (docs/design.md, "Plans").
  const work = await db.one(sql.type(pendingWorkSchema)`
    WITH wallet AS (
      SELECT id, balance::text AS balance, last_refno AS "lastRefno", version, minor_units AS "minorUnits",
             held::text AS held
      FROM wallets WHERE id = ANY(${ids})
    ), marker AS (
      SELECT wallet_id AS "walletId", first_seq AS "firstSeq", last_seq AS "lastSeq"
      FROM pending_reservations WHERE wallet_id = ANY(${ids})
    ), pending AS (
      SELECT p.* FROM wallet w CROSS JOIN LATERAL (
        SELECT coalesce(t.id, transaction_id(t.wallet_id, t.seq)) AS id, t.wallet_id AS "walletId", t.seq,
               t.amount::text AS amount, t.voids,
               original.status = 'applied' AS "originalStillApplied", t.trace_context AS "traceContext",
               t.transfer_id AS "transferId",
               (SELECT h.amount::text FROM holds h WHERE t.hold_id IS NOT NULL AND h.id = t.hold_id) AS "holdAmount",
               extract(epoch FROM clock_timestamp() - t.created)::float8 AS "ageSeconds"
        FROM transactions t
        LEFT JOIN transactions original
          ON t.voids IS NOT NULL AND original.wallet_id = t.wallet_id AND original.seq = transaction_seq_of(t.voids)
        WHERE t.wallet_id = w.id AND t.status = 'pending'
          AND t.seq >= (SELECT min(m."firstSeq") FROM marker m WHERE m."walletId" = w.id)
        ORDER BY t.seq LIMIT ${limitPerWallet}
      ) AS p
    ), hold AS (
      -- The partial index holds_to_apply (migration 008): few rows, none for a wallet without holds.
      SELECT h.* FROM wallet w CROSS JOIN LATERAL (
        SELECT id, wallet_id AS "walletId", seq, amount::text AS amount, status FROM holds
        WHERE wallet_id = w.id
          AND (status = 'pending' OR (status IN ('released', 'expired') AND NOT held_released))
        ORDER BY seq LIMIT ${limitPerWallet}
      ) AS h
    )
    SELECT (SELECT coalesce(json_agg(wallet), '[]') FROM wallet) AS wallets,
           (SELECT coalesce(json_agg(marker), '[]') FROM marker) AS markers,
           (SELECT coalesce(json_agg(pending ORDER BY "walletId", seq), '[]') FROM pending) AS pending,
           (SELECT coalesce(json_agg(hold ORDER BY "walletId", seq), '[]') FROM hold) AS holds
  `);
  const markers = Map.groupBy(work.markers, (marker) => marker.walletId);
  const pending = Map.groupBy(work.pending, (entry) => entry.walletId);
  const holds = Map.groupBy(work.holds, (entry) => entry.walletId);
  return work.wallets.map((wallet) => ({
    wallet,
    markers: markers.get(wallet.id) ?? [],
    pending: pending.get(wallet.id) ?? [],
    holds: holds.get(wallet.id) ?? [],
  }));
}

/** What the write statement raises when its rows do not add up (migration 005's wallet_assertion_failed). */
export const LEDGER_ASSERTION = 'wallet ledger assertion failed';

/** One wallet's decided batch, to be written if the wallet is still at `expectedVersion`. */
export interface WalletDecision {
  walletId: number;
  expectedVersion: number;
  balance: string;
  lastRefno: number;
  /** The sum of live holds after this batch (left out: unchanged). */
  held?: string;
  /** Hold decisions of this batch (new holds decided, released ones taken out of `held`). */
  holdOutcomes?: readonly HoldOutcome[];
  /** In the order decided; events follow this order. */
  outcomes: readonly Outcome[];
  /** The seq of each outcome's transaction (its key with the wallet id). */
  seqs: readonly number[];
  /** First seqs of the wallet's markers whose transactions this batch decides to the last. */
  coveredMarkers: readonly number[];
  /**
   * False when none of its transactions is a transfer leg or a hold's capture and it decides no
   * hold: the group may then take the plain statement (left out: it may).
   */
  legsOrHolds?: boolean;
}

/**
 * Writes a group's decisions in one autocommitted statement (one round trip, one commit): each
 * wallet's new balance guarded by its version (a wallet another applier holds, by advisory lock,
 * or moved on, is skipped), and for the wallets written only: each outcome on its pending row (an
 * in-place HOT update), voided originals, the markers now covered, and one outbox row naming the
 * decided transactions in order. Markers of wallets with nothing pending left (`staleMarkers`) go
 * too. If the rows written do not add up, the statement raises and nothing is written.
 * The applied debit legs of transfers get their credit legs (pending rows of the destination, with
 * their markers and outbox row) and their transfer its credit_seq, in the same statement.
 * Returns the wallets written (the others lost a race and must be retried) and the credits made.
 */
export interface WrittenDecisions {
  /** The wallets written; the others lost a race and must be retried. */
  won: ReadonlySet<number>;
  /** For each applied transfer debit: its wallet and the wallet whose credit leg was reserved. */
  credited: readonly { from: number; to: number }[];
}

export async function writeDecisions(
  db: CommonQueryMethods,
  decisions: readonly WalletDecision[],
  staleMarkers: readonly PendingMarker[] = [],
): Promise<WrittenDecisions> {
  if (decisions.length === 0 && staleMarkers.length === 0) return { won: new Set(), credited: [] };
  const expected = [...decisions]
    .sort((a, b) => a.walletId - b.walletId)
    .map((decision) => [
      decision.walletId,
      decision.expectedVersion,
      decision.balance,
      decision.lastRefno,
      decision.held ?? null,
    ]);
  const holdTuples = decisions.flatMap((decision) =>
    (decision.holdOutcomes ?? []).map((outcome) => [
      outcome.id,
      decision.walletId,
      outcome.status,
      outcome.status === 'rejected' ? outcome.reason : null,
      outcome.status === 'settled' ? null : unitsToDecimal(outcome.seenAvailable),
    ]),
  );
  const outcomes = decisions.flatMap((decision) =>
    decision.outcomes.map((outcome, index) => ({ decision, outcome, seq: decision.seqs[index]! })),
  );
  const outcomeTuples = outcomes.map(({ decision, outcome, seq }, ordinal) =>
    outcome.status === 'applied'
      ? [
          seq,
          decision.walletId,
          ordinal,
          'applied',
          null,
          outcome.refno,
          unitsToDecimal(outcome.oldBalance),
          unitsToDecimal(outcome.newBalance),
          null,
          null,
        ]
      : [
          seq,
          decision.walletId,
          ordinal,
          'rejected',
          outcome.reason,
          null,
          unitsToDecimal(outcome.seenBalance),
          null,
          outcome.afterRefno,
          outcome.seenHeld === undefined ? null : unitsToDecimal(outcome.seenHeld),
        ],
  );
  const covered = decisions.flatMap((decision) =>
    decision.coveredMarkers.map((firstSeq) => [decision.walletId, firstSeq, false]),
  );
  const markerTuples = [...covered, ...staleMarkers.map((marker) => [marker.walletId, marker.firstSeq, true])];
  const full = holdTuples.length > 0 || decisions.some((decision) => decision.legsOrHolds !== false);
  // Transfer legs, their voids and holds: their part of the statement, and what it must add up to.
  const legsAndHolds = full
    ? sql.fragment`
    ), hold_outcome AS (
      SELECT * FROM ${sql.unnest(holdTuples, ['uuid', 'int8', 'text', 'text', 'numeric'])}
        AS o (id, wallet_id, status, reason, seen_available)
      WHERE o.wallet_id IN (SELECT id FROM won)
    ), hold_decided AS (
      -- New holds decided (active or rejected), and released or expired ones out of held.
      UPDATE holds h
      SET status = CASE WHEN o.status = 'settled' THEN h.status ELSE o.status END,
          reason = CASE WHEN o.status = 'settled' THEN h.reason ELSE o.reason END,
          seen_available = CASE WHEN o.status = 'settled' THEN h.seen_available ELSE o.seen_available END,
          decided = CASE WHEN o.status = 'settled' THEN h.decided ELSE now() END,
          held_released = (o.status = 'settled'),
          settled = CASE WHEN o.status = 'settled' THEN now() END
      FROM hold_outcome o
      WHERE h.id = o.id AND h.wallet_id = o.wallet_id AND NOT h.held_released
        AND CASE WHEN o.status = 'settled' THEN h.status IN ('released', 'expired') ELSE h.status = 'pending' END
      RETURNING h.id, h.wallet_id, h.seq, o.status AS outcome
    ), capture_settled AS (
      -- Applied captures: their hold leaves held with the debit.
      UPDATE holds h SET held_released = true, settled = now()
      FROM recorded r
      WHERE r.hold_id IS NOT NULL AND r.status = 'applied' AND h.id = r.hold_id
        AND h.status = 'captured' AND NOT h.held_released
      RETURNING h.id
    ), debited AS MATERIALIZED (
      -- Applied debit legs of transfers: each gets its credit leg in this statement, so in the
      -- database transaction that applied it (a rejected debit gets none, ever).
      -- One primary-key lookup per applied leg; a batch of ordinary transactions reads no transfer.
      -- The credit carries the debit's trace context: its apply is linked to the transfer's request.
      SELECT tr.id, tr.from_wallet, tr.to_wallet, tr.amount, tr.labels, tr.description, r.trace_context,
             nextval(pg_get_serial_sequence('transactions', 'seq')) AS seq
      FROM recorded r CROSS JOIN LATERAL (
        SELECT * FROM transfers tr WHERE tr.id = r.transfer_id AND tr.from_wallet = r.wallet_id
      ) tr
      WHERE r.transfer_id IS NOT NULL AND r.status = 'applied' AND r.voids IS NULL
    ), unwound AS MATERIALIZED (
      -- Applied reversals of credit legs (a transfer's void, credit first): each gets the reversal
      -- of its debit leg, a pending deposit back to the source, in this statement.
      SELECT tr.id, tr.from_wallet, tr.to_wallet, tr.amount, transaction_id(tr.from_wallet, tr.debit_seq) AS debit_id,
             r.trace_context, nextval(pg_get_serial_sequence('transactions', 'seq')) AS seq
      FROM recorded r CROSS JOIN LATERAL (
        SELECT * FROM transfers tr WHERE tr.id = r.transfer_id AND tr.to_wallet = r.wallet_id
      ) tr
      WHERE r.transfer_id IS NOT NULL AND r.status = 'applied' AND r.voids IS NOT NULL
    ), credited AS (
      INSERT INTO transactions (wallet_id, seq, amount, fingerprint, labels, description, transfer_id, trace_context)
      OVERRIDING SYSTEM VALUE
      SELECT to_wallet, seq, amount, 'transfer:' || id || ':credit', labels, description, id, trace_context FROM debited
      RETURNING wallet_id, seq, labels
    ), returned AS (
      INSERT INTO transactions (wallet_id, seq, amount, fingerprint, labels, description, voids, void_key, transfer_id,
                                trace_context)
      OVERRIDING SYSTEM VALUE
      SELECT from_wallet, seq, amount, 'transfer:' || id || ':void-debit', '{}'::jsonb, NULL, debit_id, debit_id, id,
             trace_context
      FROM unwound
      RETURNING wallet_id, seq, labels
    ), credit_marked AS (
      INSERT INTO pending_reservations (wallet_id, first_seq, last_seq)
      SELECT wallet_id, min(seq), max(seq) FROM (SELECT * FROM credited UNION ALL SELECT * FROM returned) c
      GROUP BY wallet_id
    ), credit_announced AS (
      INSERT INTO outbox (kind, wallet_ids, seqs, labels)
      SELECT 'transactions_reserved', array_agg(wallet_id ORDER BY seq), array_agg(seq ORDER BY seq),
             jsonb_agg(DISTINCT labels) FILTER (WHERE labels <> '{}'::jsonb)
      FROM (SELECT * FROM credited UNION ALL SELECT * FROM returned) c HAVING count(*) > 0
    ), credit_linked AS (
      UPDATE transfers tr SET credit_seq = d.seq FROM debited d WHERE tr.id = d.id AND tr.credit_seq IS NULL
      RETURNING tr.id
`
    : sql.fragment``;
  const announced = full
    ? sql.fragment`
    ), announced AS (
      -- One row for the decided transactions, and, only when this batch decided holds, one before it
      -- naming them with what was decided (kind holds_decided, migration 009): their HoldCreated or
      -- HoldRejected events are built from that record, never from the hold's later status.
      INSERT INTO outbox (kind, wallet_ids, seqs, outcomes)
      SELECT kind, wallet_ids, seqs, outcomes FROM (
        SELECT 1 AS place, 'holds_decided' AS kind, array_agg(d.wallet_id ORDER BY d.wallet_id, d.seq) AS wallet_ids,
               array_agg(d.seq ORDER BY d.wallet_id, d.seq) AS seqs,
               array_agg(d.outcome ORDER BY d.wallet_id, d.seq) AS outcomes
        FROM hold_decided d WHERE d.outcome <> 'settled' HAVING count(*) > 0
        UNION ALL
        SELECT 2, 'transactions_decided', array_agg(o.wallet_id ORDER BY o.ordinal), array_agg(o.seq ORDER BY o.ordinal),
               NULL
        FROM outcome o HAVING count(*) > 0
      ) announcement ORDER BY place
    )
`
    : sql.fragment`
    ), announced AS (
      INSERT INTO outbox (kind, wallet_ids, seqs)
      SELECT 'transactions_decided', array_agg(o.wallet_id ORDER BY o.ordinal), array_agg(o.seq ORDER BY o.ordinal)
      FROM outcome o HAVING count(*) > 0
    )`;
  const credited = full
    ? sql.fragment`(SELECT coalesce(json_agg(moved), '[]') FROM (
        SELECT json_build_object('from', from_wallet, 'to', to_wallet) AS moved FROM debited
        UNION ALL SELECT json_build_object('from', to_wallet, 'to', from_wallet) FROM unwound
      ) m)`
    : sql.fragment`'[]'::json`;
  const addsUp = full
    ? sql.fragment`(SELECT count(*) FROM credit_linked) = (SELECT count(*) FROM debited)
             AND (SELECT count(*) FROM hold_decided) = (SELECT count(*) FROM hold_outcome)
             AND (SELECT count(*) FROM capture_settled) = (SELECT count(*) FROM recorded WHERE hold_id IS NOT NULL AND status = 'applied')`
    : // A leg or a capture must never be decided without its part: refuse rather than lose a credit.
      sql.fragment`NOT EXISTS (SELECT 1 FROM recorded WHERE transfer_id IS NOT NULL OR hold_id IS NOT NULL)`;
  const schema = z.object({
    won: z.array(z.number()),
    credited: z.array(z.object({ from: z.number(), to: z.number() })),
    consistent: z.boolean(),
  });
  const statement = sql.fragment`
    WITH expected AS (
      SELECT * FROM ${sql.unnest(expected, ['int8', 'int8', 'numeric', 'int8', 'numeric'])} AS e (id, version, balance, last_refno, held)
    ), locked AS MATERIALIZED (
      SELECT id FROM expected WHERE pg_try_advisory_xact_lock(id)
    ), won AS (
      UPDATE wallets w SET balance = e.balance, last_refno = e.last_refno, held = coalesce(e.held, w.held), version = w.version + 1
      FROM expected e
      WHERE w.id = e.id AND w.version = e.version AND w.id IN (SELECT id FROM locked)
      RETURNING w.id
    ), outcome AS (
      SELECT * FROM ${sql.unnest(outcomeTuples, ['int8', 'int8', 'int4', 'text', 'text', 'int8', 'numeric', 'numeric', 'int8', 'numeric'])}
        AS o (seq, wallet_id, ordinal, status, reason, refno, oldbalance, newbalance, after_refno, seen_held)
      WHERE o.wallet_id IN (SELECT id FROM won)
    ), recorded AS (
      UPDATE transactions t
      SET status = o.status, reason = o.reason, refno = o.refno, oldbalance = o.oldbalance,
          newbalance = o.newbalance, after_refno = o.after_refno, seen_held = o.seen_held, finalized = now(),
          void_key = CASE WHEN o.status = 'rejected' THEN NULL ELSE t.void_key END
      FROM outcome o
      WHERE t.wallet_id = o.wallet_id AND t.seq = o.seq AND t.status = 'pending'
      RETURNING t.wallet_id, coalesce(t.id, transaction_id(t.wallet_id, t.seq)) AS id, t.voids, t.status,
                t.transfer_id, t.hold_id, t.trace_context
    ${legsAndHolds}
    ), voided AS (
      UPDATE transactions t SET status = 'voided', voided_by = r.id
      FROM recorded r
      WHERE r.voids IS NOT NULL AND r.status = 'applied'
        AND t.wallet_id = r.wallet_id AND t.seq = transaction_seq_of(r.voids) AND t.status = 'applied'
      RETURNING t.seq
    ), covered AS (
      DELETE FROM pending_reservations m
      USING ${sql.unnest(markerTuples, ['int8', 'int8', 'bool'])} AS k (wallet_id, first_seq, stale)
      WHERE m.wallet_id = k.wallet_id AND m.first_seq = k.first_seq
        AND (k.stale OR k.wallet_id IN (SELECT id FROM won))
    ${announced}
    SELECT coalesce((SELECT array_agg(id) FROM won), '{}') AS won,
      ${credited} AS credited,
      CASE WHEN (SELECT count(*) FROM recorded) = (SELECT count(*) FROM outcome)
             AND (SELECT count(*) FROM voided) = (SELECT count(*) FROM recorded WHERE voids IS NOT NULL AND status = 'applied')
             AND ${addsUp}
        THEN true
        ELSE wallet_assertion_failed('a pending transaction, a voided original, a transfer or a hold was decided meanwhile')
      END AS consistent
  `;
  // The plain statement (most groups) keeps its plan per connection: every table it reaches is
  // reached by key, whatever the tables held when it was planned. The full one is planned per run
  // (unnamed): a plan cached while `transfers` or `holds` were empty scans them per debit.
  const result = await db.one(
    full ? sql.type(schema)`${statement}` : sql.prepared('wallet_apply_write', schema)`${statement}`,
  );
  return { won: new Set(result.won), credited: result.credited };
}
