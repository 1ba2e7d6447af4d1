import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import type { OutboxEvent } from './cloud-events.js';
import { OUTBOX_KINDS, eventsOf, positionOf, type OutboxItem } from './outbox-events.js';

/**
 * Data access for the outbox (written once, never updated), the relay's cursor and the webhook
 * deliveries. An outbox row names what changed; the events are built from the rows it names.
 */

/** Where the relay stands: the position of the last event it published. */
export interface RelayCursor {
  xid: string;
  row: number;
  ordinal: number;
  position: string;
}

const itemRowSchema = z.object({
  kind: z.enum(OUTBOX_KINDS),
  xid: z.string(),
  row: z.number(),
  ordinal: z.number().nullable(),
  rowCreated: z.string(),
  debitSlotsPaired: z.boolean(),
  walletId: z.number().nullable(),
  walletExternalId: z.string().nullable(),
  walletLabels: z.record(z.string(), z.string()).nullable(),
  walletCreated: z.string().nullable(),
  walletCurrency: z.string().nullable(),
  transactionId: z.string().nullable(),
  transactionWalletId: z.number().nullable(),
  amount: z.string().nullable(),
  fingerprint: z.string().nullable(),
  labels: z.record(z.string(), z.string()).nullable(),
  description: z.string().nullable(),
  status: z.string().nullable(),
  voids: z.string().nullable(),
  created: z.string().nullable(),
  refno: z.number().nullable(),
  oldbalance: z.string().nullable(),
  newbalance: z.string().nullable(),
  reason: z.string().nullable(),
  finalized: z.string().nullable(),
  transferId: z.string().nullable(),
  transferFrom: z.number().nullable(),
  transferTo: z.number().nullable(),
  transferAmount: z.string().nullable(),
  transferCurrency: z.string().nullable(),
  transferFingerprint: z.string().nullable(),
  transferCreated: z.string().nullable(),
  holdId: z.string().nullable(),
  holdOutcome: z.enum(['active', 'rejected', 'captured', 'released', 'expired']).nullable(),
  holdWalletId: z.number().nullable(),
  holdAmount: z.string().nullable(),
  holdCurrency: z.string().nullable(),
  holdFingerprint: z.string().nullable(),
  holdLabels: z.record(z.string(), z.string()).nullable(),
  holdDescription: z.string().nullable(),
  holdExpiresAt: z.string().nullable(),
  holdCreated: z.string().nullable(),
  holdDecided: z.string().nullable(),
  holdReason: z.string().nullable(),
  holdSeenAvailable: z.string().nullable(),
  holdCapturedAmount: z.string().nullable(),
  holdCaptureTransactionId: z.string().nullable(),
  holdReleaseFingerprint: z.string().nullable(),
  legacyId: z.number().nullable(),
  legacyPublished: z.boolean().nullable(),
  legacyEventId: z.string().nullable(),
  legacyWalletId: z.number().nullable(),
  legacyType: z.string().nullable(),
  legacySubject: z.string().nullable(),
  legacyData: z.string().nullable(),
});

/**
 * What the outbox rows in a CTE named `rows` name: one line per transaction of a row (in its
 * order), or one for a row that names a wallet or carries a legacy event. Plain columns only: the
 * events are built from them in outbox-events.ts, off the database.
 */
