import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import type { OutboxEvent } from './cloud-events.js';

/** Data access for outbox_events and webhook deliveries (what the relay reads and marks). */

const outboxEventSchema = z.object({
  id: z.number(),
  eventId: z.string(),
  walletId: z.number(),
  type: z.string(),
  subject: z.string().nullable(),
  data: z.string(),
  created: z.string(),
});

// Any constant; the same in every process: only one relay publishes at a time, in outbox order.
const RELAY_LOCK_KEY = 7_312_604_119;

/**
 * A session lock, not a transaction one: the relay holds it across its call to Redis without
 * keeping a transaction open. Released by `releaseRelayLock`, or by Postgres when the connection ends.
 */
export async function tryTakeRelayLock(db: CommonQueryMethods): Promise<boolean> {
  return db.oneFirst(sql.type(z.object({ locked: z.boolean() }))`
    SELECT pg_try_advisory_lock(${RELAY_LOCK_KEY}) AS locked
  `);
}

export async function releaseRelayLock(db: CommonQueryMethods): Promise<void> {
  await db.query(sql.unsafe`SELECT pg_advisory_unlock(${RELAY_LOCK_KEY})`);
}

export async function findUnpublishedEvents(db: CommonQueryMethods, limit: number): Promise<readonly OutboxEvent[]> {
  return db.any(sql.type(outboxEventSchema)`
    SELECT id, event_id AS "eventId", wallet_id AS "walletId", type, subject, data::text AS data, created
    FROM outbox_events WHERE published_at IS NULL ORDER BY id LIMIT ${limit}
  `);
}

export async function markPublished(db: CommonQueryMethods, ids: readonly number[]): Promise<void> {
  await db.query(sql.unsafe`UPDATE outbox_events SET published_at = now() WHERE id = ANY(${sql.array(ids, 'int8')})`);
}

/** Queues each event for every active subscription that wants its type; returns those subscriptions. */
export async function addWebhookDeliveries(
  db: CommonQueryMethods,
  eventIds: readonly number[],
): Promise<readonly number[]> {
  return db.anyFirst(sql.type(z.object({ subscriptionId: z.number() }))`
    WITH added AS (
      INSERT INTO webhook_deliveries (subscription_id, event_id)
      SELECT s.id, e.id FROM outbox_events e JOIN webhook_subscriptions s ON e.type = ANY(s.events)
      WHERE s.active AND e.id = ANY(${sql.array(eventIds, 'int8')})
      ON CONFLICT DO NOTHING
      RETURNING subscription_id
    )
    SELECT DISTINCT subscription_id AS "subscriptionId" FROM added
  `);
}

export async function countUnpublishedEvents(db: CommonQueryMethods): Promise<number> {
  return db.oneFirst(sql.type(z.object({ count: z.number() }))`
    SELECT count(*)::int AS count FROM outbox_events WHERE published_at IS NULL
  `);
}

/**
 * Forgets published events older than the retention, and their webhook deliveries, at most
 * `limit` events per call; an event still owed to an active subscriber is kept (a removed
 * subscription is owed nothing). Returns how many events it deleted.
 */
export async function deleteOldEvents(db: CommonQueryMethods, retentionHours: number, limit: number): Promise<number> {
  return db.oneFirst(sql.type(z.object({ deleted: z.number() }))`
    WITH old AS (
      SELECT e.id FROM outbox_events e
      WHERE e.published_at < now() - make_interval(hours => ${retentionHours})
        AND NOT EXISTS (
          SELECT 1 FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id
          WHERE d.event_id = e.id AND d.delivered_at IS NULL AND s.active
        )
      ORDER BY e.id LIMIT ${limit}
    ), deliveries AS (
      DELETE FROM webhook_deliveries d USING old WHERE d.event_id = old.id
    ), events AS (
      DELETE FROM outbox_events e USING old WHERE e.id = old.id RETURNING e.id
    )
    SELECT count(*)::int AS deleted FROM events
  `);
}
