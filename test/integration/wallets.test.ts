import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createApiKey } from '../../src/shared/auth/api-key-repository.js';
import { request } from '../support/http.js';
import { createTestEnv, startTestApi, type TestEnv } from '../support/test-env.js';

let env: TestEnv;
let api: Awaited<ReturnType<typeof startTestApi>>;

beforeAll(async () => {
  env = await createTestEnv('wallets');
  api = await startTestApi(env);
});

afterAll(async () => {
  await api?.close();
  await env?.destroy();
});

const walletCount = () =>
  env.pool.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM wallets`);

describe('POST /wallets', () => {
  it('When a wallet is created, then it answers 201 with an integer id, its fields and a Location', async () => {
    const response = await request(api.url, 'POST', '/wallets', {
      json: { externalId: 'userid-123', labels: { somekey: 'somevalue' } },
    });
    expect(response.status).toBe(201);
    expect(response.body).toMatchObject({
      externalId: 'userid-123',
      labels: { somekey: 'somevalue' },
      balance: 0,
    });
    expect(Number.isInteger(response.body.id)).toBe(true);
    expect(new Date(response.body.created).toISOString()).toBe(response.body.created);
    expect(response.headers.get('location')).toBe(`/wallets/${response.body.id}`);
  });

  it('When labels are left out, then the wallet has none', async () => {
    const response = await request(api.url, 'POST', '/wallets', { json: { externalId: 'no-labels' } });
    expect(response.status).toBe(201);
    expect(response.body.labels).toEqual({});
  });

  it('When an externalId is used twice, then the second answers 409 naming the existing wallet and nothing is added', async () => {
    const first = await request(api.url, 'POST', '/wallets', { json: { externalId: 'twice' } });
    const before = await walletCount();
    const second = await request(api.url, 'POST', '/wallets', { json: { externalId: 'twice', labels: { a: 'b' } } });
    expect(second.status).toBe(409);
    expect(second.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(second.body).toMatchObject({
      status: 409,
      type: '/problems/duplicate-external-id',
      walletId: first.body.id,
    });
    expect(second.body.wallet).toMatchObject({ id: first.body.id, labels: {} });
    expect(await walletCount()).toBe(before);
  });

  it('When a key without wallets:read creates a taken externalId, then the 409 names the walletId only; a reader gets the wallet', async () => {
    const first = await request(api.url, 'POST', '/wallets', {
      json: { externalId: 'secretive', labels: { vip: 'yes' } },
    });
    const writer = (await createApiKey(env.pool, { name: 'writer', scopes: ['wallets:write'] })).key;
    const blind = await request(api.url, 'POST', '/wallets', { json: { externalId: 'secretive' }, apiKey: writer });
    expect(blind.status).toBe(409);
    expect(blind.body).toEqual({
      type: '/problems/duplicate-external-id',
      title: 'Wallet already exists',
      status: 409,
      detail: `a wallet with this externalId exists: wallet ${first.body.id}`,
      walletId: first.body.id,
    });
    expect(blind.text).not.toContain('vip');
    expect(blind.headers.get('location')).toBe(`/wallets/${first.body.id}`);

    const reader = (await createApiKey(env.pool, { name: 'reader', scopes: ['wallets:write', 'wallets:read'] })).key;
    const seen = await request(api.url, 'POST', '/wallets', { json: { externalId: 'secretive' }, apiKey: reader });
    expect(seen.status).toBe(409);
    expect(seen.body.wallet).toEqual(first.body);
  });

  it('When the same externalId is created by many clients at once, then exactly one wins', async () => {
    const responses = await Promise.all(
      Array.from({ length: 20 }, () => request(api.url, 'POST', '/wallets', { json: { externalId: 'race' } })),
    );
    const statuses = responses.map((response) => response.status).sort();
    expect(statuses.filter((status) => status === 201)).toHaveLength(1);
    expect(statuses.filter((status) => status === 409)).toHaveLength(19);
  });

  it.each([
    ['no externalId', {}, 'externalId'],
    ['an empty externalId', { externalId: '' }, 'externalId'],
    ['an externalId of 256 characters', { externalId: 'x'.repeat(256) }, 'externalId'],
    ['a numeric externalId', { externalId: 42 }, 'externalId'],
    ['labels that are not strings', { externalId: 'a', labels: { k: 1 } }, 'labels.k'],
    ['labels as an array', { externalId: 'a', labels: ['x'] }, 'labels'],
    ['an unknown field', { externalId: 'a', balance: 100 }, 'body'],
    ['a NUL character', { externalId: 'a\u0000b' }, 'externalId'],
    ['a lone surrogate', { externalId: 'a\ud800' }, 'externalId'],
    [
      'too many labels',
      { externalId: 'a', labels: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v'])) },
      'labels',
    ],
  ])('When the body has %s, then it answers 400 naming the field and creates nothing', async (_, body, field) => {
    const before = await walletCount();
    const response = await request(api.url, 'POST', '/wallets', { json: body });
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(response.body).toMatchObject({ type: '/problems/validation-error', title: 'Invalid request', status: 400 });
    expect(response.body.invalidParams.map((param: { name: string }) => param.name)).toContain(field);
    expect(await walletCount()).toBe(before);
  });

  it.each([
    ['malformed JSON', { raw: '{"externalId": ', headers: { 'content-type': 'application/json' } }, 400],
    ['a JSON array', { raw: '[]', headers: { 'content-type': 'application/json' } }, 400],
    ['a JSON string', { raw: '"x"', headers: { 'content-type': 'application/json' } }, 400],
    ['a form body', { raw: 'externalId=a', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, 415],
    ['no content type', { raw: '{"externalId":"a"}' }, 415],
    [
      'a latin1 charset',
      { raw: '{"externalId":"a"}', headers: { 'content-type': 'application/json; charset=latin1' } },
      415,
    ],
    ['a body over the limit', { json: { externalId: 'a', labels: { k: 'v'.repeat(20_000) } } }, 413],
  ])('When the request has %s, then it answers %i problem+json and creates nothing', async (_, options, status) => {
    const before = await walletCount();
    const response = await request(api.url, 'POST', '/wallets', options);
    expect(response.status).toBe(status);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(response.body.status).toBe(status);
    expect(await walletCount()).toBe(before);
  });
});

describe('GET /wallets/:id', () => {
  it('When a wallet exists, then it answers its id, labels, externalId, created and balance', async () => {
    const created = await request(api.url, 'POST', '/wallets', { json: { externalId: 'get-me', labels: { x: 'y' } } });
    const response = await request(api.url, 'GET', `/wallets/${created.body.id}`);
    expect(response.status).toBe(200);
    expect(response.body).toEqual(created.body);
  });

  it('When the wallet does not exist, then it answers 404 problem+json', async () => {
    const response = await request(api.url, 'GET', '/wallets/987654321');
    expect(response.status).toBe(404);
    expect(response.body).toMatchObject({ status: 404, type: '/problems/not-found' });
  });

  it.each(['abc', '0', '-1', '1.5', '1e3', '%20'])('When the id is %j, then it answers 400', async (id) => {
    const response = await request(api.url, 'GET', `/wallets/${id}`);
    expect(response.status).toBe(400);
    expect(response.body.invalidParams).toEqual([{ name: 'id', reason: 'must be a positive integer' }]);
  });

  it('When the id is the largest the API can name, then it is simply not found', async () => {
    expect((await request(api.url, 'GET', `/wallets/${Number.MAX_SAFE_INTEGER}`)).status).toBe(404);
  });
});

describe('ids out of range', () => {
  const tx = '00000000-0000-4000-8000-000000000000';
  const routes: [string, (id: string) => string, object?][] = [
    ['GET', (id) => `/wallets/${id}`],
    ['GET', (id) => `/wallets/${id}/balance`],
    ['GET', (id) => `/wallets/${id}/transactions`],
    ['GET', (id) => `/wallets/${id}/transactions/latest`],
    ['GET', (id) => `/wallets/${id}/transactions/${tx}`],
    ['POST', (id) => `/wallets/${id}/transactions`, { amount: '1.00', fingerprint: 'out-of-range' }],
    ['POST', (id) => `/wallets/${id}/transactions/${tx}/void`, {}],
    ['DELETE', (id) => `/webhooks/${id}`],
  ];
  const ids = ['9007199254740992', '99999999999999999999', String(2n ** 63n - 1n), String(2n ** 64n), '9'.repeat(40)];

  it.each(routes.flatMap(([method, path, json]) => ids.map((id) => [method, path(id), json] as const)))(
    'When %s %s names an id past 2^53 or past bigint, then it answers 400 naming the id, never another id',
    async (method, path, json) => {
      const response = await request(api.url, method, path, json ? { json } : {});
      expect(response.status).toBe(400);
      expect(response.body).toMatchObject({ type: '/problems/validation-error' });
      expect(response.body.invalidParams).toEqual([{ name: 'id', reason: 'must be at most 9007199254740991' }]);
      expect(response.text).not.toContain('9007199254740991 does not exist');
    },
  );
});

describe('GET /wallets/:id/balance', () => {
  it('When a wallet is new, then its balance is the bare number 0.0', async () => {
    const created = await request(api.url, 'POST', '/wallets', { json: { externalId: 'balance-new' } });
    const response = await request(api.url, 'GET', `/wallets/${created.body.id}/balance`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(response.text).toBe('0.0');
  });

  it('When the wallet does not exist, then it answers 404', async () => {
    expect((await request(api.url, 'GET', '/wallets/987654321/balance')).status).toBe(404);
  });
});

describe('unknown routes', () => {
  it('When a path matches nothing, then it answers 404 problem+json', async () => {
    const response = await request(api.url, 'GET', '/nothing-here');
    expect(response.status).toBe(404);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  });
});

describe('paths that cannot be decoded', () => {
  it.each(['/wallets/%ZZ', '/wallets-by-external-id/%E0%A4', '/transactions/by-fingerprint/%ED%A0%80'])(
    'When the path is %s, then it answers 400 problem+json, not 500',
    async (path) => {
      const response = await request(api.url, 'GET', path);
      expect(response.status).toBe(400);
      expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    },
  );
});
