import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { EventStreamPublisher } from '../../src/shared/events/event-stream.js';
import { relayOutbox } from '../../src/shared/events/outbox-relay.js';
import { deliverPendingWebhooks, WebhookDeliveryError } from '../../src/shared/events/webhooks.js';
import { startWorker } from '../../src/worker/worker.js';
import { request } from '../support/http.js';
import { createTestEnv, silentLogger, startTestApi, waitUntil, type TestEnv } from '../support/test-env.js';

/**
 * SSRF: with WEBHOOK_ALLOW_PRIVATE_TARGETS off (the default, as here), webhooks never reach
 * internal addresses, neither registered as IP literals nor reached through a name.
 */
let env: TestEnv;
let api: Awaited<ReturnType<typeof startTestApi>>;
let redis: Redis;
let receiver: { url: (host: string) => string; calls: () => number; close: () => Promise<void> };

beforeAll(async () => {
  env = await createTestEnv('webhook_targets', { RELAY_INTERVAL_MS: '50', WEBHOOK_SWEEP_INTERVAL_MS: '500' });
  api = await startTestApi(env);
  redis = new Redis(env.config.REDIS_URL);
  let calls = 0;
  const server: Server = createServer((req, res) => {
    calls += 1;
    req.resume();
    res.writeHead(204).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  receiver = {
    url: (host) => `http://${host}:${port}/hook`,
    calls: () => calls,
    close: () => new Promise((done) => server.close(() => done())),
  };
});

afterAll(async () => {
  await receiver?.close();
  redis?.disconnect();
  await api?.close();
  await env?.destroy();
});

/** A subscription written straight to the table, as one registered while the setting was on. */
async function subscribeDirectly(url: string): Promise<number> {
  return env.pool.oneFirst(sql.type(z.object({ id: z.number() }))`
    INSERT INTO webhook_subscriptions (url, events, secret) VALUES (${url}, '{WalletCreated}', 'whsec_c2VjcmV0')
    RETURNING id
  `);
}

const deliveryState = (subscriptionId: number) =>
  env.pool.one(sql.type(z.object({ attempts: z.number(), delivered: z.number(), lastError: z.string().nullable() }))`
    SELECT coalesce(max(attempts), 0)::int AS attempts, count(delivered_at)::int AS delivered,
           max(last_error) AS "lastError"
    FROM webhook_event_deliveries WHERE subscription_id = ${subscriptionId}
  `);

describe('registering a webhook', () => {
  it.each([
    'http://127.0.0.1:6379/',
    'http://169.254.169.254/latest/meta-data/',
    'http://[::ffff:127.0.0.1]/',
    'http://2130706433/',
    'http://0x7f.1/',
    'http://10.1.2.3/hook',
    'http://172.16.0.1/hook',
    'http://192.168.1.1/hook',
    'http://100.64.0.1/hook',
    'http://0.0.0.0/hook',
    'http://[::1]/hook',
    'http://[fe80::1]/hook',
    'http://[fd00::1]/hook',
    'http://localhost:6379/',
  ])('When the URL is %s, then it answers 400 problem+json naming url, and subscribes nothing', async (url) => {
    const response = await request(api.url, 'POST', '/webhooks', { json: { url, events: ['WalletCreated'] } });
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(response.body.type).toBe('/problems/validation-error');
    expect(response.body.invalidParams).toEqual([{ name: 'url', reason: expect.stringMatching(/must not point/) }]);
    const listed = await request(api.url, 'GET', '/webhooks');
    expect(listed.body.items.map((item: { url: string }) => item.url)).not.toContain(url);
  });

  it.each([
    ['a CR LF and a header after it', 'https://hooks.example.com/x\r\nX-Injected: 1'],
    ['a line feed in the host', 'https://hooks.exa\nmple.com/'],
    ['a tab', 'https://hooks.example.com/a\tb'],
    ['a DEL', 'https://hooks.example.com/\u007f'],
    ['a C1 control (NEL)', 'https://hooks.example.com/\u0085'],
  ])('When the URL holds %s, then it answers 400 naming url, and subscribes nothing', async (_, url) => {
    const response = await request(api.url, 'POST', '/webhooks', { json: { url, events: ['WalletCreated'] } });
    expect(response.status).toBe(400);
    expect(response.body.invalidParams).toEqual([
      { name: 'url', reason: expect.stringMatching(/must not contain control characters/) },
    ]);
    const listed = await request(api.url, 'GET', '/webhooks');
    expect(listed.body.items).toEqual([]);
  });

  it('When the URL names a public host, then it is subscribed', async () => {
    const response = await request(api.url, 'POST', '/webhooks', {
      json: { url: 'https://hooks.example.com/wallet', events: ['WalletCreated'] },
    });
    expect(response.status).toBe(201);
    expect((await request(api.url, 'DELETE', `/webhooks/${response.body.id}`)).status).toBe(204);
  });
});

describe('delivering to a target that is internal after all', () => {
  it('When a subscription names a host resolving to 127.0.0.1, or holds such an IP, then delivery is refused at connect time and recorded as a failure, never delivered', async () => {
    const byName = await subscribeDirectly(receiver.url('localhost'));
    const byAddress = await subscribeDirectly(receiver.url('127.0.0.1'));
    await request(api.url, 'POST', '/wallets', { json: { externalId: randomUUID() } });
    await relayOutbox(env.pool, new EventStreamPublisher(redis, env.config.QUEUE_PREFIX), 500);

    for (const subscriptionId of [byName, byAddress]) {
      const delivering = deliverPendingWebhooks(env.pool, subscriptionId, {
        timeoutMs: 2000,
        batchSize: 10,
        allowPrivateTargets: false,
      });
      await expect(delivering).rejects.toThrow(WebhookDeliveryError);
      await expect(delivering).rejects.toThrow(/EDISALLOWEDTARGET/);
      expect(await deliveryState(subscriptionId)).toEqual({
        attempts: 1,
        delivered: 0,
        lastError: 'EDISALLOWEDTARGET',
      });
    }
    expect(receiver.calls()).toBe(0);

    // The worker retries it like an unreachable subscriber, and still never connects.
    const worker = await startWorker(env.config, silentLogger);
    try {
      await waitUntil(
        'the worker retried the refused deliveries',
        async () => (await deliveryState(byName)).attempts >= 3 && (await deliveryState(byAddress)).attempts >= 3,
        20_000,
      );
    } finally {
      await worker.close();
    }
    expect(receiver.calls()).toBe(0);
    expect((await deliveryState(byName)).delivered).toBe(0);

    // The same receiver takes the delivery when private targets are allowed: the refusal was the rule's.
    await deliverPendingWebhooks(env.pool, byName, { timeoutMs: 2000, batchSize: 10, allowPrivateTargets: true });
    expect(receiver.calls()).toBeGreaterThan(0);
    expect((await deliveryState(byName)).delivered).toBeGreaterThan(0);
  }, 40_000);
});
