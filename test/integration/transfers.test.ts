import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { auditLedger } from '../../src/shared/audit/ledger-audit.js';
import type { OutboxEvent } from '../../src/shared/events/cloud-events.js';
import { listOutboxEvents } from '../../src/shared/events/outbox-repository.js';
import { eventStreamKey } from '../../src/shared/events/event-stream.js';
import { insertTransfers } from '../../src/shared/transfers/transfer-repository.js';
import { startWorker, type RunningWorker } from '../../src/worker/worker.js';
import { request } from '../support/http.js';
import { parseMetrics, sampleValue } from '../support/prometheus-text.js';
import { findLedgerViolations } from '../support/ledger-invariants.js';
import { createTestEnv, silentLogger, startTestApi, waitUntil, type TestEnv } from '../support/test-env.js';

/** Transfers: a debit leg through the source's queue, the credit leg reserved when it is applied. */
let env: TestEnv;
let api: Awaited<ReturnType<typeof startTestApi>>;
let worker: RunningWorker;

beforeAll(async () => {
  env = await createTestEnv('transfers');
  api = await startTestApi(env);
  worker = await startWorker(env.config, silentLogger);
});

afterAll(async () => {
  await worker?.close();
  await api?.close();
  await env?.destroy();
});

const wait = { prefer: 'wait=10' };
let serial = 0;

async function walletWith(amount: number | null, currency?: string): Promise<number> {
  const json = { externalId: `transfer-${++serial}-${randomUUID()}`, ...(currency ? { currency } : {}) };
  const id = (await request(api.url, 'POST', '/wallets', { json })).body.id as number;
  if (amount !== null) {
    const deposit = await request(api.url, 'POST', `/wallets/${id}/transactions`, {
      json: { amount, fingerprint: `deposit-${id}` },
      headers: wait,
    });
    expect(deposit.status).toBe(201);
  }
  return id;
}

const balanceOf = async (id: number) => (await request(api.url, 'GET', `/wallets/${id}`)).body.balance as number;
const counts = () =>
  env.pool.one(sql.type(z.object({ transfers: z.number(), transactions: z.number() }))`
    SELECT (SELECT count(*)::int FROM transfers) AS transfers, (SELECT count(*)::int FROM transactions) AS transactions
  `);
const transfer = (json: Record<string, unknown>, headers: Record<string, string> = wait) =>
  request(api.url, 'POST', '/transfers', { json, headers });

