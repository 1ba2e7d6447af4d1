import { randomUUID } from 'node:crypto';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorker, type RunningWorker } from '../../src/worker/worker.js';
import { request } from '../support/http.js';
import { createTestEnv, silentLogger, startTestApi, type TestEnv } from '../support/test-env.js';

let env: TestEnv;
let api: Awaited<ReturnType<typeof startTestApi>>;
let worker: RunningWorker;
let walletId: number;
const posted: any[] = [];

beforeAll(async () => {
  env = await createTestEnv('lookups');
  api = await startTestApi(env);
  worker = await startWorker(env.config, silentLogger);
  walletId = (
    await request(api.url, 'POST', '/wallets', {
      json: { externalId: 'user/123 ü', labels: { tier: 'gold', region: 'eu' } },
    })
  ).body.id;
  // 10 transactions: 7 deposits labelled by kind, then 3 withdrawals of which one overdraws.
  const amounts = ['5', '6', '7', '8', '9', '10', '11', '-20', '-100', '-1'];
  for (const [i, amount] of amounts.entries()) {
    const response = await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
      json: {
        amount,
        fingerprint: `lookup-${i}`,
        labels: { kind: Number(amount) > 0 ? 'prize' : 'withdraw', n: String(i) },
      },
      headers: { prefer: 'wait=10' },
    });
    posted.push(response.body);
  }
});

afterAll(async () => {
  await worker?.close();
  await api?.close();
  await env?.destroy();
});

const get = (path: string) => request(api.url, 'GET', path);

describe('lookups by the client’s own keys', () => {
  it('When a wallet is looked up by its externalId, then it is found (any characters, URL-encoded)', async () => {
    const response = await get(`/wallets-by-external-id/${encodeURIComponent('user/123 ü')}`);
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ id: walletId, externalId: 'user/123 ü' });
    expect((await get('/wallets-by-external-id/nobody')).status).toBe(404);
  });

  it('When a client still uses the path before it moved (/wallets/by-external-id/…), then it gets the wallet, marked deprecated with a link to the successor', async () => {
    const response = await get(`/wallets/by-external-id/${encodeURIComponent('user/123 ü')}`);
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ id: walletId, externalId: 'user/123 ü' });
    expect(response.headers.get('deprecation')).toBe('@1796083200');
    expect(response.headers.get('link')).toBe(
      `</wallets-by-external-id/${encodeURIComponent('user/123 ü')}>; rel="successor-version"`,
    );
    expect((await get('/wallets/by-external-id/nobody')).status).toBe(404);
    const paths = Object.keys(((await get('/openapi.json')).body as { paths: object }).paths);
    expect(paths.some((path) => path.startsWith('/wallets/by-external-id'))).toBe(false);
  });

  it('When a transaction is looked up by fingerprint, then it is found whatever its status', async () => {
    const rejected = await get('/transactions/by-fingerprint/lookup-8');
    expect(rejected.status).toBe(200);
    expect(rejected.body).toMatchObject({ id: posted[8].id, status: 'rejected', reason: 'insufficient_funds' });
    expect((await get('/transactions/by-fingerprint/lookup-0')).body.status).toBe('applied');
    expect((await get(`/transactions/by-fingerprint/${randomUUID()}`)).status).toBe(404);
  });
});

describe('GET /wallets/:id/transactions', () => {
  it('When a wallet’s transactions are listed, then they come newest first', async () => {
    const response = await get(`/wallets/${walletId}/transactions`);
    expect(response.status).toBe(200);
    expect(response.body.items.map((item: any) => item.id)).toEqual(posted.map((item) => item.id).reverse());
    expect(response.body.nextCursor).toBeNull();
  });

  it('When the list is paged, then following nextCursor visits every transaction exactly once', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = cursor ? `?limit=3&cursor=${cursor}` : '?limit=3';
      const page: any = (await get(`/wallets/${walletId}/transactions${query}`)).body;
      expect(page.items.length).toBeLessThanOrEqual(3);
      seen.push(...page.items.map((item: any) => item.id));
      cursor = page.nextCursor;
      pages += 1;
    } while (cursor);
    expect(pages).toBe(4);
    expect(seen).toEqual(posted.map((item) => item.id).reverse());
  });

  it('When filtered by status and by labels, then only matching transactions come back', async () => {
    const rejected = await get(`/wallets/${walletId}/transactions?status=rejected`);
    expect(rejected.body.items.map((item: any) => item.fingerprint)).toEqual(['lookup-8']);
    const withdrawals = await get(`/wallets/${walletId}/transactions?labels[kind]=withdraw&status=applied`);
    expect(withdrawals.body.items.map((item: any) => item.fingerprint)).toEqual(['lookup-9', 'lookup-7']);
    const both = await get(`/wallets/${walletId}/transactions?labels[kind]=prize&labels[n]=3`);
    expect(both.body.items.map((item: any) => item.fingerprint)).toEqual(['lookup-3']);
  });

  it.each([
    ['limit=0', 'limit'],
    ['limit=501', 'limit'],
    ['limit=abc', 'limit'],
    ['cursor=not-a-cursor', 'cursor'],
    ['status=lost', 'status'],
    ['sort=amount', 'query'],
    ['status=applied&status=rejected', 'status'],
    [`labels[k]=${'v'.repeat(1025)}`, 'labels.k'],
  ])('When the query has %s, then it answers 400 naming %s', async (query, field) => {
    const response = await get(`/wallets/${walletId}/transactions?${query}`);
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(response.body.invalidParams.map((param: any) => param.name)).toContain(field);
  });

  it('When the wallet does not exist, then it answers 404', async () => {
    expect((await get('/wallets/987654/transactions')).status).toBe(404);
  });
});

