import { sql, type CommonQueryMethods, type FragmentSqlToken } from 'slonik';
import { z } from 'zod';
import type { OutboxEvent } from './cloud-events.js';

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

/** Positions as fixed-width digits: they compare as text in the order of (xid, row, ordinal). */
const positionOf = (xid: FragmentSqlToken, row: FragmentSqlToken, ordinal: FragmentSqlToken) =>
  sql.fragment`lpad(${xid}::text, 20, '0') || '.' || lpad(${row}::text, 19, '0') || '.' || lpad(${ordinal}::text, 10, '0')`;

const outboxEventSchema = z.object({
  position: z.string(),
  xid: z.string(),
  row: z.number(),
  ordinal: z.number(),
  eventId: z.string(),
  walletId: z.number(),
  type: z.string(),
  subject: z.string().nullable(),
  data: z.string(),
  created: z.string(),
  legacyId: z.number().nullable(),
});

/**
 * The events of the outbox rows in a CTE named `rows`, as the columns of `outboxEventSchema`.
 * A row of reserved transactions gives a TransactionCreated each; a row of decided ones gives a
 * BalanceChanged (and, for a reversal, a TransactionVoid after it) or a TransactionRejected each,
 * in the order decided. Every field comes from columns that never change once written, so an event
 * reads the same whenever it is built. Its id is derived from its type and subject row.
 */
const expandedEvents = sql.fragment`
  SELECT r.xid, r.id AS row, 0 AS ordinal, 'WalletCreated' AS type, w.id AS wallet_id, w.id::text AS subject,
         jsonb_build_object('id', w.id, 'externalId', w.external_id, 'labels', w.labels, 'created', w.created) AS data,
         w.created AS time, md5('WalletCreated:' || w.id)::uuid AS event_id, NULL::bigint AS legacy_id
  FROM rows r JOIN wallets w ON w.id = r.wallet_id
  WHERE r.kind = 'wallet_created'
  UNION ALL
  SELECT r.xid, r.id, x.ordinal::int, 'TransactionCreated', t.wallet_id, t.id::text,
         jsonb_build_object('id', t.id, 'walletId', t.wallet_id, 'amount', t.amount, 'fingerprint', t.fingerprint,
                            'labels', t.labels, 'description', t.description, 'status', 'pending', 'voids', t.voids,
                            'created', t.created),
         t.created, md5('TransactionCreated:' || t.id)::uuid, NULL
  FROM rows r CROSS JOIN LATERAL unnest(r.transaction_ids) WITH ORDINALITY AS x (id, ordinal)
  JOIN transactions t ON t.id = x.id
  WHERE r.kind = 'transactions_reserved'
  UNION ALL
  SELECT r.xid, r.id, 2 * x.ordinal::int,
         CASE WHEN t.status = 'rejected' THEN 'TransactionRejected' ELSE 'BalanceChanged' END,
         t.wallet_id, t.id::text,
         CASE WHEN t.status = 'rejected'
           THEN jsonb_build_object('walletId', t.wallet_id, 'transactionId', t.id, 'amount', t.amount, 'reason', t.reason)
           ELSE jsonb_build_object('walletId', t.wallet_id, 'transactionId', t.id, 'refno', t.refno, 'amount', t.amount,
                                   'oldbalance', t.oldbalance, 'newbalance', t.newbalance)
         END,
         t.finalized,
         md5(CASE WHEN t.status = 'rejected' THEN 'TransactionRejected:' ELSE 'BalanceChanged:' END || t.id)::uuid, NULL
  FROM rows r CROSS JOIN LATERAL unnest(r.transaction_ids) WITH ORDINALITY AS x (id, ordinal)
  JOIN transactions t ON t.id = x.id
  WHERE r.kind = 'transactions_decided'
  UNION ALL
  SELECT r.xid, r.id, 2 * x.ordinal::int + 1, 'TransactionVoid', t.wallet_id, t.voids::text,
         jsonb_build_object('walletId', t.wallet_id, 'transactionId', t.voids, 'reversalId', t.id, 'amount', t.amount),
         t.finalized, md5('TransactionVoid:' || t.id)::uuid, NULL
  FROM rows r CROSS JOIN LATERAL unnest(r.transaction_ids) WITH ORDINALITY AS x (id, ordinal)
  JOIN transactions t ON t.id = x.id
  WHERE r.kind = 'transactions_decided' AND t.voids IS NOT NULL AND t.status = 'applied'
  UNION ALL
  SELECT r.xid, r.id, 0, r.type, r.wallet_id, r.subject, r.data, r.created, r.event_id, r.legacy_id
  FROM rows r
  WHERE r.kind = 'legacy' AND NOT r.legacy_published
`;

