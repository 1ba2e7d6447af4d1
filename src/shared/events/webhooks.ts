import type { CommonQueryMethods } from 'slonik';
import { toCloudEvent } from './cloud-events.js';
import { NotFoundError } from '../domain/errors.js';
import {
  deactivateSubscription,
  findPendingDeliveries,
  insertSubscription,
  markDelivered,
  recordFailedAttempt,
  type WebhookSubscription,
} from './webhook-repository.js';
import { generateWebhookSecret, webhookHeaders } from './webhook-signature.js';

export async function subscribeWebhook(
  db: CommonQueryMethods,
  request: { url: string; events: readonly string[] },
): Promise<{ subscription: WebhookSubscription; secret: string }> {
  const secret = generateWebhookSecret();
  const subscription = await insertSubscription(db, { ...request, events: [...new Set(request.events)], secret });
  return { subscription, secret };
}

export async function unsubscribeWebhook(db: CommonQueryMethods, id: number): Promise<void> {
  if (!(await deactivateSubscription(db, id))) throw new NotFoundError(`no active webhook subscription ${id}`);
}

/** The subscriber did not take an event; the job retries later, from that event on. */
export class WebhookDeliveryError extends Error {}

export interface DeliveryOptions {
  timeoutMs: number;
  batchSize: number;
}

/**
 * Sends a subscription's undelivered events in order, each signed, until none is left or one
 * fails. Stopping at the first failure keeps the order; a subscriber that is down only holds up
 * its own deliveries. Returns how many were delivered.
 */
export async function deliverPendingWebhooks(
  db: CommonQueryMethods,
  subscriptionId: number,
  options: DeliveryOptions,
): Promise<number> {
  let delivered = 0;
  for (;;) {
    const pending = await findPendingDeliveries(db, subscriptionId, options.batchSize);
    for (const delivery of pending) {
      const body = toCloudEvent({ ...delivery, id: delivery.eventId, eventId: delivery.cloudEventId });
      const failure = await post(
        delivery.url,
        body,
        webhookHeaders(delivery.secret, delivery.cloudEventId, body),
        options,
      );
      if (failure) {
        await recordFailedAttempt(db, subscriptionId, delivery.eventId, failure);
        throw new WebhookDeliveryError(`subscription ${subscriptionId}, event ${delivery.eventId}: ${failure}`);
      }
      await markDelivered(db, subscriptionId, delivery.eventId);
      delivered += 1;
    }
    if (pending.length < options.batchSize) return delivered;
  }
}

/** POSTs the event; returns why it failed, or null when the subscriber answered 2xx. */
async function post(
  url: string,
  body: string,
  headers: Record<string, string>,
  options: DeliveryOptions,
): Promise<string | null> {
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(options.timeoutMs),
    });
    await response.body?.cancel();
    return response.ok ? null : `HTTP ${response.status}`;
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    return cause ?? (error as Error).name;
  }
}
