import { randomUUID } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { sql } from 'slonik';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { EventStreamPublisher, eventStreamKey } from '../../src/shared/events/event-stream.js';
import { relayOutbox } from '../../src/shared/events/outbox-relay.js';
import {
  deleteOldEvents,
  findEventsAfter,
  findPendingDeliveries,
  listOutboxEvents,
  readRelayCursor,
} from '../../src/shared/events/outbox-repository.js';
import { WebhookDeliveryError, deliverPendingWebhooks } from '../../src/shared/events/webhooks.js';
import { startWorker, type RunningWorker } from '../../src/worker/worker.js';
import { request } from '../support/http.js';
import { createTestEnv, silentLogger, startTestApi, waitUntil, type TestEnv } from '../support/test-env.js';

let env: TestEnv;
let api: Awaited<ReturnType<typeof startTestApi>>;
let redis: Redis;

beforeAll(async () => {
  env = await createTestEnv('events', {
    RELAY_INTERVAL_MS: '50',
    WEBHOOK_SWEEP_INTERVAL_MS: '1000',
    // The receivers below listen on 127.0.0.1; test/integration/webhook-targets.test.ts runs without this.
    WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
  });
  api = await startTestApi(env);
  redis = new Redis(env.config.REDIS_URL);
});

afterAll(async () => {
  redis?.disconnect();
  await api?.close();
  await env?.destroy();
});

const outboxTypes = async (walletId: number) =>
  (await listOutboxEvents(env.pool, { walletId })).map((event) => event.type);