const eventColumns = sql.fragment`
  ${positionOf(sql.fragment`e.xid`, sql.fragment`e.row`, sql.fragment`e.ordinal`)} AS position,
  e.xid::text AS xid, e.row, e.ordinal, e.event_id AS "eventId", e.wallet_id AS "walletId", e.type, e.subject,
  e.data::text AS data, e.time AS created, e.legacy_id AS "legacyId"
`;

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
  return db.one(sql.type(z.object({ xid: z.string(), row: z.number(), ordinal: z.number(), position: z.string() }))`
    SELECT xid::text AS xid, id AS row, ordinal, ${positionOf(sql.fragment`xid`, sql.fragment`id`, sql.fragment`greatest(ordinal, 0)`)} AS position
    FROM outbox_relay_cursor
  `);
}

/**
 * The events after `cursor`, in position order, about `limit` of them (a row's events are taken
 * whole, unless the first row alone has more). Only rows of database transactions older than every
 * transaction still running are read (`pg_snapshot_xmin`): those can no longer change, so no
 * event can later appear before the cursor, and publishing in this order is publishing once.
 */
export async function findEventsAfter(
  db: CommonQueryMethods,
  cursor: RelayCursor,
  limit: number,
): Promise<readonly OutboxEvent[]> {
  return db.any(sql.type(outboxEventSchema)`
    WITH candidate AS (
      SELECT o.*, coalesce(sum(coalesce(2 * cardinality(o.transaction_ids), 1)) OVER (
        ORDER BY o.xid, o.id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS events_before
      FROM (
        SELECT * FROM outbox
        WHERE (xid, id) >= (${cursor.xid}::xid8, ${cursor.row}) AND xid < pg_snapshot_xmin(pg_current_snapshot())
        ORDER BY xid, id LIMIT ${limit}
      ) o
    ), rows AS (
      SELECT * FROM candidate WHERE events_before < ${limit}
    )
    SELECT ${eventColumns} FROM (${expandedEvents}) e
    WHERE (e.xid, e.row, e.ordinal) > (${cursor.xid}::xid8, ${cursor.row}, ${cursor.ordinal})
    ORDER BY e.xid, e.row, e.ordinal
  `);
}

/**
 * Every event the outbox holds (published or not, whatever its transaction's age), in position
 * order, optionally of one wallet: for audits and tests, which compare it with the stream.
 */
export async function listOutboxEvents(
  db: CommonQueryMethods,
  filter: { walletId?: number } = {},
): Promise<readonly OutboxEvent[]> {
  const ofWallet =
    filter.walletId === undefined ? sql.fragment`` : sql.fragment`WHERE e.wallet_id = ${filter.walletId}`;
  return db.any(sql.type(outboxEventSchema)`
    WITH rows AS (SELECT * FROM outbox)
    SELECT ${eventColumns} FROM (${expandedEvents}) e ${ofWallet}
    ORDER BY e.xid, e.row, e.ordinal
  `);
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

const pendingDeliverySchema = outboxEventSchema.extend({ url: z.string(), secret: z.string() });
export type PendingDelivery = z.infer<typeof pendingDeliverySchema>;

/** A subscription's undelivered events, oldest first (the order they must arrive in). */
export async function findPendingDeliveries(
  db: CommonQueryMethods,
  subscriptionId: number,
  limit: number,
): Promise<readonly PendingDelivery[]> {
  return db.any(sql.type(pendingDeliverySchema)`
    WITH due AS (
      SELECT d.event_xid, d.event_row, d.event_ordinal
      FROM webhook_event_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id
      WHERE d.subscription_id = ${subscriptionId} AND d.delivered_at IS NULL AND s.active
      ORDER BY d.event_xid, d.event_row, d.event_ordinal LIMIT ${limit}
    ), rows AS (
      SELECT * FROM outbox WHERE (xid, id) IN (SELECT event_xid, event_row FROM due)
    )
    SELECT ${eventColumns}, s.url, s.secret
    FROM (${expandedEvents}) e
    JOIN due ON (due.event_xid, due.event_row, due.event_ordinal) = (e.xid, e.row, e.ordinal)
    JOIN webhook_subscriptions s ON s.id = ${subscriptionId}
    ORDER BY e.xid, e.row, e.ordinal
  `);
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
    SELECT coalesce(sum(coalesce(cardinality(o.transaction_ids), 1)), 0)::int AS backlog,
           coalesce(extract(epoch FROM now() - min(o.created)), 0)::float8 AS "oldestAgeSeconds"
    FROM outbox o, outbox_relay_cursor c
    WHERE (o.xid, o.id) > (c.xid, c.id)
  `);
}

/**
 * Forgets published outbox rows older than the retention, and their webhook deliveries, at most
 * `limit` rows per call; a row with an event still owed to an active subscriber is kept (a
 * removed subscription is owed nothing). Returns how many rows it deleted.
 */
export async function deleteOldEvents(db: CommonQueryMethods, retentionHours: number, limit: number): Promise<number> {
  return db.oneFirst(sql.type(z.object({ deleted: z.number() }))`
    WITH old AS (
      SELECT o.xid, o.id FROM outbox o, outbox_relay_cursor c
      WHERE (o.xid, o.id) < (c.xid, c.id)
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