const itemsOfRows = sql.fragment`
  SELECT r.kind, r.xid::text AS xid, r.id AS row, x.ordinal::int AS ordinal, r.created AS "rowCreated",
         coalesce(r.xid >= (SELECT paired_debits_from FROM outbox_slot_layout), false) AS "debitSlotsPaired",
         w.id AS "walletId", w.external_id AS "walletExternalId", w.labels AS "walletLabels", w.created AS "walletCreated",
         w.currency AS "walletCurrency",
         coalesce(t.id, transaction_id(t.wallet_id, t.seq)) AS "transactionId", t.wallet_id AS "transactionWalletId",
         t.amount::text AS amount, t.fingerprint,
         t.labels, t.description, t.status, t.voids, t.created, t.refno, t.oldbalance::text AS oldbalance,
         t.newbalance::text AS newbalance, t.reason, t.finalized,
         tr.id AS "transferId", tr.from_wallet AS "transferFrom", tr.to_wallet AS "transferTo",
         tr.amount::text AS "transferAmount", tr.currency AS "transferCurrency",
         tr.fingerprint AS "transferFingerprint", tr.created AS "transferCreated",
         h.id AS "holdId", r.outcomes[x.ordinal] AS "holdOutcome", h.wallet_id AS "holdWalletId",
         h.amount::text AS "holdAmount", hw.currency AS "holdCurrency", h.fingerprint AS "holdFingerprint",
         h.labels AS "holdLabels", h.description AS "holdDescription", h.expires_at AS "holdExpiresAt",
         h.created AS "holdCreated", h.decided AS "holdDecided", h.reason AS "holdReason",
         h.seen_available::text AS "holdSeenAvailable", h.captured_amount::text AS "holdCapturedAmount",
         CASE WHEN h.capture_seq IS NOT NULL THEN transaction_id(h.wallet_id, h.capture_seq) END
           AS "holdCaptureTransactionId",
         h.release_fingerprint AS "holdReleaseFingerprint",
         r.legacy_id AS "legacyId", r.legacy_published AS "legacyPublished", r.event_id AS "legacyEventId",
         r.wallet_id AS "legacyWalletId", r.type AS "legacyType", r.subject AS "legacySubject",
         r.data::text AS "legacyData"
  FROM rows r
  LEFT JOIN LATERAL unnest(r.wallet_ids, r.seqs) WITH ORDINALITY AS x (wallet_id, seq, ordinal) ON true
  LEFT JOIN transactions t ON t.wallet_id = x.wallet_id AND t.seq = x.seq
  LEFT JOIN transfers tr ON tr.id = t.transfer_id
  -- Rows of kinds holds_* name holds (migration 009), whose keys no transaction has (one sequence).
  LEFT JOIN holds h ON r.kind IN ('holds_decided', 'holds_settled') AND h.wallet_id = x.wallet_id AND h.seq = x.seq
  LEFT JOIN wallets hw ON hw.id = h.wallet_id
  LEFT JOIN wallets w ON r.kind = 'wallet_created' AND w.id = r.wallet_id
  ORDER BY r.xid, r.id, x.ordinal
`;

function toItems(rows: readonly z.infer<typeof itemRowSchema>[]): OutboxItem[] {
  return rows.map((row) => ({
    kind: row.kind,
    xid: row.xid,
    row: row.row,
    ordinal: row.ordinal,
    rowCreated: row.rowCreated,
    debitSlotsPaired: row.debitSlotsPaired,
    wallet:
      row.walletId === null
        ? null
        : {
            id: row.walletId,
            externalId: row.walletExternalId ?? '',
            labels: row.walletLabels ?? {},
            created: row.walletCreated ?? '',
            currency: row.walletCurrency ?? '',
          },
    transaction:
      row.transactionId === null
        ? null
        : {
            id: row.transactionId,
            walletId: row.transactionWalletId ?? 0,
            amount: row.amount ?? '0',
            fingerprint: row.fingerprint ?? '',
            labels: row.labels ?? {},
            description: row.description,
            status: row.status ?? 'pending',
            voids: row.voids,
            created: row.created ?? '',
            refno: row.refno,
            oldbalance: row.oldbalance,
            newbalance: row.newbalance,
            reason: row.reason,
            finalized: row.finalized,
            transfer:
              row.transferId === null
                ? null
                : {
                    id: row.transferId,
                    from: row.transferFrom ?? 0,
                    to: row.transferTo ?? 0,
                    amount: row.transferAmount ?? '0',
                    currency: row.transferCurrency ?? '',
                    fingerprint: row.transferFingerprint ?? '',
                    created: row.transferCreated ?? '',
                  },
          },
    hold:
      row.holdId === null || row.holdOutcome === null
        ? null
        : {
            id: row.holdId,
            outcome: row.holdOutcome,
            walletId: row.holdWalletId ?? 0,
            amount: row.holdAmount ?? '0',
            currency: row.holdCurrency ?? '',
            fingerprint: row.holdFingerprint ?? '',
            labels: row.holdLabels ?? {},
            description: row.holdDescription,
            expiresAt: row.holdExpiresAt ?? '',
            created: row.holdCreated ?? '',
            decided: row.holdDecided ?? row.rowCreated,
            reason: row.holdReason,
            seenAvailable: row.holdSeenAvailable,
            capturedAmount: row.holdCapturedAmount,
            captureTransactionId: row.holdCaptureTransactionId,
            releaseFingerprint: row.holdReleaseFingerprint,
          },
    legacy:
      row.kind !== 'legacy' || row.legacyId === null
        ? null
        : {
            id: row.legacyId,
            published: row.legacyPublished === true,
            eventId: row.legacyEventId ?? '',
            walletId: row.legacyWalletId ?? 0,
            type: row.legacyType ?? '',
            subject: row.legacySubject,
            data: row.legacyData ?? '{}',
          },
  }));
}

