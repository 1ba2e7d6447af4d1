import { randomUUID } from 'node:crypto';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderMetrics } from '../../src/shared/telemetry/metrics.js';
import { startWorker, type RunningWorker } from '../../src/worker/worker.js';
import { request } from '../support/http.js';
import { findLedgerViolations } from '../support/ledger-invariants.js';
import { createTestEnv, silentLogger, startTestApi, waitUntil, type TestEnv } from '../support/test-env.js';

const waitFor = (condition: () => Promise<boolean>) => waitUntil('the void settles', condition, 15_000);

let env: TestEnv;
let api: Awaited<ReturnType<typeof startTestApi>>;
let worker: RunningWorker;

beforeAll(async () => {
  env = await createTestEnv('voids');
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

async function walletWith(...amounts: string[]) {
  const walletId = (await request(api.url, 'POST', '/wallets', { json: { externalId: `void-${++serial}` } })).body.id;
  const transactions = [];
  for (const amount of amounts) {
    const posted = await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
      json: { amount, fingerprint: randomUUID() },
      headers: wait,
    });
    transactions.push(posted.body);
  }
  return { walletId: walletId as number, transactions };
}

const voidOf = (walletId: number, txId: string, body: object = {}, headers: Record<string, string> = {}) =>
  request(api.url, 'POST', `/wallets/${walletId}/transactions/${txId}/void`, { json: body, headers });
const balance = async (walletId: number) => (await request(api.url, 'GET', `/wallets/${walletId}/balance`)).text;
const transaction = async (walletId: number, txId: string) =>
  (await request(api.url, 'GET', `/wallets/${walletId}/transactions/${txId}`)).body;
/** Every transaction of the wallet (id and fingerprint), newest first: a refused void adds none. */
const transactionsOf = async (walletId: number) =>
  (await request(api.url, 'GET', `/wallets/${walletId}/transactions`)).body.items.map(
    (item: any) => `${item.id} ${item.fingerprint}`,
  );

