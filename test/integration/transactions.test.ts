import { randomUUID } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { Redis } from 'ioredis';
import { CheckIntegrityConstraintViolationError, sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createApplyQueue } from '../../src/shared/infra/queue.js';
import { TransactionReserver } from '../../src/shared/transactions/transactions.js';
import { startWorker, type RunningWorker } from '../../src/worker/worker.js';
import { request } from '../support/http.js';
import { createTestEnv, silentLogger, startTestApi, waitUntil, type TestEnv } from '../support/test-env.js';

let env: TestEnv;
let api: Awaited<ReturnType<typeof startTestApi>>;
let worker: RunningWorker;

beforeAll(async () => {
  env = await createTestEnv('transactions');
  api = await startTestApi(env);
  worker = await startWorker(env.config, silentLogger);
});

afterAll(async () => {
  await worker?.close();
  await api?.close();
  await env?.destroy();
});

let walletSerial = 0;
async function newWallet(): Promise<number> {
  const response = await request(api.url, 'POST', '/wallets', { json: { externalId: `tx-wallet-${++walletSerial}` } });
  return response.body.id as number;
}

function post(walletId: number, body: unknown, headers: Record<string, string> = {}) {
  return request(api.url, 'POST', `/wallets/${walletId}/transactions`, { json: body, headers });
}