// Any constants; the same in every process. Two-key advisory locks: the one-key space is the wallets'.
const LOCK_SPACE = 0x57_41_4c; // "WAL"
const RELAY_LOCK = 2;

/**
 * A session lock, not a transaction one: the relay holds it across its call to Redis without
 * keeping a transaction open. Released by `releaseRelayLock`, or by Postgres when the connection ends.
 */
export async function tryTakeRelayLock(db: CommonQueryMethods): Promise<boolean> {
  return db.oneFirst(sql.type(z.object({ locked: z.boolean() }))`
    SELECT pg_try_advisory_lock(${LOCK_SPACE}, ${RELAY_LOCK}) AS locked
  `);
}

export async function releaseRelayLock(db: CommonQueryMethods): Promise<void> {
  await db.query(sql.unsafe`SELECT pg_advisory_unlock(${LOCK_SPACE}, ${RELAY_LOCK})`);
}

export async function readRelayCursor(db: CommonQueryMethods): Promise<RelayCursor> {
  const cursor = await db.one(sql.type(z.object({ xid: z.string(), row: z.number(), ordinal: z.number() }))`
    SELECT xid::text AS xid, id AS row, ordinal FROM outbox_relay_cursor
  `);
  // Before the first event, the cursor is below every position: the empty text.
  return { ...cursor, position: cursor.ordinal < 0 ? '' : positionOf(cursor.xid, cursor.row, cursor.ordinal) };
}

/**
 * The events of the outbox rows after the cursor's, in position order, about `limit` of them: a
 * row's events are taken whole (the first row's even when it alone has more), so the cursor
 * always ends a row and the rows to read start after it. Only rows of database transactions older than every
 * one of this database still running are read (`this_database_horizon()`, migration 005): those
 * can no longer change, so no event can later appear before the cursor, and publishing in this
 * order is publishing once. A long transaction in another database on the same server does not
 * hold the events back; one in this database delays them (never loses them).
 */
export async function findEventsAfter(
  db: CommonQueryMethods,
  cursor: RelayCursor,
  limit: number,
): Promise<readonly OutboxEvent[]> {
  // Planned per run (unnamed): a plan cached while the tables were small joins `transactions` by a
  // scan of the whole table (docs/design.md, "Plans").
  const rows = await db.any(sql.type(itemRowSchema)`
    WITH candidate AS (
      SELECT o.*, coalesce(sum(coalesce(2 * cardinality(o.seqs), 1)) OVER (
        ORDER BY o.xid, o.id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS events_before
      FROM (
        SELECT * FROM outbox
        WHERE (xid, id) > (${cursor.xid}::xid8, ${cursor.row}) AND xid < this_database_horizon()
          AND kind <> 'journal'
        ORDER BY xid, id LIMIT ${limit}
      ) o
    ), rows AS (
      SELECT * FROM candidate WHERE events_before < ${limit}
    )
    ${itemsOfRows}
  `);
  return eventsOf(toItems(rows)).filter((event) => event.position > cursor.position);
}