describe('POST /transfers', () => {
  it('When the source covers it, then it answers 201 completed, each leg is an ordinary transaction of its wallet with transferId, and both wallets list it', async () => {
    const from = await walletWith(100);
    const to = await walletWith(5);
    const fingerprint = `ok-${from}`;
    const done = await transfer({ from, to, amount: '30.50', fingerprint, labels: { why: 'prize' }, description: 'd' });
    expect(done.status).toBe(201);
    expect(done.headers.get('location')).toBe(`/transfers/${done.body.id}`);
    expect(done.body).toMatchObject({ from, to, amount: 30.5, currency: 'EUR', status: 'completed', fingerprint });
    expect(await balanceOf(from)).toBe(69.5);
    expect(await balanceOf(to)).toBe(35.5);

    const debit = await request(api.url, 'GET', `/wallets/${from}/transactions/${done.body.debit}`);
    expect(debit.body).toMatchObject({ amount: -30.5, status: 'applied', refno: 2, transferId: done.body.id });
    expect(debit.body).toMatchObject({ oldbalance: 100, newbalance: 69.5, labels: { why: 'prize' } });
    const credit = await request(api.url, 'GET', `/wallets/${to}/transactions/${done.body.credit}`);
    expect(credit.body).toMatchObject({ amount: 30.5, status: 'applied', refno: 2, transferId: done.body.id });
    expect(credit.body).toMatchObject({ oldbalance: 5, newbalance: 35.5 });

    expect((await request(api.url, 'GET', `/transfers/${done.body.id}`)).body).toEqual(done.body);
    expect((await request(api.url, 'GET', `/transfers/by-fingerprint/${fingerprint}`)).body).toEqual(done.body);
    for (const wallet of [from, to]) {
      const listed = await request(api.url, 'GET', `/wallets/${wallet}/transfers`);
      expect(listed.status).toBe(200);
      expect(listed.body.items.map((item: { id: string }) => item.id)).toEqual([done.body.id]);
    }
    const latest = await request(api.url, 'GET', `/wallets/${to}/transactions/latest`);
    expect(latest.body).toMatchObject({ id: done.body.credit, refno: 2, amount: 30.5 });
  });

  it('When the debit would overdraw, then the transfer is rejected (422 insufficient_funds) and no credit leg ever appears', async () => {
    const from = await walletWith(10);
    const to = await walletWith(null);
    const refused = await transfer({ from, to, amount: 10.01, fingerprint: `overdraw-${from}` });
    expect(refused.status).toBe(422);
    expect(refused.body).toMatchObject({ status: 'rejected', reason: 'insufficient_funds' });
    expect(refused.body.credit).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const again = await request(api.url, 'GET', `/transfers/${refused.body.id}`);
    expect(again.body).toMatchObject({ status: 'rejected' });
    expect(again.body.credit).toBeUndefined();
    expect(await balanceOf(from)).toBe(10);
    expect(await balanceOf(to)).toBe(0);
    const toTransactions = await request(api.url, 'GET', `/wallets/${to}/transactions`);
    expect(toTransactions.body.items).toEqual([]);
  });

  it('When it is answered without waiting, then 202 pending, and it completes', async () => {
    const from = await walletWith(50);
    const to = await walletWith(null);
    const accepted = await transfer({ from, to, amount: 20, fingerprint: `async-${from}` }, {});
    expect(accepted.status).toBe(202);
    expect(accepted.body).toMatchObject({ status: 'pending' });
    await waitUntil('the transfer completes', async () => {
      const read = await request(api.url, 'GET', `/transfers/${accepted.body.id}`);
      return read.body.status === 'completed';
    });
    expect(await balanceOf(to)).toBe(20);
  });

  it('When the fingerprint is replayed, then 409 duplicate-fingerprint with the transfer; reused for another request, 409 fingerprint-reused; nothing more is reserved', async () => {
    const from = await walletWith(100);
    const to = await walletWith(null);
    const body = { from, to, amount: 7, fingerprint: `replay-${from}`, labels: { a: 'b' } };
    const first = await transfer(body);
    expect(first.status).toBe(201);
    const before = await counts();
    const replay = await transfer({ ...body, amount: '7.00' });
    expect(replay.status).toBe(409);
    expect(replay.body).toMatchObject({ type: '/problems/duplicate-fingerprint', transfer: { id: first.body.id } });
    expect(replay.headers.get('location')).toBe(`/transfers/${first.body.id}`);
    for (const other of [
      { ...body, amount: 8 },
      { ...body, to: from, from: to },
      { ...body, labels: {} },
    ]) {
      const reused = await transfer(other);
      expect(reused.status).toBe(409);
      expect(reused.body.type).toBe('/problems/fingerprint-reused');
      expect(reused.body.transfer).toBeUndefined();
    }
    expect(await counts()).toEqual(before);
    expect(await balanceOf(from)).toBe(93);
  });

  it('When the same transfer is posted by many clients at once, then exactly one reserves it, the others get 409 duplicate-fingerprint with that transfer, and it moves the money once', async () => {
    const from = await walletWith(100);
    const to = await walletWith(null);
    const body = { from, to, amount: 25, fingerprint: `race-${from}` };
    const answers = await Promise.all(Array.from({ length: 12 }, () => transfer(body, {})));
    const accepted = answers.filter((answer) => answer.status === 202);
    expect(accepted).toHaveLength(1);
    const others = answers.filter((answer) => answer.status !== 202);
    expect(others.map((answer) => answer.status)).toEqual(Array(11).fill(409));
    for (const other of others) expect(other.body.transfer.id).toBe(accepted[0]!.body.id);
    await waitUntil('the transfer completes', async () => (await balanceOf(to)) === 25);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await balanceOf(from)).toBe(75);
    expect(await balanceOf(to)).toBe(25);
  });

  it.each([
    ['the same wallet on both sides', (from: number) => ({ to: from }), 400, 'to'],
    ['a zero amount', () => ({ amount: 0 }), 400, 'amount'],
    ['a negative amount', () => ({ amount: -5 }), 400, 'amount'],
    ['an amount under 1', () => ({ amount: '0.50' }), 400, 'amount'],
    ['three fractional digits for EUR', () => ({ amount: '1.005' }), 400, 'amount'],
    ['no fingerprint', () => ({ fingerprint: undefined }), 400, 'fingerprint'],
    ['an empty fingerprint', () => ({ fingerprint: '' }), 400, 'fingerprint'],
    ['an unknown field', () => ({ extra: 1 }), 400, 'body'],
    ['a wallet id that is not an integer', () => ({ to: 1.5 }), 400, 'to'],
  ])('When the body has %s, then it answers %s naming %s and reserves nothing', async (_, change, status, field) => {
    const from = await walletWith(100);
    const to = await walletWith(null);
    const before = await counts();
    const json = { from, to, amount: 10, fingerprint: `bad-${randomUUID()}`, ...change(from) };
    const refused = await transfer(json);
    expect(refused.status).toBe(status);
    expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(refused.body.invalidParams.map((param: { name: string }) => param.name)).toContain(field);
    expect(await counts()).toEqual(before);
  });

  it('When a wallet does not exist, then 404 naming it; when the currencies differ, then 422 currency-mismatch; a JPY fraction is 400; nothing is reserved', async () => {
    const eur = await walletWith(100);
    const usd = await walletWith(null, 'USD');
    const jpy = await walletWith(1000, 'JPY');
    const jpy2 = await walletWith(null, 'JPY');
    const before = await counts();
    const missing = await transfer({ from: eur, to: 987_654_321, amount: 1, fingerprint: `missing-${eur}` });
    expect(missing.status).toBe(404);
    expect(missing.body.detail).toContain('987654321');
    const missingFrom = await transfer({ from: 987_654_321, to: eur, amount: 1, fingerprint: `missing2-${eur}` });
    expect(missingFrom.status).toBe(404);
    const mismatch = await transfer({ from: eur, to: usd, amount: 1, fingerprint: `mismatch-${eur}` });
    expect(mismatch.status).toBe(422);
    expect(mismatch.body.type).toBe('/problems/currency-mismatch');
    const fraction = await transfer({ from: jpy, to: jpy2, amount: 1.5, fingerprint: `jpy-${jpy}` });
    expect(fraction.status).toBe(400);
    expect(await counts()).toEqual(before);
    const whole = await transfer({ from: jpy, to: jpy2, amount: 400, fingerprint: `jpy-whole-${jpy}` });
    expect(whole.body).toMatchObject({ status: 'completed', currency: 'JPY' });
  });

  it('When a leg is voided on its own, then 409 not-voidable: a transfer is never half undone', async () => {
    const from = await walletWith(100);
    const to = await walletWith(null);
    const done = await transfer({ from, to, amount: 10, fingerprint: `void-leg-${from}` });
    for (const [wallet, leg] of [
      [from, done.body.debit],
      [to, done.body.credit],
    ]) {
      const refused = await request(api.url, 'POST', `/wallets/${wallet}/transactions/${leg}/void`, { json: {} });
      expect(refused.status).toBe(409);
      expect(refused.body.type).toBe('/problems/not-voidable');
    }
  });

  it('When a plain transaction uses the transfer: fingerprint namespace, then 400', async () => {
    const id = await walletWith(null);
    const refused = await request(api.url, 'POST', `/wallets/${id}/transactions`, {
      json: { amount: 1, fingerprint: 'transfer:x:credit' },
    });
    expect(refused.status).toBe(400);
  });

  it('When unknown ids are read, then 404; malformed ones 400', async () => {
    expect((await request(api.url, 'GET', `/transfers/${randomUUID()}`)).status).toBe(404);
    expect((await request(api.url, 'GET', '/transfers/not-a-uuid')).status).toBe(400);
    expect((await request(api.url, 'GET', '/transfers/by-fingerprint/nobody')).status).toBe(404);
    expect((await request(api.url, 'GET', '/wallets/987654321/transfers')).status).toBe(404);
    const id = await walletWith(null);
    expect((await request(api.url, 'GET', `/wallets/${id}/transfers?cursor=abc`)).status).toBe(400);
  });
});

