import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';

/** Data access for webhook_subscriptions and webhook_deliveries. */

export const webhookSubscriptionSchema = z.object({
  id: z.number(),
  url: z.string(),
  events: z.array(z.string()),
  active: z.boolean(),
  created: z.string(),
});
export type WebhookSubscription = z.infer<typeof webhookSubscriptionSchema>;

const subscriptionColumns = sql.fragment`id, url, events, active, created`;

export async function insertSubscription(
  db: CommonQueryMethods,
  subscription: { url: string; events: readonly string[]; secret: string },
): Promise<WebhookSubscription> {
  return db.one(sql.type(webhookSubscriptionSchema)`
    INSERT INTO webhook_subscriptions (url, events, secret)
    VALUES (${subscription.url}, ${sql.array(subscription.events, 'text')}, ${subscription.secret})
    RETURNING ${subscriptionColumns}
  `);
}

export async function listSubscriptions(db: CommonQueryMethods): Promise<readonly WebhookSubscription[]> {
  return db.any(sql.type(webhookSubscriptionSchema)`
    SELECT ${subscriptionColumns} FROM webhook_subscriptions WHERE active ORDER BY id
  `);
}

/** Stops deliveries to a subscription; false when there is no such active subscription. */
export async function deactivateSubscription(db: CommonQueryMethods, id: number): Promise<boolean> {
  const result = await db.query(
    sql.unsafe`UPDATE webhook_subscriptions SET active = false WHERE id = ${id} AND active`,
  );
  return result.rowCount === 1;
}

const pendingDeliverySchema = z.object({
  eventId: z.number(),
  url: z.string(),
  secret: z.string(),
  cloudEventId: z.string(),
  walletId: z.number(),
  type: z.string(),
  subject: z.string().nullable(),
  data: z.string(),
  created: z.string(),
});
export type PendingDelivery = z.infer<typeof pendingDeliverySchema>;

/** A subscription's undelivered events, oldest first (the order they must arrive in). */
export async function findPendingDeliveries(
  db: CommonQueryMethods,
  subscriptionId: number,
  limit: number,
): Promise<readonly PendingDelivery[]> {
  return db.any(sql.type(pendingDeliverySchema)`
    SELECT d.event_id AS "eventId", s.url, s.secret, e.event_id AS "cloudEventId", e.wallet_id AS "walletId",
           e.type, e.subject, e.data::text AS data, e.created
    FROM webhook_deliveries d
    JOIN webhook_subscriptions s ON s.id = d.subscription_id
    JOIN outbox_events e ON e.id = d.event_id
    WHERE d.subscription_id = ${subscriptionId} AND d.delivered_at IS NULL AND s.active
    ORDER BY d.event_id LIMIT ${limit}
  `);
}

export async function markDelivered(db: CommonQueryMethods, subscriptionId: number, eventId: number): Promise<void> {
  await db.query(sql.unsafe`
    UPDATE webhook_deliveries SET delivered_at = now(), attempts = attempts + 1, last_error = NULL
    WHERE subscription_id = ${subscriptionId} AND event_id = ${eventId}
  `);
}

export async function recordFailedAttempt(
  db: CommonQueryMethods,
  subscriptionId: number,
  eventId: number,
  error: string,
): Promise<void> {
  await db.query(sql.unsafe`
    UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = ${error.slice(0, 500)}
    WHERE subscription_id = ${subscriptionId} AND event_id = ${eventId}
  `);
}

/** Subscriptions with something undelivered: the webhook sweep enqueues them again. */
export async function findSubscriptionsWithBacklog(db: CommonQueryMethods): Promise<readonly number[]> {
  return db.anyFirst(sql.type(z.object({ id: z.number() }))`
    SELECT DISTINCT d.subscription_id AS id FROM webhook_deliveries d
    JOIN webhook_subscriptions s ON s.id = d.subscription_id
    WHERE d.delivered_at IS NULL AND s.active
  `);
}