/**
 * Every event the outbox holds (published or not, whatever its transaction's age), in position
 * order, optionally of one wallet: for audits and tests, which compare it with the stream.
 */
export async function listOutboxEvents(
  db: CommonQueryMethods,
  filter: { walletId?: number } = {},
): Promise<readonly OutboxEvent[]> {
  const rows = await db.any(sql.type(itemRowSchema)`
    WITH rows AS (SELECT * FROM outbox)
    ${itemsOfRows}
  `);
  const events = eventsOf(toItems(rows));
  return filter.walletId === undefined ? events : events.filter((event) => event.walletId === filter.walletId);
}

/** Records that every event up to `event` is published. */
export async function advanceRelayCursor(db: CommonQueryMethods, event: OutboxEvent): Promise<void> {
  await db.query(sql.unsafe`
    UPDATE outbox_relay_cursor SET xid = ${event.xid}::xid8, id = ${event.row}, ordinal = ${event.ordinal}
  `);
}

/** Queues each event for every active subscription that wants its type; returns those subscriptions. */
export async function addWebhookDeliveries(
  db: CommonQueryMethods,
  events: readonly OutboxEvent[],
): Promise<readonly number[]> {
  const tuples = events.map((event) => [event.xid, event.row, event.ordinal, event.type]);
  return db.anyFirst(sql.type(z.object({ subscriptionId: z.number() }))`
    WITH added AS (
      INSERT INTO webhook_event_deliveries (subscription_id, event_xid, event_row, event_ordinal)
      SELECT s.id, e.xid, e.row, e.ordinal
      FROM ${sql.unnest(tuples, ['xid8', 'int8', 'int4', 'text'])} AS e (xid, row, ordinal, type)
      JOIN webhook_subscriptions s ON e.type = ANY(s.events)
      WHERE s.active
      ON CONFLICT DO NOTHING
      RETURNING subscription_id
    )
    SELECT DISTINCT subscription_id AS "subscriptionId" FROM added
  `);
}

export type PendingDelivery = OutboxEvent & { url: string; secret: string };

/** A subscription's undelivered events, oldest first (the order they must arrive in). */
export async function findPendingDeliveries(
  db: CommonQueryMethods,
  subscriptionId: number,
  limit: number,
): Promise<readonly PendingDelivery[]> {
  const subscription = await db.maybeOne(sql.type(z.object({ url: z.string(), secret: z.string() }))`
    SELECT url, secret FROM webhook_subscriptions WHERE id = ${subscriptionId} AND active
  `);
  if (!subscription) return [];
  const due = await db.any(sql.type(z.object({ position: z.string() }))`
    SELECT lpad(event_xid::text, 20, '0') || '.' || lpad(event_row::text, 19, '0') || '.' || lpad(event_ordinal::text, 10, '0')
             AS position
    FROM webhook_event_deliveries
    WHERE subscription_id = ${subscriptionId} AND delivered_at IS NULL
    ORDER BY event_xid, event_row, event_ordinal LIMIT ${limit}
  `);
  if (due.length === 0) return [];
  const rows = await db.any(sql.type(itemRowSchema)`
    WITH rows AS (
      SELECT * FROM outbox WHERE (xid, id) IN (
        SELECT event_xid, event_row FROM webhook_event_deliveries
        WHERE subscription_id = ${subscriptionId} AND delivered_at IS NULL
        ORDER BY event_xid, event_row, event_ordinal LIMIT ${limit}
      )
    )
    ${itemsOfRows}
  `);
  const wanted = new Set(due.map((delivery) => delivery.position));
  return eventsOf(toItems(rows))
    .filter((event) => wanted.has(event.position))
    .map((event) => ({ ...event, ...subscription }));
}