describe('POST /transfer-voids', () => {
  const voidTransfer = (id: string, headers: Record<string, string> = wait) =>
    request(api.url, 'POST', '/transfer-voids', { json: { transferId: id }, headers });
  const transferOf = async (id: string) => (await request(api.url, 'GET', `/transfers/${id}`)).body;

  it('When a completed transfer is voided, then its credit leg is reversed first, then its debit leg, each once; the balances are back and the audit is clean', async () => {
    const from = await walletWith(100);
    const to = await walletWith(3);
    const done = await transfer({ from, to, amount: 30, fingerprint: `void-${from}` });
    const reversal = await voidTransfer(done.body.id);
    expect(reversal.status).toBe(201);
    expect(reversal.body).toMatchObject({ walletId: to, amount: -30, status: 'applied', voids: done.body.credit });
    expect(reversal.body.transferId).toBe(done.body.id);
    await waitUntil('the transfer is voided', async () => (await transferOf(done.body.id)).status === 'voided');
    expect(await balanceOf(from)).toBe(100);
    expect(await balanceOf(to)).toBe(3);
    const debit = await request(api.url, 'GET', `/wallets/${from}/transactions/${done.body.debit}`);
    expect(debit.body).toMatchObject({ status: 'voided' });
    const back = await request(api.url, 'GET', `/wallets/${from}/transactions/${debit.body.voidedBy}`);
    expect(back.body).toMatchObject({
      amount: 30,
      status: 'applied',
      voids: done.body.debit,
      transferId: done.body.id,
    });
    const again = await voidTransfer(done.body.id);
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ type: '/problems/transfer-void-exists', transfer: { status: 'voided' } });
    expect(await findLedgerViolations(env.pool)).toEqual([]);
  });

  it('When the destination spent the money, then the void is rejected (422 insufficient_funds) and the transfer stays completed; after a deposit a new void works', async () => {
    const from = await walletWith(100);
    const to = await walletWith(null);
    const done = await transfer({ from, to, amount: 30, fingerprint: `void-spent-${from}` });
    const spend = await request(api.url, 'POST', `/wallets/${to}/transactions`, {
      json: { amount: -20, fingerprint: `spend-${to}` },
      headers: wait,
    });
    expect(spend.status).toBe(201);
    const refused = await voidTransfer(done.body.id);
    expect(refused.status).toBe(422);
    expect(refused.body).toMatchObject({ status: 'rejected', reason: 'insufficient_funds' });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await transferOf(done.body.id)).status).toBe('completed');
    expect(await balanceOf(from)).toBe(70);
    expect(await balanceOf(to)).toBe(10);
    await request(api.url, 'POST', `/wallets/${to}/transactions`, {
      json: { amount: 20, fingerprint: `refill-${to}` },
      headers: wait,
    });
    expect((await voidTransfer(done.body.id)).status).toBe(201);
    await waitUntil('the transfer is voided', async () => (await transferOf(done.body.id)).status === 'voided');
    expect(await balanceOf(from)).toBe(100);
    expect(await balanceOf(to)).toBe(0);
    expect(await findLedgerViolations(env.pool)).toEqual([]);
  });

  it('When the transfer is rejected, then 409 transfer-not-voidable; when it does not exist, 404', async () => {
    const from = await walletWith(5);
    const to = await walletWith(null);
    const rejected = await transfer({ from, to, amount: 6, fingerprint: `void-rejected-${from}` });
    const refused = await voidTransfer(rejected.body.id);
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ type: '/problems/transfer-not-voidable', transfer: { status: 'rejected' } });
    expect((await voidTransfer(randomUUID())).status).toBe(404);
  });

  it('When many clients void one transfer at once, then exactly one reversal of each leg is made', async () => {
    const from = await walletWith(100);
    const to = await walletWith(null);
    const done = await transfer({ from, to, amount: 10, fingerprint: `void-race-${from}` });
    const answers = await Promise.all(Array.from({ length: 8 }, () => voidTransfer(done.body.id, {})));
    expect(answers.filter((answer) => answer.status === 202)).toHaveLength(1);
    expect(answers.filter((answer) => answer.status === 409)).toHaveLength(7);
    await waitUntil('the transfer is voided', async () => (await transferOf(done.body.id)).status === 'voided');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await balanceOf(from)).toBe(100);
    expect(await balanceOf(to)).toBe(0);
    expect(await findLedgerViolations(env.pool)).toEqual([]);
  });
});

