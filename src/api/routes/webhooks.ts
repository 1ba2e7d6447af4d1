import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { Router } from 'express';
import type { DatabasePool } from 'slonik';
import { EVENT_TYPES } from '../../shared/events/cloud-events.js';
import { listSubscriptions, type WebhookSubscription } from '../../shared/events/webhook-repository.js';
import { subscribeWebhook, unsubscribeWebhook } from '../../shared/events/webhooks.js';
import { storableText } from '../../shared/domain/validation.js';
import { sendJson } from '../json-response.js';
import { z } from '../openapi-zod.js';
import { defineOperation, problemContent, registerOperations, route } from '../operation.js';
import { parseRequest, requireJsonBody } from '../problem.js';
import { pathId, validationProblemResponse } from '../schemas.js';

export const createWebhookBody = z
  .object({
    url: storableText(2048)
      // The URL parser drops tabs and line breaks silently, so a URL holding them would be stored
      // (and later sent) as other text than the one that was checked.
      .refine((url) => !/\p{Cc}/u.test(url), 'must not contain control characters (CR, LF, tab, ...)')
      .pipe(z.string().url())
      .refine((url) => /^https?:\/\//i.test(url), 'must be an http or https URL'),
    events: z
      .array(z.enum(EVENT_TYPES))
      .min(1)
      .max(EVENT_TYPES.length * 2),
  })
  .strict()
  .openapi('CreateWebhook', {
    example: { url: 'https://example.com/wallet-events', events: ['BalanceChanged', 'TransactionRejected'] },
  });

const webhookParams = z.object({ id: pathId('The subscription id.') });

const subscriptionFields = {
  id: z.number().int().positive().openapi({ example: 1 }),
  url: z.string().openapi({ example: 'https://example.com/wallet-events' }),
  events: z.array(z.string()).openapi({ example: ['BalanceChanged'] }),
  created: z.string().datetime().openapi({ example: '2026-11-25T09:08:13.315Z' }),
};
export const webhookResponse = z.object(subscriptionFields).strict().openapi('WebhookSubscription');
const createdWebhookResponse = z
  .object({
    ...subscriptionFields,
    secret: z.string().openapi({
      description: 'The `whsec_` signing secret: shown only in this answer.',
      example: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    }),
  })
  .strict()
  .openapi('CreatedWebhookSubscription');

function toWebhookResponse(subscription: WebhookSubscription): z.infer<typeof webhookResponse> {
  return { id: subscription.id, url: subscription.url, events: subscription.events, created: subscription.created };
}

const invalid = { description: 'Invalid body or path.', content: problemContent(validationProblemResponse) };

export const webhookOperations = {
  createWebhook: defineOperation({
    operationId: 'createWebhook',
    method: 'post',
    path: '/webhooks',
    scope: 'admin',
    tags: ['webhooks'],
    summary: 'Subscribe a URL to events',
    description:
      'Events are POSTed to it as signed CloudEvents (Standard Webhooks), in order, at least once. ' +
      'URLs whose host is a loopback, private, link-local, unique-local, CGNAT or other internal address ' +
      '(or `localhost`) are refused, and so are names that resolve to one when a delivery connects.',
    request: { body: { required: true, content: { 'application/json': { schema: createWebhookBody } } } },
    responses: {
      201: {
        description: 'Subscribed; the answer holds the signing secret, shown only here.',
        headers: z.object({ Location: z.string().openapi({ example: '/webhooks/1' }) }),
        content: { 'application/json': { schema: createdWebhookResponse } },
      },
      400: { ...invalid, description: 'Invalid body, or a URL pointing at an internal address.' },
    },
  }),
  listWebhooks: defineOperation({
    operationId: 'listWebhooks',
    method: 'get',
    path: '/webhooks',
    scope: 'admin',
    tags: ['webhooks'],
    summary: 'Active subscriptions (never their secrets)',
    responses: {
      200: {
        description: 'The subscriptions.',
        content: { 'application/json': { schema: z.object({ items: z.array(webhookResponse) }).strict() } },
      },
    },
  }),
  deleteWebhook: defineOperation({
    operationId: 'deleteWebhook',
    method: 'delete',
    path: '/webhooks/:id',
    scope: 'admin',
    tags: ['webhooks'],
    summary: 'Stop deliveries to a subscription',
    request: { params: webhookParams },
    responses: {
      204: { description: 'Stopped.' },
      400: invalid,
      404: { description: 'No such active subscription.', content: problemContent() },
    },
  }),
};

export function registerWebhookPaths(registry: OpenAPIRegistry): void {
  registerOperations(registry, webhookOperations);
}

/** Webhook subscribers: events are POSTed to them as signed CloudEvents, in order, at least once. */
export function webhookRoutes(deps: { pool: DatabasePool; allowPrivateTargets: boolean }): Router {
  const router = Router();

  // The secret is in this answer only: it is what the subscriber verifies signatures with.
  route(router, webhookOperations.createWebhook, requireJsonBody, async (req, res) => {
    const body = parseRequest(createWebhookBody, req.body, 'body');
    const { subscription, secret } = await subscribeWebhook(deps.pool, body, {
      allowPrivateTargets: deps.allowPrivateTargets,
    });
    res.location(`/webhooks/${subscription.id}`);
    sendJson(res, 201, { ...toWebhookResponse(subscription), secret });
  });

  route(router, webhookOperations.listWebhooks, async (_req, res) => {
    sendJson(res, 200, { items: (await listSubscriptions(deps.pool)).map(toWebhookResponse) });
  });

  route(router, webhookOperations.deleteWebhook, async (req, res) => {
    const { id } = parseRequest(webhookParams, req.params, 'path');
    await unsubscribeWebhook(deps.pool, id);
    res.status(204).end();
  });

  return router;
}
