import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { auditEventStream, describeEventViolation } from '../../src/shared/audit/event-audit.js';
import { EventStreamPublisher, eventStreamKey } from '../../src/shared/events/event-stream.js';
import { relayOutbox } from '../../src/shared/events/outbox-relay.js';
import { listOutboxEvents } from '../../src/shared/events/outbox-repository.js';
import { startWorker, type RunningWorker } from '../../src/worker/worker.js';
import { request } from '../support/http.js';
import { createTestEnv, silentLogger, startTestApi, waitUntil, type TestEnv } from '../support/test-env.js';

/** Hold events (migration 009): written once with each decision and flip, typed by what it recorded. */
let env: TestEnv;
let api: Awaited<ReturnType<typeof startTestApi>>;
let worker: RunningWorker;
let redis: Redis;

beforeAll(async () => {
  env = await createTestEnv('hold_events', { SWEEP_INTERVAL_MS: '200' });
  api = await startTestApi(env);
  worker = await startWorker(env.config, silentLogger);
  redis = new Redis(env.config.REDIS_URL);
});

afterAll(async () => {
  redis?.disconnect();
  await worker?.close();
  await api?.close();
  await env?.destroy();
});

const wait = { prefer: 'wait=10' };

async function walletWith(amount: number, currency?: string): Promise<number> {
  const id = (
    await request(api.url, 'POST', '/wallets', {
      json: { externalId: `hold-events-${randomUUID()}`, ...(currency ? { currency } : {}) },
    })
  ).body.id as number;
  const deposit = await request(api.url, 'POST', `/wallets/${id}/transactions`, {
    json: { amount, fingerprint: `deposit-${randomUUID()}` },
    headers: wait,
  });
  expect(deposit.status).toBe(201);
  return id;
}

const hold = (id: number, json: Record<string, unknown>) =>
  request(api.url, 'POST', `/wallets/${id}/holds`, {
    json: { fingerprint: `h-${randomUUID()}`, ...json },
    headers: wait,
  });
const getHold = async (id: number, holdId: string) =>
  (await request(api.url, 'GET', `/wallets/${id}/holds/${holdId}`)).body;
const settled = (id: number, holdId: string) =>
  waitUntil(`hold ${holdId} is settled`, async () => (await getHold(id, holdId)).held === false);

const holdEvents = async (walletId: number) =>
  (await listOutboxEvents(env.pool, { walletId })).filter((event) => event.type.startsWith('Hold'));

const holdRowKinds = () =>
  env.pool.anyFirst(sql.type(z.object({ kind: z.string() }))`
    SELECT kind FROM outbox WHERE kind IN ('holds_decided', 'holds_settled') ORDER BY xid, id
  `);