describe('label search', () => {
  it('When wallets are searched by labels, then every label must match, newest first, paged', async () => {
    const made = [];
    for (const [i, labels] of [
      { tier: 'gold', region: 'us' },
      { tier: 'gold', region: 'eu' },
      { tier: 'silver', region: 'eu' },
    ].entries()) {
      made.push((await request(api.url, 'POST', '/wallets', { json: { externalId: `search-${i}`, labels } })).body.id);
    }
    const goldEu = await get('/wallets?labels[tier]=gold&labels[region]=eu');
    expect(goldEu.body.items.map((item: any) => item.id)).toEqual([made[1], walletId]);
    const firstPage = await get('/wallets?labels[tier]=gold&limit=1');
    expect(firstPage.body.items.map((item: any) => item.id)).toEqual([made[1]]);
    const secondPage = await get(`/wallets?labels[tier]=gold&limit=2&cursor=${firstPage.body.nextCursor}`);
    expect(secondPage.body.items.map((item: any) => item.id)).toEqual([made[0], walletId]);
    expect((await get('/wallets?labels[tier]=platinum')).body).toEqual({ items: [], nextCursor: null });
  });

  it('When transactions are searched by labels across wallets, then only those with all labels come back', async () => {
    const other = (await request(api.url, 'POST', '/wallets', { json: { externalId: 'other-searcher' } })).body.id;
    await request(api.url, 'POST', `/wallets/${other}/transactions`, {
      json: { amount: 3, fingerprint: randomUUID(), labels: { kind: 'prize', campaign: 'x' } },
    });
    const prizes = await get('/transactions?labels[kind]=prize&limit=500');
    expect(prizes.body.items).toHaveLength(8);
    expect(prizes.body.items[0]).toMatchObject({ walletId: other, labels: { kind: 'prize', campaign: 'x' } });
    const campaign = await get('/transactions?labels[campaign]=x&labels[kind]=prize');
    expect(campaign.body.items).toHaveLength(1);
  });

  it('When a label looks like SQL, then it is only data', async () => {
    const response = await get(`/transactions?labels[kind]=${encodeURIComponent("prize' OR '1'='1")}`);
    expect(response.status).toBe(200);
    expect(response.body.items).toEqual([]);
  });
});

describe('malformed label filters', () => {
  const listings = () => ['/wallets', '/transactions', `/wallets/${walletId}/transactions`];
  const filters = [
    'labels=array',
    'labels',
    'labels=',
    'labels[__proto__]=x',
    'labels[constructor]=x',
    'labels[prototype]=x',
    'labels[tier]=gold&labels=x',
    'labels[tier]=gold&labels[tier]=silver',
  ];

  it.each(filters)(
    'When a listing is filtered by %s, then it answers 400 naming labels, never everything',
    async (filter) => {
      for (const listing of listings()) {
        const response = await get(`${listing}?${filter}`);
        expect(response.status, `${listing}?${filter}`).toBe(400);
        expect(response.body).toMatchObject({ type: '/problems/validation-error' });
        expect(response.body.invalidParams.map((param: any) => param.name.split('.')[0])).toContain('labels');
      }
    },
  );

  it.each(['__proto__', 'constructor', 'prototype'])(
    'When a wallet or a transaction is written with the label key %s, then it answers 400 and stores nothing',
    async (key) => {
      const raw = `{"externalId":"reserved-${key}","labels":{"${key}":"x"}}`;
      const wallet = await request(api.url, 'POST', '/wallets', {
        raw,
        headers: { 'content-type': 'application/json' },
      });
      expect(wallet.status).toBe(400);
      expect(wallet.body.invalidParams).toEqual([
        { name: `labels.${key}`, reason: `the label key "${key}" is reserved` },
      ]);
      expect((await get(`/wallets-by-external-id/reserved-${key}`)).status).toBe(404);

      const fingerprint = `reserved-${key}`;
      const transaction = await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
        raw: `{"amount":"1.00","fingerprint":"${fingerprint}","labels":{"${key}":"x"}}`,
        headers: { 'content-type': 'application/json' },
      });
      expect(transaction.status).toBe(400);
      expect(transaction.body.invalidParams[0].name).toBe(`labels.${key}`);
      expect((await get(`/transactions/by-fingerprint/${fingerprint}`)).status).toBe(404);
    },
  );
});

