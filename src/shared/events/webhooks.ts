import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import type { CommonQueryMethods } from 'slonik';
import { toCloudEvent } from './cloud-events.js';
import { NotFoundError, ValidationError } from '../domain/errors.js';
import { deactivateSubscription, insertSubscription, type WebhookSubscription } from './webhook-repository.js';
import { findPendingDeliveries, markDelivered, recordFailedAttempt } from './outbox-repository.js';
import { generateWebhookSecret, webhookHeaders } from './webhook-signature.js';
import { DisallowedTargetError, guardedLookup, isDisallowedAddress, webhookTargetProblem } from './webhook-targets.js';

/** `allowPrivateTargets` (WEBHOOK_ALLOW_PRIVATE_TARGETS) lifts the target rules, for local development. */
export interface TargetPolicy {
  allowPrivateTargets: boolean;
}

export async function subscribeWebhook(
  db: CommonQueryMethods,
  request: { url: string; events: readonly string[] },
  policy: TargetPolicy,
): Promise<{ subscription: WebhookSubscription; secret: string }> {
  const problem = policy.allowPrivateTargets ? null : webhookTargetProblem(request.url);
  if (problem) throw new ValidationError('the request body is invalid', [{ name: 'url', reason: problem }]);
  const secret = generateWebhookSecret();
  const subscription = await insertSubscription(db, { ...request, events: [...new Set(request.events)], secret });
  return { subscription, secret };
}

export async function unsubscribeWebhook(db: CommonQueryMethods, id: number): Promise<void> {
  if (!(await deactivateSubscription(db, id))) throw new NotFoundError(`no active webhook subscription ${id}`);
}

/** The subscriber did not take an event; the job retries later, from that event on. */
export class WebhookDeliveryError extends Error {}

export interface DeliveryOptions extends TargetPolicy {
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
      const body = toCloudEvent(delivery);
      const failure = await post(delivery.url, body, webhookHeaders(delivery.secret, delivery.eventId, body), options);
      if (failure) {
        await recordFailedAttempt(db, subscriptionId, delivery, failure);
        throw new WebhookDeliveryError(`subscription ${subscriptionId}, event ${delivery.position}: ${failure}`);
      }
      await markDelivered(db, subscriptionId, delivery);
      delivered += 1;
    }
    if (pending.length < options.batchSize) return delivered;
  }
}

/**
 * POSTs the event; returns why it failed, or null when the subscriber answered 2xx. Redirects
 * are not followed (a 3xx is a failure). Unless private targets are allowed, an IP literal is
 * checked here and a name is checked by `guardedLookup` on the addresses the socket will use.
 */
function post(
  url: string,
  body: string,
  headers: Record<string, string>,
  options: DeliveryOptions,
): Promise<string | null> {
  const target = new URL(url);
  const host = target.hostname.replace(/^\[|\]$/g, '');
  if (!options.allowPrivateTargets && isIP(host) !== 0 && isDisallowedAddress(host)) {
    return Promise.resolve(new DisallowedTargetError(host, host).code);
  }
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve) => {
    const request = send(
      target,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers },
        signal: AbortSignal.timeout(options.timeoutMs),
        ...(options.allowPrivateTargets ? {} : { lookup: guardedLookup }),
      },
      (response) => {
        response.resume();
        const status = response.statusCode ?? 0;
        resolve(status >= 200 && status < 300 ? null : `HTTP ${status}`);
      },
    );
    request.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.name));
    request.end(body);
  });
}
