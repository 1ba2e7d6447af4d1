import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';

/** Data access for webhook_subscriptions (their deliveries are in outbox-repository.ts, by event position). */

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