describe('transfer events', () => {
  it('When a transfer completes, then TransferCreated precedes its debit leg and TransferCompleted follows its credit; a rejected one ends with TransferRejected', async () => {
    const from = await walletWith(100);
    const to = await walletWith(null);
    const done = await transfer({ from, to, amount: 40, fingerprint: `events-${from}` });
    const rejected = await transfer({ from, to, amount: 61, fingerprint: `events-rejected-${from}` });
    expect(rejected.body.status).toBe('rejected');
    const ofTransfers = (events: readonly OutboxEvent[]) =>
      events
        .filter((event) => event.type !== 'WalletCreated')
        .map((event) => `${event.type} ${event.type.startsWith('Transfer') ? event.subject : ''}`.trim());
    expect(ofTransfers(await listOutboxEvents(env.pool, { walletId: from }))).toEqual([
      'TransactionCreated',
      'BalanceChanged',
      `TransferCreated ${done.body.id}`,
      'TransactionCreated',
      'BalanceChanged',
      `TransferCreated ${rejected.body.id}`,
      'TransactionCreated',
      'TransactionRejected',
      `TransferRejected ${rejected.body.id}`,
    ]);
    const toEvents = await listOutboxEvents(env.pool, { walletId: to });
    expect(ofTransfers(toEvents)).toEqual([
      'TransactionCreated',
      'BalanceChanged',
      `TransferCompleted ${done.body.id}`,
    ]);
    expect(JSON.parse(toEvents.at(-1)!.data)).toEqual({
      transferId: done.body.id,
      from,
      to,
      amount: 40,
      currency: 'EUR',
      credit: done.body.credit,
    });
    const all = await listOutboxEvents(env.pool);
    expect(new Set(all.map((event) => event.eventId)).size).toBe(all.length);
    expect(new Set(all.map((event) => event.position)).size).toBe(all.length);
  });
});