describe('POST /wallets/:id/transactions/:txId/void', () => {
  it('When an applied deposit is voided, then a reversal with its own refno is applied and the original becomes voided', async () => {
    const { walletId, transactions } = await walletWith('10.00', '2.50');
    const [deposit] = transactions;
    const response = await voidOf(walletId, deposit.id, { reason: 'ticket cancelled' });
    expect(response.status).toBe(202);
    expect(response.body).toMatchObject({ status: 'pending', amount: -10, voids: deposit.id });
    expect(response.body.fingerprint).toBe(`void:${deposit.id}`);
    expect(response.body.labels).toEqual({ voids: deposit.id, reason: 'ticket cancelled' });
    expect(response.headers.get('location')).toBe(`/wallets/${walletId}/transactions/${response.body.id}`);

    const reversalId = response.body.id;
    await waitFor(async () => (await transaction(walletId, reversalId)).status === 'applied');
    expect(await transaction(walletId, reversalId)).toMatchObject({ refno: 3, oldbalance: 12.5, newbalance: 2.5 });
    expect(await transaction(walletId, deposit.id)).toMatchObject({ status: 'voided', voidedBy: reversalId, refno: 1 });
    expect(await balance(walletId)).toBe('2.5');
    const latest = (await request(api.url, 'GET', `/wallets/${walletId}/transactions/latest`)).body;
    expect(latest).toMatchObject({ id: reversalId, refno: 3 });
    // The worker runs in this process: its counter is in this process's registry.
    expect(await renderMetrics()).toMatch(/^wallet_transactions_voided_total [1-9]/m);
  });

  it('When the client prefers to wait, then the void answers 201 with the applied reversal', async () => {
    const { walletId, transactions } = await walletWith('5.00', '-1.00');
    const response = await voidOf(walletId, transactions[1].id, {}, wait);
    expect(response.status).toBe(201);
    expect(response.body).toMatchObject({ status: 'applied', amount: 1, refno: 3, newbalance: 5 });
  });

  it('When a transaction is voided twice, then the second answers 409 and the balance moves once', async () => {
    const { walletId, transactions } = await walletWith('7.00');
    await voidOf(walletId, transactions[0].id, {}, wait);
    const again = await voidOf(walletId, transactions[0].id, { fingerprint: 'another-void' }, wait);
    expect(again.status).toBe(409);
    expect(again.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    // Idempotent per original, whatever the fingerprint: the answer is the reversal it already has.
    expect(again.body).toMatchObject({
      type: '/problems/void-exists',
      transaction: { voids: transactions[0].id, status: 'applied', fingerprint: `void:${transactions[0].id}` },
    });
    expect(again.headers.get('location')).toBe(`/wallets/${walletId}/transactions/${again.body.transaction.id}`);
    expect(await balance(walletId)).toBe('0.0');
  });

  it('When the same void is sent by many clients at once, then exactly one reversal is reserved and applied', async () => {
    const { walletId, transactions } = await walletWith('9.00');
    const responses = await Promise.all(Array.from({ length: 10 }, () => voidOf(walletId, transactions[0].id)));
    expect(responses.filter((response) => response.status === 202)).toHaveLength(1);
    const refused = responses.filter((response) => response.status === 409);
    expect(refused).toHaveLength(9);
    // A retry meets the live reversal (or, racing the first, its fingerprint): either way the
    // answer is the reversal of this original, and nothing voids twice.
    for (const response of refused) {
      expect(['/problems/void-exists', '/problems/duplicate-fingerprint']).toContain(response.body.type);
      expect(response.body.transaction.voids).toBe(transactions[0].id);
    }
    await waitFor(async () => (await balance(walletId)) === '0.0');
    expect(await findLedgerViolations(env.pool)).toEqual([]);
  });

  it('When voids with different fingerprints race, then only one is live and the rest get 409', async () => {
    const { walletId, transactions } = await walletWith('4.00');
    const responses = await Promise.all(
      Array.from({ length: 6 }, (_, i) => voidOf(walletId, transactions[0].id, { fingerprint: `race-${serial}-${i}` })),
    );
    expect(responses.filter((response) => response.status === 202)).toHaveLength(1);
    const refused = responses.filter((response) => response.status === 409);
    expect(refused).toHaveLength(5);
    for (const response of refused) {
      expect(response.body).toMatchObject({
        type: '/problems/void-exists',
        transaction: { voids: transactions[0].id },
      });
    }
    await waitFor(async () => (await balance(walletId)) === '0.0');
  });

  it('When a plain transaction tries to take the void fingerprint of another, then it is refused and the real void still works', async () => {
    const { walletId, transactions } = await walletWith('6.00');
    const other = await walletWith('50.00');
    const squat = await request(api.url, 'POST', `/wallets/${other.walletId}/transactions`, {
      json: { amount: 1, fingerprint: `void:${transactions[0].id}` },
    });
    expect(squat.status).toBe(400);
    expect(squat.body.invalidParams[0].name).toBe('fingerprint');

    const real = await voidOf(walletId, transactions[0].id, {}, wait);
    expect(real.status).toBe(201);
    expect(real.body).toMatchObject({ voids: transactions[0].id, fingerprint: `void:${transactions[0].id}` });
  });

  it('When a void carries the void: fingerprint of another transaction, then it answers 400 and reserves nothing', async () => {
    const { walletId, transactions } = await walletWith('6.00', '2.00');
    const before = await transactionsOf(walletId);
    const response = await voidOf(walletId, transactions[0].id, { fingerprint: `void:${transactions[1].id}` });
    expect(response.status).toBe(400);
    expect(response.body.invalidParams[0].name).toBe('fingerprint');
    expect(await transactionsOf(walletId)).toEqual(before);
    expect((await voidOf(walletId, transactions[1].id, {}, wait)).status).toBe(201);
    expect(await transaction(walletId, transactions[0].id)).toMatchObject({ status: 'applied' });
    // Naming its own default fingerprint explicitly is fine.
    const own = await voidOf(walletId, transactions[0].id, { fingerprint: `void:${transactions[0].id}` }, wait);
    expect(own.status).toBe(201);
  });

  it('When a void is retried with another fingerprint while its reversal is pending, then it answers 409 void-exists with that reversal', async () => {
    const { walletId, transactions } = await walletWith('6.00');
    await worker.close();
    try {
      const first = await voidOf(walletId, transactions[0].id, { fingerprint: `first-${walletId}` });
      expect(first.status).toBe(202);
      const retry = await voidOf(walletId, transactions[0].id);
      expect(retry.status).toBe(409);
      expect(retry.body).toMatchObject({
        type: '/problems/void-exists',
        transaction: { id: first.body.id, voids: transactions[0].id, status: 'pending' },
      });
      expect(retry.headers.get('location')).toBe(`/wallets/${walletId}/transactions/${first.body.id}`);
    } finally {
      worker = await startWorker(env.config, silentLogger);
    }
    await waitFor(async () => (await balance(walletId)) === '0.0');
  });

  it('When a void uses a fingerprint another transaction holds, then it answers 409 fingerprint-reused, discloses nothing and reserves nothing', async () => {
    const { walletId, transactions } = await walletWith('6.00');
    const other = await walletWith();
    const taken = `taken-${randomUUID()}`;
    const holder = await request(api.url, 'POST', `/wallets/${other.walletId}/transactions`, {
      json: { amount: 3, fingerprint: taken },
    });
    const before = [await transactionsOf(walletId), await transactionsOf(other.walletId)];
    const response = await voidOf(walletId, transactions[0].id, { fingerprint: taken });
    expect(response.status).toBe(409);
    expect(response.body.type).toBe('/problems/fingerprint-reused');
    expect([await transactionsOf(walletId), await transactionsOf(other.walletId)]).toEqual(before);
    expect(response.body).not.toHaveProperty('transaction');
    expect(response.headers.get('location')).toBeNull();
    expect(response.text).not.toContain(holder.body.id);
    expect(await transaction(walletId, transactions[0].id)).toMatchObject({ status: 'applied' });
    expect(await balance(walletId)).toBe('6.0');
  });

  it('When the reversal would overdraw, then it ends rejected and the original stays applied; a later void with a new fingerprint works', async () => {
    const { walletId, transactions } = await walletWith('10.00', '-8.00');
    const rejected = await voidOf(walletId, transactions[0].id, {}, wait);
    expect(rejected.status).toBe(422);
    expect(rejected.body).toMatchObject({
      status: 'rejected',
      reason: 'insufficient_funds',
      voids: transactions[0].id,
    });
    expect(await transaction(walletId, transactions[0].id)).toMatchObject({ status: 'applied' });
    expect(await balance(walletId)).toBe('2.0');

    // Retrying the same void is idempotent: it is the rejected one.
    const retry = await voidOf(walletId, transactions[0].id);
    expect(retry.status).toBe(409);
    expect(retry.body.transaction).toMatchObject({ id: rejected.body.id, status: 'rejected' });

    await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
      json: { amount: 8, fingerprint: randomUUID() },
      headers: wait,
    });
    const second = await voidOf(walletId, transactions[0].id, { fingerprint: `second-try-${walletId}` }, wait);
    expect(second.status).toBe(201);
    expect(await balance(walletId)).toBe('0.0');
    expect(await findLedgerViolations(env.pool)).toEqual([]);
  });

  it('When the transaction is pending, rejected or itself a reversal, then the void answers 409 naming why', async () => {
    const { walletId, transactions } = await walletWith('-5.00', '3.00');
    const rejected = await voidOf(walletId, transactions[0].id);
    expect(rejected.status).toBe(409);
    expect(rejected.body.detail).toMatch(/it is rejected/);

    const reversal = await voidOf(walletId, transactions[1].id, {}, wait);
    const voidOfReversal = await voidOf(walletId, reversal.body.id);
    expect(voidOfReversal.status).toBe(409);
    expect(voidOfReversal.body.detail).toMatch(/itself a reversal/);

    // A pending one: reserve directly, with no worker pass in between.
    await worker.close();
    try {
      const pending = await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
        json: { amount: 1, fingerprint: randomUUID() },
      });
      const early = await voidOf(walletId, pending.body.id);
      expect(early.status).toBe(409);
      expect(early.body.detail).toMatch(/it is pending/);
    } finally {
      worker = await startWorker(env.config, silentLogger);
    }
  });

  it('When the transaction is older than the void window, then the void answers 422 and reserves nothing', async () => {
    const { walletId, transactions } = await walletWith('6.00');
    await env.pool.query(
      sql.unsafe`UPDATE transactions SET created = now() - interval '25 hours'
          WHERE coalesce(id, transaction_id(wallet_id, seq)) = ${transactions[0].id}`,
    );
    const before = await transactionsOf(walletId);
    const response = await voidOf(walletId, transactions[0].id);
    expect(response.status).toBe(422);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(response.body).toMatchObject({ type: '/problems/void-window-expired', status: 422 });
    expect(await transactionsOf(walletId)).toEqual(before);
    expect(await transaction(walletId, transactions[0].id)).toMatchObject({ status: 'applied' });
  });

  it('When the transaction is unknown, in another wallet, or the request is malformed, then it answers 404 or 400', async () => {
    const { walletId, transactions } = await walletWith('6.00');
    const other = await walletWith();
    expect((await voidOf(walletId, randomUUID())).status).toBe(404);
    expect((await voidOf(other.walletId, transactions[0].id)).status).toBe(404);
    expect((await voidOf(walletId, 'not-a-uuid')).status).toBe(400);
    const unknownField = await voidOf(walletId, transactions[0].id, { amount: 5 });
    expect(unknownField.status).toBe(400);
    expect(unknownField.body.invalidParams[0].reason).toMatch(/unknown field/);
    expect((await voidOf(walletId, transactions[0].id, { fingerprint: '' })).status).toBe(400);
    expect(await balance(walletId)).toBe('6.0');
  });
});