describe('listings that filter a large ledger', () => {
  let bulkWallet: number;
  beforeAll(async () => {
    bulkWallet = (await request(api.url, 'POST', '/wallets', { json: { externalId: 'bulk-ledger' } })).body.id;
    // 25,000 applied transactions, as 500 reservations of 50; three carry a rare label.
    await env.pool.query(sql.unsafe`
      WITH written AS (
        INSERT INTO transactions (wallet_id, amount, fingerprint, labels, status, refno, oldbalance, newbalance, finalized)
        SELECT ${bulkWallet}, 1.00, 'bulk-' || i,
               CASE WHEN i IN (5, 12000, 24000) THEN '{"kind": "bulk", "rare": "yes"}' ELSE '{"kind": "bulk"}' END::jsonb,
               'applied', i, i - 1, i, now()
        FROM generate_series(1, 25000) AS i ORDER BY i
        RETURNING wallet_id, seq, labels
      )
      INSERT INTO outbox (kind, wallet_ids, seqs, labels)
      SELECT 'transactions_reserved', array_agg(wallet_id ORDER BY seq), array_agg(seq ORDER BY seq), jsonb_agg(DISTINCT labels)
      FROM written GROUP BY seq / 50 ORDER BY seq / 50
    `);
    await env.pool.query(sql.unsafe`
      UPDATE wallets SET balance = 25000, last_refno = 25000, version = version + 1 WHERE id = ${bulkWallet}
    `);
  });

  /** Follows nextCursor to the end: every item, and the size of each page. */
  async function everyPage(path: string): Promise<{ fingerprints: string[]; sizes: number[] }> {
    const fingerprints: string[] = [];
    const sizes: number[] = [];
    let cursor: string | null = null;
    do {
      const response = await get(cursor ? `${path}&cursor=${cursor}` : path);
      expect(response.status).toBe(200);
      fingerprints.push(...response.body.items.map((item: any) => item.fingerprint));
      sizes.push(response.body.items.length);
      cursor = response.body.nextCursor;
      expect(sizes.length).toBeLessThan(20);
    } while (cursor);
    return { fingerprints, sizes };
  }

  it('When a wallet’s transactions are filtered by a label few of them have, then each page reads a bounded part of the wallet (short pages keep a cursor) and the pages together hold every match once', async () => {
    const { fingerprints, sizes } = await everyPage(`/wallets/${bulkWallet}/transactions?labels[rare]=yes&limit=50`);
    expect(fingerprints).toEqual(['bulk-24000', 'bulk-12000', 'bulk-5']);
    // 25,000 rows read at most 10,000 a request: three requests, none a full page.
    expect(sizes).toEqual([1, 1, 1]);
  });

  it('When all wallets’ transactions are filtered by a status none of the labelled ones has, then each page looks up a bounded number of them and the listing ends', async () => {
    const { fingerprints, sizes } = await everyPage('/transactions?labels[kind]=bulk&status=rejected&limit=50');
    expect(fingerprints).toEqual([]);
    // 25,000 transactions looked up at most 5,000 a request.
    expect(sizes).toEqual([0, 0, 0, 0, 0]);
    const applied = await everyPage('/transactions?labels[rare]=yes&status=applied&limit=2');
    expect(applied.fingerprints).toEqual(['bulk-24000', 'bulk-12000', 'bulk-5']);
  });

  it('When a wallet’s latest applied transaction lies behind more than a thousand later rejections, then GET latest still finds it', async () => {
    const latest = await get(`/wallets/${bulkWallet}/transactions/latest`);
    expect(latest.status).toBe(200);
    expect(latest.body).toMatchObject({ refno: 25000, fingerprint: 'bulk-25000' });
    // 1,200 overdrawing withdrawals, rejected against refno 25000: past the newest rows it walks first.
    await env.pool.query(sql.unsafe`
      INSERT INTO transactions (wallet_id, amount, fingerprint, labels, status, reason, oldbalance, after_refno, finalized)
      SELECT ${bulkWallet}, -100000.00, 'bulk-rejected-' || i, '{}', 'rejected', 'insufficient_funds', 25000, 25000, now()
      FROM generate_series(1, 1200) AS i ORDER BY i
    `);
    const behind = await get(`/wallets/${bulkWallet}/transactions/latest`);
    expect(behind.status).toBe(200);
    expect(behind.body).toMatchObject({ refno: 25000, fingerprint: 'bulk-25000', newbalance: 25000 });
  });

  it('When all wallets’ transactions are listed unfiltered, then the pages walk the journal newest first without skipping a row', async () => {
    const first = await get('/transactions?limit=500');
    expect(first.body.items).toHaveLength(500);
    expect(first.body.items[0].fingerprint).toBe('bulk-25000');
    expect(first.body.items[499].fingerprint).toBe('bulk-24501');
    const second = await get(`/transactions?limit=500&cursor=${first.body.nextCursor}`);
    expect(second.body.items[0].fingerprint).toBe('bulk-24500');
  });
});