describe('transfer events of a group', () => {
  it('When transfers are reserved in one group (one outbox row), then each has one TransferCreated right before its debit leg, and every one reaches the stream', async () => {
    const sources = await Promise.all([1, 2, 3].map(() => walletWith(50)));
    const to = await walletWith(null);
    const group = await insertTransfers(
      env.pool,
      sources.map((from) => ({
        fingerprint: `group-${from}-${randomUUID()}`,
        from,
        to,
        amount: '5.00',
        currency: 'EUR',
        labels: {},
        description: null,
        traceContext: null,
      })),
    );
    expect(group).toHaveLength(3);
    // Not enqueued: the sweeper finds the debits (SWEEP_STALE_AFTER_MS) and the queue completes them.
    await waitUntil('the group completed', async () => (await balanceOf(to)) === 15);
    const all = await listOutboxEvents(env.pool);
    expect(new Set(all.map((event) => event.position)).size).toBe(all.length);
    for (const made of group) {
      const created = all.findIndex((event) => event.type === 'TransferCreated' && event.subject === made.id);
      expect(all.filter((event) => event.type === 'TransferCreated' && event.subject === made.id)).toHaveLength(1);
      expect(all[created + 1]).toMatchObject({ type: 'TransactionCreated', subject: made.debitId });
    }
    const redis = new Redis(env.config.REDIS_URL);
    try {
      const createdOnStream = async () =>
        (await redis.xrange(eventStreamKey(env.config.QUEUE_PREFIX), '-', '+'))
          .map(([, fields]) => JSON.parse(fields[fields.indexOf('event') + 1]!) as { type: string; subject: string })
          .filter((event) => event.type === 'TransferCreated' && group.some((made) => made.id === event.subject));
      await waitUntil('the relay published them', async () => (await createdOnStream()).length >= 3);
      expect((await createdOnStream()).map((event) => event.subject).sort()).toEqual(
        group.map((made) => made.id).sort(),
      );
    } finally {
      redis.disconnect();
    }
  });
});