const outboxRowCount = () =>
  env.pool.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM outbox`);

/** Events after the relay's cursor (not yet handed to the stream), as the relay would count them. */
const unpublishedCount = async () => (await findEventsAfter(env.pool, await readRelayCursor(env.pool), 100_000)).length;

interface StreamEvent {
  streamId: string;
  event: any;
}

/** Reads everything new for a consumer group (creating it at the stream's start) and acknowledges it. */
async function readGroup(group: string): Promise<StreamEvent[]> {
  const stream = eventStreamKey(env.config.QUEUE_PREFIX);
  await redis.xgroup('CREATE', stream, group, '0', 'MKSTREAM').catch(() => undefined);
  const events: StreamEvent[] = [];
  for (;;) {
    const reply = (await redis.xreadgroup('GROUP', group, 'test-consumer', 'COUNT', 1000, 'STREAMS', stream, '>')) as
      [string, [string, string[]][]][] | null;
    const entries = reply?.[0]?.[1] ?? [];
    if (entries.length === 0) return events;
    for (const [streamId, fields] of entries) {
      events.push({ streamId, event: JSON.parse(fields[fields.indexOf('event') + 1]!) });
      await redis.xack(stream, group, streamId);
    }
  }
}

async function newWallet(externalId = randomUUID()): Promise<number> {
  return (await request(api.url, 'POST', '/wallets', { json: { externalId } })).body.id;
}

describe('the outbox', () => {
  it('When wallets and transactions change, then each change writes its event in the same transaction, in order', async () => {
    const worker = await startWorker(env.config, silentLogger);
    try {
      const walletId = await newWallet();
      const wait = { prefer: 'wait=10' };
      const deposit = await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
        json: { amount: '10.10', fingerprint: randomUUID() },
        headers: wait,
      });
      await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
        json: { amount: -50, fingerprint: randomUUID() },
        headers: wait,
      });
      await request(api.url, 'POST', `/wallets/${walletId}/transactions/${deposit.body.id}/void`, {
        json: {},
        headers: wait,
      });
      expect(await outboxTypes(walletId)).toEqual([
        'WalletCreated',
        'TransactionCreated',
        'BalanceChanged',
        'TransactionCreated',
        'TransactionRejected',
        'TransactionCreated',
        'BalanceChanged',
        'TransactionVoid',
      ]);
      const balanceChanged = (await listOutboxEvents(env.pool, { walletId })).find(
        (event) => event.type === 'BalanceChanged',
      );
      expect(balanceChanged?.data).toContain('"amount":10.10');
    } finally {
      await worker.close();
    }
  });

  it('When a change is refused or rolled back, then no event is written for it', async () => {
    const before = await outboxRowCount();
    await request(api.url, 'POST', '/wallets', { json: { externalId: 'dup-events' } });
    await request(api.url, 'POST', '/wallets', { json: { externalId: 'dup-events' } }); // 409
    await request(api.url, 'POST', '/wallets', { json: { externalId: '' } }); // 400
    await request(api.url, 'POST', '/wallets/987654/transactions', { json: { amount: 1, fingerprint: randomUUID() } }); // 404
    const after = await outboxRowCount();
    expect(after - before).toBe(1);
  });
});

describe('publishing to the Redis Stream', () => {
  it('When the relay dies after publishing but before advancing its cursor, then the next pass publishes nothing twice: each event arrives once per consumer group', async () => {
    await readGroup('before-crash'); // a group that has seen everything so far
    const walletId = await newWallet();
    for (let i = 0; i < 5; i += 1) {
      await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
        json: { amount: 1, fingerprint: randomUUID() },
      });
    }
    const publisher = new EventStreamPublisher(redis, env.config.QUEUE_PREFIX);
    const dying = {
      publish: async (...args: Parameters<EventStreamPublisher['publish']>) => {
        await publisher.publish(...args);
        throw new Error('killed between publish and commit');
      },
    };
    await expect(relayOutbox(env.pool, dying, 500)).rejects.toThrow('killed');
    const unpublished = await unpublishedCount();
    expect(unpublished).toBeGreaterThanOrEqual(6);

    // The next pass reads the same events (its cursor did not move) and the stream skips them all.
    const { relayed } = await relayOutbox(env.pool, publisher, 500);
    expect(relayed).toBe(unpublished);
    expect(await unpublishedCount()).toBe(0);
    expect((await relayOutbox(env.pool, publisher, 500)).relayed).toBe(0);

    for (const group of ['before-crash', 'fresh-group']) {
      const events = await readGroup(group);
      const ids = events.map((entry) => entry.event.id);
      expect(new Set(ids).size).toBe(ids.length);
      const ofWallet = events.filter((entry) => entry.event.walletid === String(walletId));
      expect(ofWallet.map((entry) => entry.event.type)).toEqual([
        'WalletCreated',
        ...Array(5).fill('TransactionCreated'),
      ]);
    }
  });

  it('When events are published, then they are CloudEvents 1.0 with exact amounts, ordered per wallet', async () => {
    const walletId = await newWallet();
    await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
      json: { amount: '12.34', fingerprint: 'cloud-event' },
    });
    await relayOutbox(env.pool, new EventStreamPublisher(redis, env.config.QUEUE_PREFIX), 500);
    const events = (await readGroup('shape')).filter((entry) => entry.event.walletid === String(walletId));
    const created = events.find((entry) => entry.event.type === 'TransactionCreated')!.event;
    expect(created).toMatchObject({
      specversion: '1.0',
      source: `/wallets/${walletId}`,
      type: 'TransactionCreated',
      datacontenttype: 'application/json',
      data: { walletId, fingerprint: 'cloud-event', status: 'pending' },
    });
    expect(created.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(new Date(created.time).toString()).not.toBe('Invalid Date');
    const sequences: string[] = events.map((entry) => entry.event.sequence);
    expect(sequences).toEqual([...sequences].sort());
    const raw = await redis.xrange(eventStreamKey(env.config.QUEUE_PREFIX), '-', '+');
    expect(raw.some(([, fields]) => /"amount": ?12\.34[,}]/.test(fields.join()))).toBe(true);
  });
});

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** How the tests below deliver by hand (the worker's delivery job makes the same call). */
const deliveryOptions = { timeoutMs: 5_000, batchSize: 100, allowPrivateTargets: true };

/** A webhook receiver that verifies each signature and can be told to fail. */
function startReceiver(secretOf: () => string, failFirst = 0) {
  const received: any[] = [];
  let calls = 0;
  let badSignatures = 0;
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      calls += 1;
      if (calls <= failFirst) {
        res.writeHead(500).end();
        return;
      }
      const headers = req.headers as Record<string, string>;
      // Checked by the Standard Webhooks reference library, not by our own signing code.
      if (!verifiesAsStandardWebhook(secretOf(), headers, body)) badSignatures += 1;
      else received.push({ ...JSON.parse(body), headerId: headers['webhook-id'] });
      res.writeHead(204).end();
    });
  });
  return new Promise<{ url: string; received: any[]; badSignatures: () => number; close: () => Promise<void> }>(
    (resolve) =>
      server.listen(0, '127.0.0.1', () =>
        resolve({
          url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
          received,
          badSignatures: () => badSignatures,
          close: () => new Promise((done) => server.close(() => done())),
        }),
      ),
  );
}

describe('webhooks', () => {
  let worker: RunningWorker | undefined;
  afterAll(async () => {
    await worker?.close();
  });

  it('When a subscriber is registered, then it receives signed events in order, even after failing at first, and a dead subscriber blocks no one', async () => {
    let secret = '';
    const receiver = await startReceiver(() => secret, 2);
    try {
      const subscribed = await request(api.url, 'POST', '/webhooks', {
        json: { url: receiver.url, events: ['TransactionCreated', 'BalanceChanged', 'TransactionRejected'] },
      });
      expect(subscribed.status).toBe(201);
      expect(subscribed.body.secret).toMatch(/^whsec_/);
      secret = subscribed.body.secret;
      const dead = await request(api.url, 'POST', '/webhooks', {
        json: { url: 'http://127.0.0.1:1/unreachable', events: ['BalanceChanged'] },
      });
      expect(dead.status).toBe(201);

      worker = await startWorker(env.config, silentLogger);
      const walletId = await newWallet();
      const fingerprints = Array.from({ length: 8 }, (_, i) => `hook-${i}`);
      const expected: string[] = [];
      for (const [i, fingerprint] of fingerprints.entries()) {
        const posted = await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
          json: { amount: i === 5 ? -1000 : 2, fingerprint },
          headers: { prefer: 'wait=10' },
        });
        expect(posted.status).toBe(i === 5 ? 422 : 201);
        const outcome = i === 5 ? 'TransactionRejected' : 'BalanceChanged';
        expected.push(`TransactionCreated:${posted.body.id}`, `${outcome}:${posted.body.id}`);
      }
      const eventsOfWallet = () => receiver.received.filter((event) => event.walletid === String(walletId));
      const keyOf = (event: any) => `${event.type}:${event.subject}`;
      await waitUntil(
        'the receiver got every event of the wallet',
        () => Promise.resolve(new Set(eventsOfWallet().map(keyOf)).size === expected.length),
        30_000,
      );
      const ofWallet = eventsOfWallet();
      expect(receiver.badSignatures()).toBe(0);
      // Each event exactly once: no id twice, and exactly the events the eight transactions made.
      const ids = ofWallet.map((event) => event.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ofWallet.map(keyOf).sort()).toEqual([...expected].sort());
      const sequences: string[] = ofWallet.map((event) => event.sequence);
      expect(sequences).toEqual([...sequences].sort());
      expect(ofWallet.every((event) => event.headerId === event.id)).toBe(true);

      const deadAttempts = await env.pool.oneFirst(sql.type(z.object({ attempts: z.number() }))`
        SELECT coalesce(max(attempts), 0)::int AS attempts FROM webhook_event_deliveries WHERE subscription_id = ${dead.body.id}
      `);
      expect(deadAttempts).toBeGreaterThanOrEqual(1);
      const deadDelivered = await env.pool.oneFirst(sql.type(z.object({ n: z.number() }))`
        SELECT count(*)::int AS n FROM webhook_event_deliveries WHERE subscription_id = ${dead.body.id} AND delivered_at IS NOT NULL
      `);
      expect(deadDelivered).toBe(0);
    } finally {
      // The tests below deliver by hand, each step in turn: no worker delivers beside them.
      await worker?.close();
      worker = undefined;
      await receiver.close();
    }
  }, 60_000);

  it('When subscriptions are listed or removed, then secrets never show and removed ones stop, even for events owed before', async () => {
    let secret = '';
    const receiver = await startReceiver(() => secret);
    const publisher = new EventStreamPublisher(redis, env.config.QUEUE_PREFIX);
    const walletsCreated = () =>
      receiver.received.filter((event) => event.type === 'WalletCreated').map((event) => Number(event.walletid));
    try {
      const created = await request(api.url, 'POST', '/webhooks', {
        json: { url: receiver.url, events: ['WalletCreated'] },
      });
      secret = created.body.secret;
      const listed = await request(api.url, 'GET', '/webhooks');
      expect(listed.status).toBe(200);
      expect(listed.text).not.toContain('whsec_');
      expect(listed.body.items.map((item: any) => item.id)).toContain(created.body.id);
      // While subscribed, an event reaches the receiver.
      const before = await newWallet();
      await relayOutbox(env.pool, publisher, 500);
      expect(await deliverPendingWebhooks(env.pool, created.body.id, deliveryOptions)).toBe(1);
      expect(walletsCreated()).toEqual([before]);
      const owed = await newWallet();
      await relayOutbox(env.pool, publisher, 500); // its delivery is now owed to the subscriber

      expect((await request(api.url, 'DELETE', `/webhooks/${created.body.id}`)).status).toBe(204);
      expect((await request(api.url, 'DELETE', `/webhooks/${created.body.id}`)).status).toBe(404);
      await newWallet();
      await relayOutbox(env.pool, publisher, 500);

      // Neither the event owed before the removal nor the one after it is sent.
      expect(await deliverPendingWebhooks(env.pool, created.body.id, deliveryOptions)).toBe(0);
      expect(walletsCreated()).toEqual([before]);
      expect(walletsCreated()).not.toContain(owed);
      expect((await request(api.url, 'GET', '/webhooks')).body.items.map((item: any) => item.id)).not.toContain(
        created.body.id,
      );
    } finally {
      await receiver.close();
    }
  });

  it('When a subscriber answers with a redirect, then it is not followed: the attempt fails, the event stays owed, and it is sent again to the same URL', async () => {
    let redirecting = true;
    const hits = { hook: 0, elsewhere: 0 };
    const webhookIds: string[] = [];
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.url === '/elsewhere') {
          hits.elsewhere += 1;
          return void res.writeHead(204).end();
        }
        hits.hook += 1;
        webhookIds.push(String(req.headers['webhook-id']));
        if (redirecting) return void res.writeHead(307, { location: '/elsewhere' }).end();
        res.writeHead(204).end();
      });
    });
    const url = await listen(server);
    try {
      const subscription = (
        await request(api.url, 'POST', '/webhooks', { json: { url: `${url}/hook`, events: ['WalletCreated'] } })
      ).body.id;
      await newWallet();
      await relayOutbox(env.pool, new EventStreamPublisher(redis, env.config.QUEUE_PREFIX), 500);

      await expect(deliverPendingWebhooks(env.pool, subscription, deliveryOptions)).rejects.toThrow(/HTTP 307/);
      expect(hits).toEqual({ hook: 1, elsewhere: 0 });
      expect(await findPendingDeliveries(env.pool, subscription, 10)).toHaveLength(1);

      redirecting = false;
      expect(await deliverPendingWebhooks(env.pool, subscription, deliveryOptions)).toBe(1);
      expect(hits).toEqual({ hook: 2, elsewhere: 0 });
      expect(new Set(webhookIds).size).toBe(1); // the same event, by its webhook-id
    } finally {
      await closeServer(server);
    }
  });

  it('When a subscriber does not answer within the delivery timeout, then the attempt is abandoned as failed and the event is sent again later with the same webhook-id', async () => {
    const hung: ServerResponse[] = [];
    const webhookIds: string[] = [];
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        webhookIds.push(String(req.headers['webhook-id']));
        if (webhookIds.length === 1) return void hung.push(res); // takes the event and never answers
        res.writeHead(204).end();
      });
    });
    const url = await listen(server);
    try {
      const subscription = (
        await request(api.url, 'POST', '/webhooks', { json: { url: `${url}/hook`, events: ['WalletCreated'] } })
      ).body.id;
      await newWallet();
      await relayOutbox(env.pool, new EventStreamPublisher(redis, env.config.QUEUE_PREFIX), 500);

      await expect(
        deliverPendingWebhooks(env.pool, subscription, { ...deliveryOptions, timeoutMs: 200 }),
      ).rejects.toBeInstanceOf(WebhookDeliveryError);
      expect(await findPendingDeliveries(env.pool, subscription, 10)).toHaveLength(1);

      expect(await deliverPendingWebhooks(env.pool, subscription, deliveryOptions)).toBe(1);
      expect(webhookIds).toHaveLength(2);
      expect(new Set(webhookIds).size).toBe(1);
      expect(await findPendingDeliveries(env.pool, subscription, 10)).toEqual([]);
    } finally {
      for (const res of hung) res.destroy();
      await closeServer(server);
    }
  }, 10_000);

  it.each([
    ['no url', { events: ['WalletCreated'] }, 'url'],
    ['a non-http url', { url: 'ftp://x.test/a', events: ['WalletCreated'] }, 'url'],
    ['not a url', { url: 'hook', events: ['WalletCreated'] }, 'url'],
    ['a NUL in the url', { url: 'http://a.test/\u0000x', events: ['WalletCreated'] }, 'url'],
    ['no events', { url: 'https://x.test/a', events: [] }, 'events'],
    ['an unknown event type', { url: 'https://x.test/a', events: ['MoneyPrinted'] }, 'events.0'],
    ['an unknown field', { url: 'https://x.test/a', events: ['WalletCreated'], secret: 'mine' }, 'body'],
  ])('When the subscription has %s, then it answers 400 naming the field', async (_, body, field) => {
    const response = await request(api.url, 'POST', '/webhooks', { json: body });
    expect(response.status).toBe(400);
    expect(response.body.invalidParams.map((param: any) => param.name)).toContain(field);
  });
});

describe('outbox retention', () => {
  it('When published events are older than the retention, then they and their finished deliveries go, and events still owed to a subscriber stay', async () => {
    const walletId = await newWallet();
    await relayOutbox(env.pool, new EventStreamPublisher(redis, env.config.QUEUE_PREFIX), 500);
    const subscription = await env.pool.oneFirst(sql.type(z.object({ id: z.number() }))`
      INSERT INTO webhook_subscriptions (url, events, secret) VALUES ('http://127.0.0.1:1/x', '{WalletCreated}', 's')
      RETURNING id
    `);
    const rowSchema = z.object({ xid: z.string(), id: z.number() });
    const rowsOf = (where: ReturnType<typeof sql.fragment>) =>
      env.pool.any(sql.type(rowSchema)`SELECT xid::text AS xid, id FROM outbox ${where} ORDER BY xid, id`);
    const [owed, done] = await rowsOf(sql.fragment`WHERE kind = 'wallet_created' AND wallet_id <> ${walletId}`);
    await env.pool.query(sql.unsafe`
      INSERT INTO webhook_event_deliveries (subscription_id, event_xid, event_row, event_ordinal, delivered_at)
      VALUES (${subscription}, ${owed!.xid}::xid8, ${owed!.id}, 0, NULL), (${subscription}, ${done!.xid}::xid8, ${done!.id}, 0, now())
    `);
    await env.pool.query(
      sql.unsafe`UPDATE outbox SET created = now() - interval '200 hours' WHERE wallet_id IS DISTINCT FROM ${walletId}`,
    );
    const before = await outboxRowCount();

    const deleted = await deleteOldEvents(env.pool, 168, 5000);

    const remaining = (await rowsOf(sql.fragment``)).map((row) => row.id);
    expect(deleted).toBeGreaterThan(0);
    expect(remaining.length).toBe(before - deleted);
    expect(remaining).toContain(owed!.id);
    expect(remaining).not.toContain(done!.id);
    const ofNewWallet = await outboxTypes(walletId);
    expect(ofNewWallet).toEqual(['WalletCreated']); // recent: kept
    expect(await deleteOldEvents(env.pool, 168, 5000)).toBe(0);

    // Once the subscription is removed, nothing is owed: the event goes too.
    await env.pool.query(sql.unsafe`UPDATE webhook_subscriptions SET active = false WHERE id = ${subscription}`);
    expect(await deleteOldEvents(env.pool, 168, 5000)).toBe(1);
    expect((await rowsOf(sql.fragment``)).map((row) => row.id)).not.toContain(owed!.id);
  });
});

function verifiesAsStandardWebhook(secret: string, headers: Record<string, string>, body: string): boolean {
  try {
    new Webhook(secret).verify(body, headers);
    return true;
  } catch {
    return false;
  }
}