const wait = { prefer: 'wait=10' };
const transactionCount = () =>
  env.pool.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM transactions`);

describe('POST /wallets/:id/transactions', () => {
  it('When a deposit is posted, then it answers 202 with the pending transaction and a Location that later shows it applied', async () => {
    const walletId = await newWallet();
    const response = await post(walletId, {
      amount: 10.0,
      fingerprint: 'TX123A001',
      labels: { couponId: '10004871', reason: 'prize' },
      description: 'won ticket #10004870',
    });
    expect(response.status).toBe(202);
    expect(response.body).toMatchObject({
      walletId,
      amount: 10,
      fingerprint: 'TX123A001',
      labels: { couponId: '10004871', reason: 'prize' },
      description: 'won ticket #10004870',
      status: 'pending',
    });
    expect(response.body.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(response.body).not.toHaveProperty('refno');
    const location = response.headers.get('location');
    expect(location).toBe(`/wallets/${walletId}/transactions/${response.body.id}`);

    await waitUntil('the deposit is applied', async () => {
      return (await request(api.url, 'GET', location!)).body.status === 'applied';
    });
    const applied = await request(api.url, 'GET', location!);
    expect(applied.body).toMatchObject({ status: 'applied', refno: 1, oldbalance: 0, newbalance: 10 });
    expect((await request(api.url, 'GET', `/wallets/${walletId}/balance`)).text).toBe('10.0');
  });

  it('When the client prefers to wait, then it answers 201 with the applied transaction', async () => {
    const walletId = await newWallet();
    const response = await post(walletId, { amount: '25.50', fingerprint: randomUUID() }, wait);
    expect(response.status).toBe(201);
    expect(response.headers.get('preference-applied')).toBe('wait=10');
    expect(response.body).toMatchObject({ status: 'applied', refno: 1, amount: 25.5, oldbalance: 0, newbalance: 25.5 });
  });

  it('When a withdrawal would overdraw, then it ends rejected (422 when waiting), keeps the balance and consumes no refno', async () => {
    const walletId = await newWallet();
    await post(walletId, { amount: 5, fingerprint: randomUUID() }, wait);
    const rejected = await post(walletId, { amount: -5.01, fingerprint: randomUUID() }, wait);
    expect(rejected.status).toBe(422);
    expect(rejected.headers.get('content-type')).toMatch(/^application\/json/);
    expect(rejected.body).toMatchObject({ status: 'rejected', reason: 'insufficient_funds', amount: -5.01 });
    expect(rejected.body).not.toHaveProperty('refno');
    expect((await request(api.url, 'GET', `/wallets/${walletId}/balance`)).text).toBe('5.0');

    const next = await post(walletId, { amount: -5, fingerprint: randomUUID() }, wait);
    expect(next.body).toMatchObject({ status: 'applied', refno: 2, oldbalance: 5, newbalance: 0 });
  });

  it('When a fingerprint is posted twice, then the second gets 409 with the existing transaction and the balance moves once', async () => {
    const walletId = await newWallet();
    const body = { amount: 7, fingerprint: randomUUID() };
    const first = await post(walletId, body, wait);
    const retry = await post(walletId, body);
    expect(retry.status).toBe(409);
    expect(retry.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(retry.body).toMatchObject({ status: 409, type: '/problems/duplicate-fingerprint' });
    expect(retry.body.transaction).toMatchObject({ id: first.body.id, status: 'applied', refno: 1 });
    expect(retry.headers.get('location')).toBe(`/wallets/${walletId}/transactions/${first.body.id}`);
    expect((await request(api.url, 'GET', `/wallets/${walletId}/balance`)).text).toBe('7.0');
  });

  it('When a fingerprint is retried with a different amount or on another wallet, then it is still 409 and nothing changes', async () => {
    const walletId = await newWallet();
    const otherWalletId = await newWallet();
    const fingerprint = randomUUID();
    await post(walletId, { amount: 3, fingerprint }, wait);
    const before = await transactionCount();
    expect((await post(walletId, { amount: 300, fingerprint })).status).toBe(409);
    expect((await post(otherWalletId, { amount: 3, fingerprint })).status).toBe(409);
    expect(await transactionCount()).toBe(before);
    expect((await request(api.url, 'GET', `/wallets/${otherWalletId}/balance`)).text).toBe('0.0');
  });

  it('When a replay writes the same request differently (amount text, label order, null description), then it still gets the transaction it made', async () => {
    const walletId = await newWallet();
    const fingerprint = randomUUID();
    const first = await post(walletId, { amount: '12.50', fingerprint, labels: { a: '1', b: '2' } }, wait);
    const replay = await post(walletId, { amount: 12.5, fingerprint, labels: { b: '2', a: '1' }, description: null });
    expect(replay.status).toBe(409);
    expect(replay.body).toMatchObject({ type: '/problems/duplicate-fingerprint', transaction: { id: first.body.id } });
    expect(replay.headers.get('location')).toBe(`/wallets/${walletId}/transactions/${first.body.id}`);
  });

  it.each<[string, (walletId: number, otherWalletId: number) => [number, object]]>([
    ['another wallet', (_, other) => [other, { amount: '5.00', labels: { k: 'v' }, description: 'd' }]],
    ['another amount', (wallet) => [wallet, { amount: '5.01', labels: { k: 'v' }, description: 'd' }]],
    ['other labels', (wallet) => [wallet, { amount: '5.00', labels: { k: 'w' }, description: 'd' }]],
    ['no labels', (wallet) => [wallet, { amount: '5.00', description: 'd' }]],
    ['another description', (wallet) => [wallet, { amount: '5.00', labels: { k: 'v' }, description: 'e' }]],
    ['no description', (wallet) => [wallet, { amount: '5.00', labels: { k: 'v' } }]],
  ])(
    'When a used fingerprint comes with %s, then it answers 409 fingerprint-reused and discloses nothing of the other transaction',
    async (_, change) => {
      const walletId = await newWallet();
      const otherWalletId = await newWallet();
      const fingerprint = randomUUID();
      const first = await post(walletId, { amount: '5.00', fingerprint, labels: { k: 'v' }, description: 'd' }, wait);
      const before = await transactionCount();
      const [target, body] = change(walletId, otherWalletId);
      const reuse = await post(target, { ...body, fingerprint });
      expect(reuse.status).toBe(409);
      expect(reuse.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(reuse.body).toEqual({
        type: '/problems/fingerprint-reused',
        title: 'Fingerprint used by another request',
        status: 409,
        detail: 'this fingerprint is already used by a different request; choose another fingerprint',
      });
      expect(reuse.headers.get('location')).toBeNull();
      expect(reuse.text).not.toContain(first.body.id);
      expect(await transactionCount()).toBe(before);
    },
  );

  it.each(['void:x', `void:${randomUUID()}`, 'void:'])(
    'When a plain transaction takes the fingerprint %j, then it answers 400 naming fingerprint: void: is reserved',
    async (fingerprint) => {
      const walletId = await newWallet();
      const before = await transactionCount();
      const response = await post(walletId, { amount: 1, fingerprint });
      expect(response.status).toBe(400);
      expect(response.body.invalidParams).toEqual([
        { name: 'fingerprint', reason: 'must not start with "void:" (reserved for voids)' },
      ]);
      expect(await transactionCount()).toBe(before);
    },
  );

  it('When one fingerprint is posted by many clients at once, then exactly one is accepted and it is applied once', async () => {
    const walletId = await newWallet();
    const body = { amount: 1, fingerprint: randomUUID() };
    const responses = await Promise.all(Array.from({ length: 25 }, () => post(walletId, body)));
    expect(responses.filter((response) => response.status === 202)).toHaveLength(1);
    expect(responses.filter((response) => response.status === 409)).toHaveLength(24);
    await waitUntil(
      'applied',
      async () => (await request(api.url, 'GET', `/wallets/${walletId}/balance`)).text === '1.0',
    );
  });

  it('When two different requests race for one fingerprint, in one API process or across two, then exactly one gets 202, the other fingerprint-reused, and nothing else is reserved', async () => {
    const second = await startTestApi(env);
    try {
      const [walletA, walletB] = [await newWallet(), await newWallet()];
      const rounds = Array.from({ length: 10 }, (_, i) => ({ fingerprint: randomUUID(), acrossApis: i >= 5 }));
      const answers = await Promise.all(
        rounds.map(({ fingerprint, acrossApis }) =>
          Promise.all([
            post(walletA, { amount: 5, fingerprint }),
            request(acrossApis ? second.url : api.url, 'POST', `/wallets/${walletB}/transactions`, {
              json: { amount: 7, fingerprint },
            }),
          ]),
        ),
      );

      const winners = new Map<string, { walletId: number; id: string }>();
      for (const [index, pair] of answers.entries()) {
        expect(pair.map((answer) => answer.status).sort()).toEqual([202, 409]);
        const winner = pair.find((answer) => answer.status === 202)!;
        const loser = pair.find((answer) => answer.status === 409)!;
        expect(loser.body.type).toBe('/problems/fingerprint-reused');
        expect(loser.headers.get('location')).toBeNull();
        expect(loser.text).not.toContain(winner.body.id);
        winners.set(rounds[index]!.fingerprint, { walletId: winner.body.walletId, id: winner.body.id });
      }
      // Each fingerprint holds the winner's transaction, and the wallets hold the winners only.
      for (const [fingerprint, winner] of winners) {
        const stored = await request(api.url, 'GET', `/transactions/by-fingerprint/${fingerprint}`);
        expect(stored.body).toMatchObject({ id: winner.id, walletId: winner.walletId });
      }
      const held = async (walletId: number) =>
        (await request(api.url, 'GET', `/wallets/${walletId}/transactions`)).body.items
          .map((item: any) => item.id)
          .sort();
      const wonBy = (walletId: number) =>
        [...winners.values()]
          .filter((winner) => winner.walletId === walletId)
          .map((winner) => winner.id)
          .sort();
      expect(await held(walletA)).toEqual(wonBy(walletA));
      expect(await held(walletB)).toEqual(wonBy(walletB));
    } finally {
      await second.close();
    }
  });

  it('When the wallet does not exist, then it answers 404 and reserves nothing', async () => {
    const before = await transactionCount();
    const fingerprint = randomUUID();
    const response = await post(987654321, { amount: 1, fingerprint });
    expect(response.status).toBe(404);
    expect(response.body.type).toBe('/problems/not-found');
    expect(await transactionCount()).toBe(before);
    // The fingerprint was not used up: it works on a real wallet.
    expect((await post(await newWallet(), { amount: 1, fingerprint })).status).toBe(202);
  });

  it.each([
    ['amount 0.99', { amount: 0.99 }, 'amount'],
    ['amount -0.5', { amount: -0.5 }, 'amount'],
    ['amount 0', { amount: 0 }, 'amount'],
    ['three fractional digits', { amount: 1.005 }, 'amount'],
    ['a string with three fractional digits', { amount: '1.005' }, 'amount'],
    ['an amount past the bound', { amount: 1e10 }, 'amount'],
    ['a string amount past the bound', { amount: '99999999999' }, 'amount'],
    ['"NaN"', { amount: 'NaN' }, 'amount'],
    ['"Infinity"', { amount: 'Infinity' }, 'amount'],
    ['an amount of true', { amount: true }, 'amount'],
    ['an amount of null', { amount: null }, 'amount'],
    ['no amount', { amount: undefined }, 'amount'],
    ['no fingerprint', { fingerprint: undefined }, 'fingerprint'],
    ['an empty fingerprint', { fingerprint: '' }, 'fingerprint'],
    ['a 256-character fingerprint', { fingerprint: 'f'.repeat(256) }, 'fingerprint'],
    ['a numeric fingerprint', { fingerprint: 12 }, 'fingerprint'],
    ['a description of 1025 characters', { description: 'd'.repeat(1025) }, 'description'],
    ['labels with a number', { labels: { a: 1 } }, 'labels.a'],
    ['a status field', { status: 'applied' }, 'body'],
    ['a NUL in the description', { description: 'a\u0000' }, 'description'],
  ])('When the body has %s, then it answers 400 naming the field and reserves nothing', async (_, change, field) => {
    const walletId = await newWallet();
    const before = await transactionCount();
    const response = await post(walletId, { amount: 10, fingerprint: randomUUID(), ...change });
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(response.body.invalidParams.map((param: { name: string }) => param.name)).toContain(field);
    expect(await transactionCount()).toBe(before);
  });

  it.each([
    ['1e400', 'amount must be written as a plain decimal such as 100.00, not in exponent form'],
    ['1e2', 'amount must be written as a plain decimal such as 100.00, not in exponent form'],
    ['9.999999999999999999', 'amount must be a decimal with at most 2 fractional digits'],
    ['1.0000000000000001', 'amount must be a decimal with at most 2 fractional digits'],
    ['-0.999', 'amount must be a decimal with at most 2 fractional digits'],
  ])('When the amount literal in the JSON text is %s, then it is judged as written: 400', async (literal, reason) => {
    const walletId = await newWallet();
    const before = await transactionCount();
    const response = await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
      raw: `{"amount": ${literal}, "fingerprint": "${randomUUID()}"}`,
      headers: { 'content-type': 'application/json' },
    });
    expect(response.status).toBe(400);
    expect(response.body.invalidParams).toEqual([{ name: 'amount', reason }]);
    expect(await transactionCount()).toBe(before);
  });

  it('When the amount key is written with an escape (\\u0061mount), then its literal is judged the same: 400', async () => {
    const walletId = await newWallet();
    const before = await transactionCount();
    const response = await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
      raw: `{"\\u0061mount": 9.999999999999999999, "fingerprint": "${randomUUID()}"}`,
      headers: { 'content-type': 'application/json' },
    });
    expect(response.status).toBe(400);
    expect(response.body.invalidParams).toEqual([
      { name: 'amount', reason: 'amount must be a decimal with at most 2 fractional digits' },
    ]);
    expect(await transactionCount()).toBe(before);
  });

  it.each(['gzip', 'br', 'deflate', 'x-unknown'])(
    'When the body claims Content-Encoding %s, then it answers 415 problem+json and reserves nothing',
    async (coding) => {
      const walletId = await newWallet();
      const before = await transactionCount();
      const response = await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
        raw: JSON.stringify({ amount: 10, fingerprint: randomUUID() }),
        headers: { 'content-type': 'application/json', 'content-encoding': coding },
      });
      expect(response.status).toBe(415);
      expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(response.body.type).toMatch(/unsupported-content-encoding$/);
      expect(await transactionCount()).toBe(before);
    },
  );

  it('When a body is really gzip-compressed, then it is refused the same way (415), not inflated', async () => {
    const walletId = await newWallet();
    const before = await transactionCount();
    const response = await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
      raw: new Uint8Array(gzipSync(JSON.stringify({ amount: 10, fingerprint: randomUUID() }))),
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
    });
    expect(response.status).toBe(415);
    expect(await transactionCount()).toBe(before);
  });

  it.each([
    ['utf-16le', new Uint8Array(Buffer.from('{"amount": 9.999999999999999999, "fingerprint": "u16"}', 'utf16le'))],
    ['utf-16', new Uint8Array(Buffer.from('\ufeff{"amount": 10, "fingerprint": "u16b"}', 'utf16le'))],
    ['utf-7', new TextEncoder().encode('{"amount": 10, "fingerprint": "u7", "+ACI-amount+ACI-": 1000}')],
    ['iso-8859-1', new TextEncoder().encode('{"amount": 10, "fingerprint": "latin"}')],
  ])('When the body is sent with charset=%s, then it answers 415 and reserves nothing', async (charset, bytes) => {
    const walletId = await newWallet();
    const before = await transactionCount();
    const response = await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
      raw: bytes,
      headers: { 'content-type': `application/json; charset=${charset}` },
    });
    expect(response.status).toBe(415);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await transactionCount()).toBe(before);
  });

  it('When the body says charset=UTF-8, then it is read as usual', async () => {
    const walletId = await newWallet();
    const response = await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
      raw: JSON.stringify({ amount: 10, fingerprint: randomUUID() }),
      headers: { 'content-type': 'application/json; charset="UTF-8"' },
    });
    expect(response.status).toBe(202);
  });

  it('When the body holds bytes that are not UTF-8, then it answers 400 and reserves nothing', async () => {
    const walletId = await newWallet();
    const before = await transactionCount();
    const bytes = Buffer.concat([
      Buffer.from('{"amount": 10, "fingerprint": "'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"}'),
    ]);
    const response = await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
      raw: new Uint8Array(bytes),
      headers: { 'content-type': 'application/json' },
    });
    expect(response.status).toBe(400);
    expect(response.body.detail).toMatch(/UTF-8/);
    expect(await transactionCount()).toBe(before);
  });

  it('When the amount literal is exact, then it is read as written, not through a float', async () => {
    const walletId = await newWallet();
    const response = await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
      raw: `{"description": "say \\"amount\\": 5.555", "amount": 12.30, "fingerprint": "${randomUUID()}"}`,
      headers: { 'content-type': 'application/json', prefer: 'wait=10' },
    });
    expect(response.status).toBe(201);
    expect(response.body).toMatchObject({ amount: 12.3, description: 'say "amount": 5.555' });
  });

  it.each([
    ['malformed JSON', { raw: '{"amount": 1,', headers: { 'content-type': 'application/json' } }, 400],
    ['a text body', { raw: 'amount=1', headers: { 'content-type': 'text/plain' } }, 415],
    ['a body over the limit', { json: { amount: 1, fingerprint: 'big', description: 'x'.repeat(17_000) } }, 413],
  ])('When the request has %s, then it answers %i and reserves nothing', async (_, options, status) => {
    const walletId = await newWallet();
    const before = await transactionCount();
    const response = await request(api.url, 'POST', `/wallets/${walletId}/transactions`, options);
    expect(response.status).toBe(status);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await transactionCount()).toBe(before);
  });

  it('When the wallet id in the path is not a positive integer, then it answers 400', async () => {
    const response = await request(api.url, 'POST', '/wallets/abc/transactions', {
      json: { amount: 1, fingerprint: randomUUID() },
    });
    expect(response.status).toBe(400);
  });
});

describe('reservation groups', () => {
  it('When one request of a group makes the group statement fail, then the group falls back to one by one: every other request is reserved, once, and only that one fails, with its own error', async () => {
    const walletId = await newWallet();
    const redis = new Redis(env.config.REDIS_URL);
    // Submitted in one tick with 50 ms to gather: one group.
    const reserver = new TransactionReserver(
      { db: env.pool, queue: createApplyQueue(redis, env.config.QUEUE_PREFIX) },
      { maxSize: 64, maxDelayMs: 50, maxInFlight: 1, timeoutMs: 5_000 },
    );
    // 0.50 is refused by the table's CHECK (the HTTP schema would refuse it first): the whole
    // group statement fails on it.
    const amounts = [1000n, 2000n, 500n, 3000n, 4000n];
    const fingerprints = amounts.map((_, i) => `group-fallback-${walletId}-${i}`);
    try {
      const settled = await Promise.allSettled(
        amounts.map((amount, i) =>
          reserver.reserve(walletId, { amount, fingerprint: fingerprints[i]!, labels: {}, description: null }),
        ),
      );

      expect(settled.map((result) => result.status)).toEqual([
        'fulfilled',
        'fulfilled',
        'rejected',
        'fulfilled',
        'fulfilled',
      ]);
      expect((settled[2] as PromiseRejectedResult).reason).toBeInstanceOf(CheckIntegrityConstraintViolationError);
      const reserved = settled.flatMap((result) => (result.status === 'fulfilled' ? [result.value.transaction] : []));
      expect(reserved.map(({ fingerprint, amount }) => `${fingerprint} ${amount}`)).toEqual([
        `${fingerprints[0]} 1.00`,
        `${fingerprints[1]} 2.00`,
        `${fingerprints[3]} 3.00`,
        `${fingerprints[4]} 4.00`,
      ]);
      const listed = await request(api.url, 'GET', `/wallets/${walletId}/transactions`);
      expect(listed.body.items.map((item: any) => item.id).sort()).toEqual(reserved.map(({ id }) => id).sort());
    } finally {
      redis.disconnect();
    }
  });
});

describe('GET /wallets/:id/transactions/:txId', () => {
  it('When the transaction belongs to another wallet, then it answers 404', async () => {
    const walletId = await newWallet();
    const posted = await post(walletId, { amount: 1, fingerprint: randomUUID() });
    const other = await newWallet();
    expect((await request(api.url, 'GET', `/wallets/${other}/transactions/${posted.body.id}`)).status).toBe(404);
    expect((await request(api.url, 'GET', `/wallets/${walletId}/transactions/${posted.body.id}`)).status).toBe(200);
  });

  it('When the transaction id is not a UUID, then it answers 400; unknown, 404', async () => {
    const walletId = await newWallet();
    const bad = await request(api.url, 'GET', `/wallets/${walletId}/transactions/not-a-uuid`);
    expect(bad.status).toBe(400);
    expect(bad.body.invalidParams).toEqual([{ name: 'txId', reason: 'must be a UUID' }]);
    expect((await request(api.url, 'GET', `/wallets/${walletId}/transactions/${randomUUID()}`)).status).toBe(404);
  });
});

describe('GET /wallets/:id/transactions/latest', () => {
  it('When nothing was applied yet, then it answers 404', async () => {
    const walletId = await newWallet();
    await post(walletId, { amount: -1, fingerprint: randomUUID() }, wait); // rejected: not "applied"
    const response = await request(api.url, 'GET', `/wallets/${walletId}/transactions/latest`);
    expect(response.status).toBe(404);
  });

  it("When transactions were applied, then it answers the last one with exactly the original's fields", async () => {
    const walletId = await newWallet();
    await post(walletId, { amount: 25, fingerprint: randomUUID() }, wait);
    const last = await post(
      walletId,
      {
        amount: 10.0,
        fingerprint: randomUUID(),
        labels: { couponId: '10004871' },
        description: 'won ticket #10004870',
      },
      wait,
    );
    await post(walletId, { amount: -1000, fingerprint: randomUUID() }, wait); // rejected, so not the latest
    const response = await request(api.url, 'GET', `/wallets/${walletId}/transactions/latest`);
    expect(response.status).toBe(200);
    expect(Object.keys(response.body).sort()).toEqual(
      ['amount', 'created', 'description', 'fingerprint', 'id', 'labels', 'newbalance', 'oldbalance', 'refno'].sort(),
    );
    expect(response.body).toMatchObject({
      id: last.body.id,
      refno: 2,
      amount: 10,
      labels: { couponId: '10004871' },
      description: 'won ticket #10004870',
      oldbalance: 25,
      newbalance: 35,
    });
    expect(response.text).toContain('"oldbalance":25.0,"newbalance":35.0');
    expect((await request(api.url, 'GET', `/wallets/${walletId}/balance`)).text).toBe('35.0');
  });
});

describe('exact money', () => {
  it('When cents are added many times, then the balance is exact (no float drift)', async () => {
    const walletId = await newWallet();
    for (let i = 0; i < 10; i += 1) await post(walletId, { amount: '1.10', fingerprint: randomUUID() });
    await post(walletId, { amount: '1.20', fingerprint: randomUUID() }, wait);
    await waitUntil(
      'all applied',
      async () => (await request(api.url, 'GET', `/wallets/${walletId}/balance`)).text === '12.2',
    );
  });
});