describe('transfer void events', () => {
  const voidTransfer = (id: string) =>
    request(api.url, 'POST', '/transfer-voids', { json: { transferId: id }, headers: wait });
  const ofTransfer = async (walletId: number, transferId: string) =>
    (await listOutboxEvents(env.pool, { walletId })).filter(
      (event) => event.type.startsWith('TransferVoid') && event.subject === transferId,
    );

  it('When a completed transfer is voided, then one TransferVoid follows its debit reversal, on the source wallet, with amount and currency', async () => {
    const from = await walletWith(100);
    const to = await walletWith(null);
    const done = await transfer({ from, to, amount: 30, fingerprint: `void-event-${from}` });
    expect((await voidTransfer(done.body.id)).status).toBe(201);
    await waitUntil(
      'the transfer is voided',
      async () => (await request(api.url, 'GET', `/transfers/${done.body.id}`)).body.status === 'voided',
    );
    const debit = await request(api.url, 'GET', `/wallets/${from}/transactions/${done.body.debit}`);
    const events = await listOutboxEvents(env.pool, { walletId: from });
    const voided = events.filter((event) => event.type === 'TransferVoid');
    expect(voided).toHaveLength(1);
    expect(JSON.parse(voided[0]!.data)).toEqual({
      transferId: done.body.id,
      from,
      to,
      amount: 30,
      currency: 'EUR',
      debitReversal: debit.body.voidedBy,
    });
    // After the debit reversal's own events.
    const reversalVoid = events.findIndex(
      (event) => event.type === 'TransactionVoid' && event.subject === done.body.debit,
    );
    expect(events.indexOf(voided[0]!)).toBeGreaterThan(reversalVoid);
    expect(await ofTransfer(to, done.body.id)).toEqual([]);
    const all = await listOutboxEvents(env.pool);
    expect(new Set(all.map((event) => event.position)).size).toBe(all.length);
  });

  it('When the void of a transfer is rejected, then TransferVoidRejected says so on the destination and no TransferVoid appears', async () => {
    const from = await walletWith(100);
    const to = await walletWith(null);
    const done = await transfer({ from, to, amount: 30, fingerprint: `void-refused-event-${from}` });
    await request(api.url, 'POST', `/wallets/${to}/transactions`, {
      json: { amount: -20, fingerprint: `spend-event-${to}` },
      headers: wait,
    });
    const refused = await voidTransfer(done.body.id);
    expect(refused.status).toBe(422);
    const events = await ofTransfer(to, done.body.id);
    expect(events.map((event) => event.type)).toEqual(['TransferVoidRejected']);
    expect(JSON.parse(events[0]!.data)).toEqual({
      transferId: done.body.id,
      from,
      to,
      amount: 30,
      currency: 'EUR',
      creditReversal: refused.body.id,
      reason: 'insufficient_funds',
    });
    expect(await ofTransfer(from, done.body.id)).toEqual([]);
  });
});

describe('transfer metrics', () => {
  it('When transfers complete and are rejected, then wallet_transfers_total counts each outcome once', async () => {
    const count = async (outcome: string) =>
      sampleValue(parseMetrics(await (await fetch(`${api.url}/metrics`)).text()), 'wallet_transfers_total', {
        outcome,
      }) ?? 0;
    const before = {
      requested: await count('requested'),
      completed: await count('completed'),
      rejected: await count('rejected'),
    };
    const from = await walletWith(10);
    const to = await walletWith(null);
    expect((await transfer({ from, to, amount: 4, fingerprint: `metrics-ok-${from}` })).status).toBe(201);
    expect((await transfer({ from, to, amount: 7, fingerprint: `metrics-no-${from}` })).status).toBe(422);
    // The in-process worker shares this process's registry with the API.
    expect(await count('requested')).toBe(before.requested + 2);
    expect(await count('completed')).toBe(before.completed + 1);
    expect(await count('rejected')).toBe(before.rejected + 1);
  });
});

