import { Router } from 'express';
import type { DatabasePool } from 'slonik';
import { z } from 'zod';
import { EVENT_TYPES } from '../../shared/cloud-events.js';
import { listSubscriptions, type WebhookSubscription } from '../../shared/webhook-repository.js';
import { subscribeWebhook, unsubscribeWebhook } from '../../shared/webhooks.js';
import { sendJson } from '../json-response.js';
import { parseRequest, requireJsonBody } from '../problem.js';

export const createWebhookBody = z
  .object({
    url: z
      .string()
      .max(2048)
      .url()
      .refine((url) => /^https?:\/\//i.test(url), 'must be an http or https URL'),
    events: z
      .array(z.enum(EVENT_TYPES))
      .min(1)
      .max(EVENT_TYPES.length * 2),
  })
  .strict();

const webhookParams = z.object({
  id: z
    .string()
    .regex(/^[1-9][0-9]{0,14}$/, 'must be a positive integer')
    .transform(Number),
});

function toWebhookResponse(subscription: WebhookSubscription) {
  return { id: subscription.id, url: subscription.url, events: subscription.events, created: subscription.created };
}

/** Webhook subscribers: events are POSTed to them as signed CloudEvents, in order, at least once. */
export function webhookRoutes(deps: { pool: DatabasePool }): Router {
  const router = Router();

  // The secret is in this answer only: it is what the subscriber verifies signatures with.
  router.post('/webhooks', requireJsonBody, async (req, res) => {
    const body = parseRequest(createWebhookBody, req.body, 'body');
    const { subscription, secret } = await subscribeWebhook(deps.pool, body);
    res.location(`/webhooks/${subscription.id}`);
    sendJson(res, 201, { ...toWebhookResponse(subscription), secret });
  });

  router.get('/webhooks', async (_req, res) => {
    sendJson(res, 200, { items: (await listSubscriptions(deps.pool)).map(toWebhookResponse) });
  });

  router.delete('/webhooks/:id', async (req, res) => {
    const { id } = parseRequest(webhookParams, req.params, 'path');
    await unsubscribeWebhook(deps.pool, id);
    res.status(204).end();
  });

  return router;
}