describe('hold events', () => {
  it('When holds are created, rejected, captured, released and expired, then each gets its decision event and one settlement event, with amount, currency and ids, in order', async () => {
    const id = await walletWith(100, 'JPY');
    const captured = await hold(id, { amount: 40, labels: { order: '1' } });
    const rejected = await hold(id, { amount: 70 });
    expect(rejected.status).toBe(422);
    const released = await hold(id, { amount: 10 });
    const expiring = await hold(id, { amount: 5, expiresInSeconds: 2 });
    // The decision events as built right after the decisions, before any capture, release or expiry.
    const decisionTypes = new Set(['HoldCreated', 'HoldRejected']);
    const decisions = async () => (await holdEvents(id)).filter((event) => decisionTypes.has(event.type));
    const decidedEvents = await decisions();
    const statusesAtSnapshot = await env.pool.anyFirst(sql.type(z.object({ status: z.string() }))`
      SELECT status FROM holds WHERE wallet_id = ${id} ORDER BY seq
    `);
    expect(statusesAtSnapshot).toEqual(['active', 'rejected', 'active', 'active']);
    expect(decidedEvents.map((event) => `${event.type} ${event.subject}`)).toEqual([
      `HoldCreated ${captured.body.id}`,
      `HoldRejected ${rejected.body.id}`,
      `HoldCreated ${released.body.id}`,
      `HoldCreated ${expiring.body.id}`,
    ]);
    const capture = await request(api.url, 'POST', `/wallets/${id}/holds/${captured.body.id}/capture`, {
      json: { amount: 25 },
    });
    expect(capture.status).toBe(202);
    expect(
      (
        await request(api.url, 'POST', `/wallets/${id}/holds/${released.body.id}/release`, {
          json: { fingerprint: `rel-${randomUUID()}` },
        })
      ).status,
    ).toBe(202);
    await waitUntil('the hold expired', async () => (await getHold(id, expiring.body.id)).status === 'expired');
    for (const made of [captured, released, expiring]) await settled(id, made.body.id);

    const events = await holdEvents(id);
    expect(events.map((event) => `${event.type} ${event.subject}`)).toEqual([
      `HoldCreated ${captured.body.id}`,
      `HoldRejected ${rejected.body.id}`,
      `HoldCreated ${released.body.id}`,
      `HoldCreated ${expiring.body.id}`,
      `HoldCaptured ${captured.body.id}`,
      `HoldReleased ${released.body.id}`,
      `HoldExpired ${expiring.body.id}`,
    ]);
    const data = (type: string, subject: string) =>
      JSON.parse(events.find((event) => event.type === type && event.subject === subject)!.data);
    expect(data('HoldCreated', captured.body.id)).toMatchObject({
      holdId: captured.body.id,
      walletId: id,
      amount: 40,
      currency: 'JPY',
      labels: { order: '1' },
      status: 'active',
    });
    expect(data('HoldRejected', rejected.body.id)).toMatchObject({
      holdId: rejected.body.id,
      amount: 70,
      currency: 'JPY',
      reason: 'insufficient_funds',
      available: 60,
    });
    expect(data('HoldCaptured', captured.body.id)).toEqual({
      holdId: captured.body.id,
      walletId: id,
      amount: 40,
      currency: 'JPY',
      capturedAmount: 25,
      transactionId: capture.body.captureTransactionId,
    });
    expect(data('HoldReleased', released.body.id)).toMatchObject({ holdId: released.body.id, currency: 'JPY' });
    expect(data('HoldExpired', expiring.body.id)).toMatchObject({ holdId: expiring.body.id, amount: 5 });
    // The capture's debit is an ordinary transaction: its events follow the HoldCaptured.
    const all = await listOutboxEvents(env.pool, { walletId: id });
    const capturedAt = all.findIndex((event) => event.type === 'HoldCaptured');
    const debitEvents = all.filter((event) => event.subject === capture.body.captureTransactionId);
    expect(debitEvents.map((event) => event.type)).toEqual(['TransactionCreated', 'BalanceChanged']);
    expect(all.indexOf(debitEvents[0]!)).toBeGreaterThan(capturedAt);
    // Built again now that every hold has been captured, released or expired, the decision events
    // are the ones built before: same ids, data, times and positions.
    const statusesNow = await env.pool.anyFirst(sql.type(z.object({ status: z.string() }))`
      SELECT status FROM holds WHERE wallet_id = ${id} ORDER BY seq
    `);
    expect(statusesNow).toEqual(['captured', 'rejected', 'released', 'expired']);
    expect(await decisions()).toEqual(decidedEvents);
    expect(events.filter((event) => decisionTypes.has(event.type))).toEqual(decidedEvents);
  });

  it('When a wallet without holds takes transactions, then no hold outbox row is written', async () => {
    const before = await holdRowKinds();
    const id = await walletWith(10);
    for (const amount of [5, -3, -20]) {
      await request(api.url, 'POST', `/wallets/${id}/transactions`, {
        json: { amount, fingerprint: `plain-${randomUUID()}` },
        headers: wait,
      });
    }
    expect(await holdRowKinds()).toEqual(before);
    const kinds = await env.pool.anyFirst(sql.type(z.object({ kind: z.string() }))`
      SELECT DISTINCT o.kind FROM outbox o WHERE ${id} = ANY(o.wallet_ids)
    `);
    expect([...kinds].sort()).toEqual(['transactions_decided', 'transactions_reserved']);
  });

  it('When the events reach the Redis stream, then the stream audit finds one decision event per hold and at most one settlement, and a duplicated settlement is a violation', async () => {
    const id = await walletWith(50);
    const made = await hold(id, { amount: 20 });
    const other = await hold(id, { amount: 10 });
    await request(api.url, 'POST', `/wallets/${id}/holds/${made.body.id}/capture`, { json: {} });
    await request(api.url, 'POST', `/wallets/${id}/holds/${other.body.id}/release`, { json: {} });
    await settled(id, made.body.id);
    await settled(id, other.body.id);
    const publisher = new EventStreamPublisher(redis, env.config.QUEUE_PREFIX);
    while ((await relayOutbox(env.pool, publisher, 1000)).relayed > 0);
    const stream = eventStreamKey(env.config.QUEUE_PREFIX);
    expect((await auditEventStream(env.pool, redis, stream)).map(describeEventViolation)).toEqual([]);

    // A second settlement of the released hold, as a broken relay or producer would publish it.
    const entries = await redis.xrange(stream, '-', '+');
    const releasedEntry = entries
      .map(([, fields]) => JSON.parse(fields[fields.indexOf('event') + 1]!))
      .find((event) => event.type === 'HoldReleased' && event.subject === other.body.id);
    expect(releasedEntry).toBeDefined();
    await redis.xadd(
      stream,
      '*',
      'event',
      JSON.stringify({ ...releasedEntry, id: randomUUID(), type: 'HoldExpired' }),
      'pos',
      '99999999999999999999.9999999999999999999.9999999999',
    );
    const violations = (await auditEventStream(env.pool, redis, stream)).map(describeEventViolation);
    expect(violations).toEqual([expect.stringMatching(new RegExp(`hold ${other.body.id}: settlement events`))]);
  });
});