describe('transfer void metrics', () => {
  it('When transfer voids are requested, applied and rejected, then wallet_transfer_voids_total counts each outcome once, and no void counts as a completed or rejected transfer', async () => {
    const count = async (name: string, outcome: string) =>
      sampleValue(parseMetrics(await (await fetch(`${api.url}/metrics`)).text()), name, { outcome }) ?? 0;
    const read = async () => ({
      requested: await count('wallet_transfer_voids_total', 'requested'),
      voided: await count('wallet_transfer_voids_total', 'voided'),
      rejected: await count('wallet_transfer_voids_total', 'rejected'),
      completed: await count('wallet_transfers_total', 'completed'),
      transfersRejected: await count('wallet_transfers_total', 'rejected'),
    });
    const from = await walletWith(100);
    const to = await walletWith(null);
    const kept = await transfer({ from, to, amount: 30, fingerprint: `void-metrics-kept-${from}` });
    const undone = await transfer({ from, to, amount: 10, fingerprint: `void-metrics-undone-${from}` });
    await request(api.url, 'POST', `/wallets/${to}/transactions`, {
      json: { amount: -25, fingerprint: `void-metrics-spend-${to}` },
      headers: wait,
    });
    const before = await read();
    const voidOf = (id: string) =>
      request(api.url, 'POST', '/transfer-voids', { json: { transferId: id }, headers: wait });
    expect((await voidOf(kept.body.id)).status).toBe(422);
    expect((await voidOf(undone.body.id)).status).toBe(201);
    await waitUntil(
      'the transfer is voided',
      async () => (await request(api.url, 'GET', `/transfers/${undone.body.id}`)).body.status === 'voided',
    );
    expect(await read()).toEqual({
      ...before,
      requested: before.requested + 2,
      voided: before.voided + 1,
      rejected: before.rejected + 1,
    });
  });
});

describe('transfers at the edges of a currency', () => {
  it('When two wallets of one code keep different minor units (one from before currencies), then an amount that fits only the source is 400 and nothing is reserved', async () => {
    const from = await walletWith(10, 'BHD');
    const to = await walletWith(null, 'BHD');
    // What migration 006 leaves for a wallet that existed before currencies: 2 digits.
    await env.pool.query(sql.unsafe`UPDATE wallets SET minor_units = 2 WHERE id = ${to}`);
    const before = await counts();
    const refused = await transfer({ from, to, amount: '1.005', fingerprint: `edge-precision-${from}` });
    expect(refused.status).toBe(400);
    expect(refused.body.invalidParams).toEqual([expect.objectContaining({ name: 'amount' })]);
    expect(await counts()).toEqual(before);
    expect((await transfer({ from, to, amount: '1.01', fingerprint: `edge-fits-${from}` })).status).toBe(201);
    expect((await auditLedger(env.pool, { walletId: to })).violations).toEqual([]);
  });

  it('When a credit takes a wallet past its balance cap, then it is applied (the money left the source), a deposit past the cap is still refused, and the audit allows exactly that', async () => {
    const from = await walletWith(100);
    const to = await walletWith(null);
    // Ten below the EUR cap (9,999,999,999,999.99), as one applied deposit.
    await env.pool.query(sql.unsafe`
      WITH deposit AS (
        INSERT INTO transactions (wallet_id, amount, fingerprint, labels, status, refno, oldbalance, newbalance, finalized)
        VALUES (${to}, 9999999999989.99, ${`edge-near-cap-${to}`}, '{}', 'applied', 1, 0, 9999999999989.99, now())
      )
      UPDATE wallets SET balance = 9999999999989.99, last_refno = 1, version = version + 1 WHERE id = ${to}
    `);
    const credited = await transfer({ from, to, amount: '50', fingerprint: `edge-cap-${from}` });
    expect(credited.body.status).toBe('completed');
    expect(await balanceOf(to)).toBe(10000000000039.99);
    const deposit = await request(api.url, 'POST', `/wallets/${to}/transactions`, {
      json: { amount: '1', fingerprint: `edge-over-cap-${to}` },
      headers: wait,
    });
    expect(deposit.body).toMatchObject({ status: 'rejected', reason: 'balance_limit_exceeded' });
    expect((await auditLedger(env.pool, { walletId: to })).violations).toEqual([]);
    // Only a transfer's credit may do it: the same rise by a plain deposit is reported.
    await env.pool.query(
      sql.unsafe`UPDATE transactions SET transfer_id = NULL WHERE wallet_id = ${to} AND amount = 50`,
    );
    expect((await auditLedger(env.pool, { walletId: to })).violations.map((v) => v.rule)).toContain('balance-in-range');
    await env.pool.query(sql.unsafe`
      UPDATE transactions t SET transfer_id = tr.id FROM transfers tr
      WHERE t.wallet_id = ${to} AND t.amount = 50 AND tr.to_wallet = ${to}
    `);
  });
});

const nothingPending = async () =>
  (await env.pool.oneFirst(sql.type(z.object({ n: z.number() }))`
    SELECT count(*)::int AS n FROM transactions WHERE status = 'pending'
  `)) === 0;