function deliveryOf(subscriptionId: number, event: Pick<OutboxEvent, 'xid' | 'row' | 'ordinal'>) {
  return sql.fragment`subscription_id = ${subscriptionId} AND event_xid = ${event.xid}::xid8
    AND event_row = ${event.row} AND event_ordinal = ${event.ordinal}`;
}

export async function markDelivered(
  db: CommonQueryMethods,
  subscriptionId: number,
  event: Pick<OutboxEvent, 'xid' | 'row' | 'ordinal'>,
): Promise<void> {
  await db.query(sql.unsafe`
    UPDATE webhook_event_deliveries SET delivered_at = now(), attempts = attempts + 1, last_error = NULL
    WHERE ${deliveryOf(subscriptionId, event)}
  `);
}

export async function recordFailedAttempt(
  db: CommonQueryMethods,
  subscriptionId: number,
  event: Pick<OutboxEvent, 'xid' | 'row' | 'ordinal'>,
  error: string,
): Promise<void> {
  await db.query(sql.unsafe`
    UPDATE webhook_event_deliveries SET attempts = attempts + 1, last_error = ${error.slice(0, 500)}
    WHERE ${deliveryOf(subscriptionId, event)}
  `);
}

/** Subscriptions with something undelivered: the webhook sweep enqueues them again. */
export async function findSubscriptionsWithBacklog(db: CommonQueryMethods): Promise<readonly number[]> {
  return db.anyFirst(sql.type(z.object({ id: z.number() }))`
    SELECT DISTINCT d.subscription_id AS id FROM webhook_event_deliveries d
    JOIN webhook_subscriptions s ON s.id = d.subscription_id
    WHERE d.delivered_at IS NULL AND s.active
  `);
}

/** About how many events the outbox rows after the relay's hold, and the age of the oldest such row. */
export async function readOutboxBacklog(
  db: CommonQueryMethods,
): Promise<{ backlog: number; oldestAgeSeconds: number }> {
  return db.one(sql.type(z.object({ backlog: z.number(), oldestAgeSeconds: z.number() }))`
    SELECT coalesce(sum(coalesce(cardinality(o.seqs), 1)), 0)::int AS backlog,
           coalesce(extract(epoch FROM now() - min(o.created)), 0)::float8 AS "oldestAgeSeconds"
    FROM outbox o, outbox_relay_cursor c
    WHERE (o.xid, o.id) > (c.xid, c.id)
  `);
}

/**
 * Forgets published outbox rows older than the retention, and their webhook deliveries, at most
 * `limit` rows per call; a row with an event still owed to an active subscriber is kept (a
 * removed subscription is owed nothing), and so is a row of the journal (reservations: listings read it).
 * Returns how many rows it deleted.
 */
export async function deleteOldEvents(db: CommonQueryMethods, retentionHours: number, limit: number): Promise<number> {
  return db.oneFirst(sql.type(z.object({ deleted: z.number() }))`
    WITH old AS (
      SELECT o.xid, o.id FROM outbox o, outbox_relay_cursor c
      WHERE (o.xid, o.id) < (c.xid, c.id) AND o.kind NOT IN ('transactions_reserved', 'journal')
        AND o.created < now() - make_interval(hours => ${retentionHours})
        AND NOT EXISTS (
          SELECT 1 FROM webhook_event_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id
          WHERE d.event_xid = o.xid AND d.event_row = o.id AND d.delivered_at IS NULL AND s.active
        )
      ORDER BY o.xid, o.id LIMIT ${limit}
    ), deliveries AS (
      DELETE FROM webhook_event_deliveries d USING old WHERE d.event_xid = old.xid AND d.event_row = old.id
    ), deleted AS (
      DELETE FROM outbox o USING old WHERE o.xid = old.xid AND o.id = old.id RETURNING 1
    )
    SELECT count(*)::int AS deleted FROM deleted
  `);
}
