import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startWorker, type RunningWorker } from '../../src/worker/worker.js';
import { request } from '../support/http.js';
import { findLedgerViolations } from '../support/ledger-invariants.js';
import { createTestEnv, silentLogger, startTestApi, type TestEnv } from '../support/test-env.js';

/** Wallet currencies: fixed at creation, the default from DEFAULT_CURRENCY, amounts held to their minor units. */
let env: TestEnv;
let api: Awaited<ReturnType<typeof startTestApi>>;
let worker: RunningWorker;

beforeAll(async () => {
  env = await createTestEnv('currencies', { DEFAULT_CURRENCY: 'USD' });
  api = await startTestApi(env);
  worker = await startWorker(env.config, silentLogger);
});

afterAll(async () => {
  await worker?.close();
  await api?.close();
  await env?.destroy();
});

let serial = 0;
async function wallet(currency?: string): Promise<number> {
  const json = { externalId: `currency-${++serial}`, ...(currency ? { currency } : {}) };
  const response = await request(api.url, 'POST', '/wallets', { json });
  expect(response.status).toBe(201);
  return response.body.id;
}

const transactionCount = () =>
  env.pool.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM transactions`);

const post = (walletId: number, amount: number | string, fingerprint: string) =>
  request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
    json: { amount, fingerprint },
    headers: { prefer: 'wait=10' },
  });

describe('wallet currencies', () => {
  it('When a wallet is created without a currency, then it has DEFAULT_CURRENCY, in the response and on reads', async () => {
    const id = await wallet();
    const read = await request(api.url, 'GET', `/wallets/${id}`);
    expect(read.body).toMatchObject({ id, currency: 'USD', balance: 0 });
  });

  it.each([
    ['JPY', 'JPY'],
    ['BHD', 'BHD'],
    ['EUR', 'EUR'],
  ])('When a wallet is created with %s, then it keeps it', async (currency, expected) => {
    const id = await wallet(currency);
    expect((await request(api.url, 'GET', `/wallets/${id}`)).body.currency).toBe(expected);
  });

  it.each(['ZZZ', 'eur', 'EURO', '', 42, null])(
    'When the currency is %j, then it answers 400 problem+json naming currency and creates nothing',
    async (currency) => {
      const before = await env.pool.oneFirst(
        sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM wallets`,
      );
      const response = await request(api.url, 'POST', '/wallets', {
        json: { externalId: `bad-${++serial}`, currency },
      });
      expect(response.status).toBe(400);
      expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(response.body.invalidParams.map((param: { name: string }) => param.name)).toEqual(['currency']);
      const after = await env.pool.oneFirst(
        sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM wallets`,
      );
      expect(after).toBe(before);
    },
  );

  it('When a JPY wallet is sent an amount with a fraction, then it answers 400 naming amount and JPY, and reserves nothing; whole yen are applied', async () => {
    const id = await wallet('JPY');
    const before = await transactionCount();
    for (const amount of [10.5, '10.50', '1.001']) {
      const refused = await post(id, amount, `jpy-fraction-${id}-${amount}`);
      expect(refused.status).toBe(400);
      expect(refused.body.invalidParams).toEqual([
        { name: 'amount', reason: 'amount must be a whole number in this currency (JPY)' },
      ]);
    }
    expect(await transactionCount()).toBe(before);
    const applied = await post(id, 1500, `jpy-whole-${id}`);
    expect(applied.status).toBe(201);
    expect(
      await (
        await fetch(`${api.url}/wallets/${id}/balance`, { headers: { authorization: `Bearer ${env.apiKey}` } })
      ).text(),
    ).toBe('1500.0');
  });

  it('When a BHD wallet gets amounts with three fractional digits, then they are applied exactly; four are refused', async () => {
    const id = await wallet('BHD');
    expect((await post(id, '10.125', `bhd-1-${id}`)).status).toBe(201);
    const withdrawal = await post(id, -0.5 - 1.001, `bhd-2-${id}`);
    expect(withdrawal.status).toBe(201);
    expect(withdrawal.body).toMatchObject({ amount: -1.501, oldbalance: 10.125, newbalance: 8.624 });
    const balance = await fetch(`${api.url}/wallets/${id}/balance`, {
      headers: { authorization: `Bearer ${env.apiKey}` },
    });
    expect(await balance.text()).toBe('8.624');
    const refused = await post(id, '1.0001', `bhd-3-${id}`);
    expect(refused.status).toBe(400);
    expect(refused.body.invalidParams[0].name).toBe('amount');
  });

  it('When an EUR wallet is sent three fractional digits, then it answers 400 with the 2-digit rule, and reserves nothing', async () => {
    const id = await wallet('EUR');
    const before = await transactionCount();
    const refused = await post(id, '1.005', `eur-3-${id}`);
    expect(refused.status).toBe(400);
    expect(refused.body.invalidParams).toEqual([
      { name: 'amount', reason: 'amount must be a decimal with at most 2 fractional digits (EUR)' },
    ]);
    expect(await transactionCount()).toBe(before);
  });

  it('When a currency is unknown to an unknown wallet, then the wallet is what is missing: 404 as before', async () => {
    const refused = await post(987_654, '1.005', `no-wallet-${++serial}`);
    expect(refused.status).toBe(404);
  });

  it('leaves a ledger that passes the audit (amounts within their minor units)', async () => {
    expect(await findLedgerViolations(env.pool)).toEqual([]);
  });
});