/** Audits money conservation in a loop until stopped; stop() gives every violation it saw. */
function watchConservation(): { stop(): Promise<string[]> } {
  let watching = true;
  const observed: string[] = [];
  const loop = (async () => {
    while (watching) {
      const report = await auditLedger(env.pool, {});
      observed.push(...report.violations.filter((v) => v.rule === 'money-conserved').map((v) => v.detail));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  return {
    async stop() {
      watching = false;
      await loop;
      return observed;
    },
  };
}

describe('many concurrent transfers in a ring of wallets', () => {
  it('When hundreds of transfers run both ways between a few wallets from many clients, then every one ends completed or rejected, money is conserved, no balance goes negative, and the audit finds nothing', async () => {
    const ring = await Promise.all(Array.from({ length: 5 }, () => walletWith(200)));
    const total = 5 * 200;
    const transfers = Array.from({ length: 300 }, (_, i) => {
      const from = ring[i % ring.length]!;
      const step = i % 2 === 0 ? 1 : ring.length - 1; // clockwise and counter-clockwise
      const to = ring[((i % ring.length) + step) % ring.length]!;
      return { from, to, amount: String(1 + ((i * 37) % 90)) + '.25', fingerprint: `ring-${ring[0]}-${i}` };
    });
    const queue = [...transfers];
    const answers: number[] = [];
    // While they run, an observer checks that money is never created: balances + credits in
    // flight never exceed what was deposited.
    const observer = watchConservation();
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let next = queue.shift(); next; next = queue.shift()) {
          answers.push((await transfer(next, {})).status);
        }
      }),
    );
    expect(answers.every((status) => status === 202)).toBe(true);
    await waitUntil('every transfer is final', nothingPending, 30_000);
    expect(await observer.stop()).toEqual([]);

    const outcomes = await Promise.all(
      transfers.map(
        async ({ fingerprint }) => (await request(api.url, 'GET', `/transfers/by-fingerprint/${fingerprint}`)).body,
      ),
    );
    const statuses = outcomes.map((outcome) => outcome.status as string);
    expect(statuses.filter((status) => status !== 'completed' && status !== 'rejected')).toEqual([]);
    expect(statuses).toContain('completed');
    for (const outcome of outcomes) expect(outcome.status === 'completed').toBe(outcome.credit !== undefined);
    const balances = await Promise.all(ring.map(balanceOf));
    expect(balances.every((balance) => balance >= 0)).toBe(true);
    const sum = await env.pool.oneFirst(sql.type(z.object({ sum: z.string() }))`
      SELECT sum(balance)::text AS sum FROM wallets WHERE id = ANY(${sql.array(ring, 'int8')})
    `);
    expect(Number(sum)).toBe(total);
    expect(await findLedgerViolations(env.pool)).toEqual([]);

    // Then a third of the completed ones are voided at once, while the observer watches again:
    // each ends voided or (its destination spent the money) stays completed, and money is conserved.
    const completed = outcomes.filter((outcome) => outcome.status === 'completed').filter((_, i) => i % 3 === 0);
    const watching = watchConservation();
    const voids = await Promise.all(
      completed.map((outcome) => request(api.url, 'POST', '/transfer-voids', { json: { transferId: outcome.id } })),
    );
    expect(voids.map((answer) => answer.status).filter((status) => status !== 202)).toEqual([]);
    await waitUntil('every void is final', nothingPending, 30_000);
    expect(await watching.stop()).toEqual([]);
    const afterVoids = await Promise.all(
      completed.map(
        async (outcome) => (await request(api.url, 'GET', `/transfers/${outcome.id}`)).body.status as string,
      ),
    );
    expect(afterVoids.filter((status) => status !== 'voided' && status !== 'completed')).toEqual([]);
    expect(afterVoids).toContain('voided');
    const sumAfter = await env.pool.oneFirst(sql.type(z.object({ sum: z.string() }))`
      SELECT sum(balance)::text AS sum FROM wallets WHERE id = ANY(${sql.array(ring, 'int8')})
    `);
    expect(Number(sumAfter)).toBe(total);
    expect((await Promise.all(ring.map(balanceOf))).every((balance) => balance >= 0)).toBe(true);
    expect(await findLedgerViolations(env.pool)).toEqual([]);
  }, 90_000);
});
