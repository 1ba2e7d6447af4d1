import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { sql } from 'slonik';
import express from 'express';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { ApiKeyVerifier, authenticate } from '../../src/api/auth.js';
import { buildOpenApiDocument } from '../../src/api/openapi.js';
import { startApi } from '../../src/api/server.js';
import { createApiKey } from '../../src/shared/auth/api-key-repository.js';
import { hashApiKey, SCOPES, type Scope } from '../../src/shared/auth/api-keys.js';
import { RateLimiter } from '../../src/shared/auth/rate-limit.js';
import { loadConfig } from '../../src/shared/infra/config.js';
import { request } from '../support/http.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import { createTestEnv, ROOT, spawnService, startTestApi, stopProcess, type TestEnv } from '../support/test-env.js';

let env: TestEnv;
let api: Awaited<ReturnType<typeof startTestApi>>;
const extraApis: { close(): Promise<void> }[] = [];
let walletId: number;

beforeAll(async () => {
  // No key cache: a revocation shows at once (the cache itself is unit-tested).
  env = await createTestEnv('auth', { API_KEY_CACHE_TTL_MS: '0' });
  api = await startTestApi(env);
  walletId = (await request(api.url, 'POST', '/wallets', { json: { externalId: 'auth-wallet' } })).body.id;
});

afterAll(async () => {
  await Promise.all(extraApis.map((extra) => extra.close()));
  await api?.close();
  await env?.destroy();
});

const keyWith = async (scopes: Scope[], name = scopes.join('+')) =>
  (await createApiKey(env.pool, { name, scopes })).key;

const walletCount = () =>
  env.pool.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM wallets`);

/** Runs `wallet apikey ...` as an operator would, against this test's database. */
function cli(...args: string[]) {
  const result = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli.ts'), 'apikey', ...args], {
    cwd: ROOT,
    env: { ...env.env, LOG_LEVEL: 'silent' },
    encoding: 'utf8',
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('authentication', () => {
  it('When a request has no key, then it answers 401 problem+json with a Bearer challenge and changes nothing', async () => {
    const before = await walletCount();
    const response = await request(api.url, 'POST', '/wallets', { json: { externalId: 'no-key' }, apiKey: null });
    expect(response.status).toBe(401);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="wallet"');
    expect(response.body).toMatchObject({ type: '/problems/unauthorized', status: 401 });
    expect(await walletCount()).toBe(before);
    expect((await request(api.url, 'GET', `/wallets/${walletId}`, { apiKey: null })).status).toBe(401);
  });

  it.each([
    ['an unknown key', { authorization: 'Bearer wk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }],
    ['a malformed key', { authorization: 'Bearer not-a-key' }],
    ['another scheme', { authorization: 'Basic dXNlcjpwYXNz' }],
    ['a bare scheme', { authorization: 'Bearer' }],
    ['two tokens', { authorization: 'Bearer a b' }],
  ])('When a request has %s, then it answers 401 with error="invalid_token"', async (_, headers) => {
    const response = await request(api.url, 'GET', `/wallets/${walletId}`, { headers });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer realm="wallet", error="invalid_token"/);
    expect(response.body).toMatchObject({ type: '/problems/unauthorized', status: 401 });
  });

  it('When the scheme is written in another case, then the key is still accepted', async () => {
    const response = await request(api.url, 'GET', `/wallets/${walletId}`, {
      headers: { authorization: `bearer ${env.apiKey}` },
    });
    expect(response.status).toBe(200);
  });

  it('When a path matches no route, then an unauthenticated caller learns nothing: 401, not 404', async () => {
    expect((await request(api.url, 'GET', '/no-such-path', { apiKey: null })).status).toBe(401);
  });

  it.each(['/openapi.json', '/docs', '/healthz'])(
    'When %s is asked without a key, then it is not refused',
    async (open) => {
      const response = await request(api.url, 'GET', open, { apiKey: null });
      expect(response.status).not.toBe(401);
      expect(response.status).not.toBe(403);
    },
  );

  it('When a key is created, then only its SHA-256 hash is stored', async () => {
    const key = await keyWith(['wallets:read'], 'hash-check');
    const row = await env.pool.one(sql.type(z.object({ hash: z.instanceof(Buffer), everything: z.string() }))`
      SELECT key_hash AS hash, row_to_json(api_keys)::text AS everything FROM api_keys WHERE name = 'hash-check'
    `);
    expect(row.hash.equals(hashApiKey(key))).toBe(true);
    expect(row.everything).not.toContain(key.slice(3));
  });
});

describe('scopes', () => {
  const operations = Object.entries(buildOpenApiDocument().paths ?? {}).flatMap(([template, item]) =>
    Object.entries(item as Record<string, { 'x-required-scope'?: Scope }>)
      .filter(([, operation]) => operation['x-required-scope'])
      .map(([method, operation]) => ({
        method: method.toUpperCase(),
        template,
        scope: operation['x-required-scope']!,
      })),
  );
  const concrete = (template: string) =>
    template.replace('{id}', String(walletId)).replace(/\{[^}]+\}/g, 'a3e863bf-14de-494a-bd39-d2bd5ac1ed2d');
  const call = (operation: (typeof operations)[number], apiKey: string) =>
    request(api.url, operation.method, concrete(operation.template), {
      apiKey,
      ...(operation.method === 'GET' ? {} : { json: {} }),
    });

  it('covers every operation that needs a key', () => {
    expect(operations.length).toBeGreaterThanOrEqual(6);
    expect(operations.map((operation) => operation.scope)).toEqual(
      expect.arrayContaining(['wallets:read', 'wallets:write', 'transactions:write']),
    );
  });

  it('When a key lacks the scope an operation needs, then it answers 403 naming the scope; with it, it gets past the check', async () => {
    for (const operation of operations) {
      const others = SCOPES.filter((scope) => scope !== operation.scope && scope !== 'admin');
      const refused = await call(operation, await keyWith(others));
      expect(refused.status, `${operation.method} ${operation.template}`).toBe(403);
      expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(refused.body).toMatchObject({ type: '/problems/forbidden', requiredScope: operation.scope });
      expect(refused.headers.get('www-authenticate')).toContain(
        `error="insufficient_scope", scope="${operation.scope}"`,
      );

      for (const allowed of [[operation.scope], ['admin']] as Scope[][]) {
        const passed = await call(operation, await keyWith(allowed));
        expect([401, 403], `${operation.method} ${operation.template} with ${allowed.join()}`).not.toContain(
          passed.status,
        );
      }
    }
  });

  it('When a read-only key tries to create a wallet, then nothing is created', async () => {
    const before = await walletCount();
    const response = await request(api.url, 'POST', '/wallets', {
      json: { externalId: 'read-only-try' },
      apiKey: await keyWith(['wallets:read']),
    });
    expect(response.status).toBe(403);
    expect(await walletCount()).toBe(before);
  });
});

describe('OPTIONS', () => {
  it('When any key sends OPTIONS, then it gets the same 404 on every path and no Allow header: no route disclosure', async () => {
    const reader = await keyWith(['wallets:read']);
    for (const apiKey of [reader, env.apiKey]) {
      for (const path of ['/webhooks', '/webhooks/1', `/wallets/${walletId}`, '/wallets', '/no/such/route']) {
        const response = await request(api.url, 'OPTIONS', path, { apiKey });
        expect(response.status, path).toBe(404);
        expect(response.headers.get('allow'), path).toBeNull();
        expect(response.body).toMatchObject({ type: '/problems/not-found', status: 404 });
      }
    }
    expect((await request(api.url, 'OPTIONS', '/webhooks', { apiKey: null })).status).toBe(401);
  });
});

describe('apikey command', () => {
  it('When an operator creates, lists and revokes a key, then it works until revoked and its secret is never listed', async () => {
    const created = cli('create', '--name', 'cli key', '--scopes', 'wallets:read', '--json');
    expect(created.status, created.stderr).toBe(0);
    const { id, key, scopes } = JSON.parse(created.stdout);
    expect(key).toMatch(/^wk_[A-Za-z0-9_-]{43}$/);
    expect(scopes).toEqual(['wallets:read']);
    expect((await request(api.url, 'GET', `/wallets/${walletId}`, { apiKey: key })).status).toBe(200);

    const listed = cli('list');
    expect(listed.status).toBe(0);
    expect(listed.stdout).toContain('cli key');
    expect(listed.stdout).toContain(key.slice(0, 11));
    expect(listed.stdout).not.toContain(key);
    expect(listed.stdout).not.toContain(key.slice(11));

    const revoked = cli('revoke', String(id));
    expect(revoked.status, revoked.stderr).toBe(0);
    expect(revoked.stdout).toContain('revoked');
    const after = await request(api.url, 'GET', `/wallets/${walletId}`, { apiKey: key });
    expect(after.status).toBe(401);
    expect(after.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  it('When the command is given an unknown scope or an unknown id, then it fails with a message and creates nothing', async () => {
    const before = await env.pool.oneFirst(
      sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM api_keys`,
    );
    const bad = cli('create', '--name', 'x', '--scopes', 'wallets:read,root');
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain('unknown scope "root"');
    const missing = cli('revoke', '999999');
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toContain('no API key with id 999999');
    expect(
      await env.pool.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM api_keys`),
    ).toBe(before);
  });
});

describe('rate limiting', () => {
  it('When one key sends more than its burst, then the excess gets 429 with Retry-After while another key is unaffected', async () => {
    const limited = await startApi(
      loadConfig({ ...env.env, RATE_LIMIT_PER_SECOND: '1', RATE_LIMIT_BURST: '3' }),
      pino({ level: 'silent' }),
    );
    extraApis.push(limited);
    const url = `http://127.0.0.1:${limited.port}`;
    const key = await keyWith(['wallets:read']);
    const statuses: number[] = [];
    let refused: Awaited<ReturnType<typeof request>> | undefined;
    for (let i = 0; i < 10; i += 1) {
      const response = await request(url, 'GET', `/wallets/${walletId}`, { apiKey: key });
      statuses.push(response.status);
      if (i === 0) {
        expect(response.headers.get('ratelimit-limit')).toBe('3');
        expect(response.headers.get('ratelimit-remaining')).toBe('2');
      }
      if (response.status === 429) refused ??= response;
    }
    expect(statuses.slice(0, 3)).toEqual([200, 200, 200]);
    expect(refused).toBeDefined();
    expect(Number(refused!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(refused!.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(refused!.body).toMatchObject({ type: '/problems/rate-limited', status: 429 });

    const other = await request(url, 'GET', `/wallets/${walletId}`, { apiKey: await keyWith(['wallets:read']) });
    expect(other.status).toBe(200);
  });

  it('When 40 requests of one key arrive at once, then the limiter takes their tokens together and lets exactly the burst through', async () => {
    const limited = await startApi(
      loadConfig({ ...env.env, RATE_LIMIT_PER_SECOND: '1', RATE_LIMIT_BURST: '7' }),
      pino({ level: 'silent' }),
    );
    extraApis.push(limited);
    const url = `http://127.0.0.1:${limited.port}`;
    const key = await keyWith(['wallets:read']);
    await request(url, 'GET', `/wallets/${walletId}`, { apiKey: key }); // verifies and caches the key: one token
    const statuses = await Promise.all(
      Array.from({ length: 40 }, () =>
        request(url, 'GET', `/wallets/${walletId}`, { apiKey: key }).then((response) => response.status),
      ),
    );
    const passed = statuses.filter((status) => status === 200).length;
    // 6 tokens were left; at 1 per second at most one more can flow in while the 40 are answered.
    expect(passed).toBeGreaterThanOrEqual(6);
    expect(passed).toBeLessThanOrEqual(7);
    expect(statuses.filter((status) => status === 429)).toHaveLength(40 - passed);
  });

  it('When time passes (on a clock the test moves), then tokens flow back at the rate, never past the burst', async () => {
    const redis = new Redis(env.config.REDIS_URL);
    let clock = 1_000_000;
    const limiter = new RateLimiter(
      redis,
      { perSecond: 1, burst: 10, prefix: `${env.config.QUEUE_PREFIX}_refill`, now: () => clock },
      pino({ level: 'silent' }),
    );
    const take = async (n: number) => {
      const decisions = [];
      for (let i = 0; i < n; i += 1) decisions.push(await limiter.take('key:refill'));
      return decisions.map((decision) => (decision!.allowed ? 'ok' : `wait ${decision!.retryAfterSeconds}s`));
    };
    try {
      await redis.ping(); // the limiter lets everything through (fails open) until Redis is ready
      expect(await take(11)).toEqual([...Array<string>(10).fill('ok'), 'wait 1s']);
      clock += 999;
      expect(await take(1)).toEqual(['wait 1s']); // 0.999 of a token
      clock += 1;
      expect(await take(2)).toEqual(['ok', 'wait 1s']); // one whole token after one second
      clock += 3_000;
      expect(await take(4)).toEqual(['ok', 'ok', 'ok', 'wait 1s']);
      clock += 60_000; // 60 tokens' worth, but the bucket holds 10
      expect(await take(11)).toEqual([...Array<string>(10).fill('ok'), 'wait 1s']);
    } finally {
      redis.disconnect();
    }
  });

  it('When one key is used on two API processes, then they draw on one bucket: what one drained, the other finds drained', async () => {
    const burst = 20;
    const limits = { RATE_LIMIT_PER_SECOND: '1', RATE_LIMIT_BURST: String(burst), API_KEY_CACHE_TTL_MS: '60000' };
    // One API as a process of its own, the other in this test's process.
    const spawned = spawnService(env, 'api', limits);
    extraApis.push({ close: () => stopProcess(spawned) });
    const here = await startApi(loadConfig({ ...env.env, ...limits }), pino({ level: 'silent' }));
    extraApis.push(here);
    await spawned.ready;
    const key = await keyWith(['wallets:read'], 'two-processes');
    const get = (port: number) => request(`http://127.0.0.1:${port}`, 'GET', `/wallets/${walletId}`, { apiKey: key });

    // Drain the key's bucket through the spawned process, until it refuses.
    const throughSpawned: number[] = [];
    let refused = 0;
    while (throughSpawned.length < burst * 3 && refused === 0) {
      const status = (await get(spawned.port)).status;
      throughSpawned.push(status);
      if (status === 429) refused = performance.now();
    }
    expect(throughSpawned.filter((status) => status === 200).length).toBeGreaterThanOrEqual(burst);
    expect(refused).toBeGreaterThan(0);
    const viaHere = await get(here.port);
    const secondsSinceRefusal = (performance.now() - refused) / 1000;

    // One bucket: the other process finds it as the first left it (under one token) plus what
    // flowed in since (one a second); a bucket of its own would have had all 20 tokens.
    const tokensFound = viaHere.status === 429 ? 0 : Number(viaHere.headers.get('ratelimit-remaining')) + 1;
    expect(tokensFound).toBeLessThanOrEqual(1 + Math.floor(secondsSinceRefusal));
    expect(tokensFound).toBeLessThan(burst);
  });

  it('When one address sends more bad-key or keyless requests than the unauthenticated burst, then the excess gets 429 with Retry-After while a valid key still works', async () => {
    const limited = await startApi(
      loadConfig({
        ...env.env,
        API_KEY_CACHE_TTL_MS: '60000',
        RATE_LIMIT_UNAUTHENTICATED_PER_SECOND: '1',
        RATE_LIMIT_UNAUTHENTICATED_BURST: '5',
      }),
      pino({ level: 'silent' }),
    );
    extraApis.push(limited);
    const url = `http://127.0.0.1:${limited.port}`;
    const key = await keyWith(['wallets:read']);
    expect((await request(url, 'GET', `/wallets/${walletId}`, { apiKey: key })).status).toBe(200);

    const statuses: number[] = [];
    let refused: Awaited<ReturnType<typeof request>> | undefined;
    for (let i = 0; i < 12; i += 1) {
      const bad = `wk_${String(i).padStart(43, 'A')}`;
      const response = await request(
        url,
        'GET',
        `/wallets/${walletId}`,
        i % 3 === 2 ? { apiKey: null } : { apiKey: bad },
      );
      statuses.push(response.status);
      if (response.status === 429) refused ??= response;
    }
    expect(statuses.slice(0, 4)).toEqual([401, 401, 401, 401]);
    expect(statuses.filter((status) => status === 429).length).toBeGreaterThanOrEqual(5);
    expect(Number(refused!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(refused!.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(refused!.body).toMatchObject({ type: '/problems/rate-limited', status: 429 });

    expect((await request(url, 'GET', `/wallets/${walletId}`, { apiKey: key })).status).toBe(200);
    // Open paths are never limited.
    expect((await request(url, 'GET', '/healthz', { apiKey: null })).status).toBe(200);
  });

  it('When a client opens with 64 concurrent requests of a key this process has not seen, then they share one lookup and one address token, and none is refused by the address limit', async () => {
    // The API's own authentication middleware, verifier and address limiter, with the database
    // queries and the limiter's takes counted. The key's lookup is held until all 64 requests
    // have arrived, so every one of them comes while it is under way.
    const concurrent = 64;
    let arrived = 0;
    let allArrived!: () => void;
    const everyoneArrived = new Promise<void>((resolve) => (allArrived = resolve));
    let queries = 0;
    const countingPool = new Proxy(env.pool, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (typeof value !== 'function') return value;
        return async (...args: unknown[]) => {
          queries += 1;
          await everyoneArrived;
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const redis = new Redis(env.config.REDIS_URL);
    const addressLimiter = new RateLimiter(
      redis,
      { perSecond: 1, burst: 2, prefix: `${env.config.QUEUE_PREFIX}_opening` },
      pino({ level: 'silent' }),
    );
    const takes = vi.spyOn(addressLimiter, 'take');
    const app = express();
    app.use(authenticate({ verifier: new ApiKeyVerifier(countingPool, 60_000), disabled: false, addressLimiter }));
    app.get('/whoami', (_req, res) => void res.json({ name: res.locals.principal?.name }));
    const server = app.listen(0, '127.0.0.1');
    server.on('request', () => {
      arrived += 1;
      if (arrived === concurrent) allArrived();
    });
    await once(server, 'listening');
    extraApis.push({
      close: async () => {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
        redis.disconnect();
      },
    });
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/whoami`;
    const key = await keyWith(['wallets:read'], 'opening');

    const statuses = await Promise.all(
      Array.from({ length: concurrent }, () =>
        fetch(url, { headers: { authorization: `Bearer ${key}` } }).then(async (response) => {
          await response.text();
          return response.status;
        }),
      ),
    );

    expect(statuses.filter((status) => status !== 200)).toEqual([]);
    expect(queries).toBe(1);
    expect(takes).toHaveBeenCalledTimes(1);
  });

  it('When Redis is unreachable, then requests are let through (fail open), not refused or failed', async () => {
    const redis = await new TcpProxy('127.0.0.1', 6379).start();
    const limited = await startApi(
      loadConfig({
        ...env.env,
        REDIS_URL: `redis://127.0.0.1:${redis.port}`,
        RATE_LIMIT_PER_SECOND: '1',
        RATE_LIMIT_BURST: '1',
      }),
      pino({ level: 'silent' }),
    );
    extraApis.push({ close: async () => (await redis.restart(), await limited.close(), await redis.stop()) });
    const url = `http://127.0.0.1:${limited.port}`;
    await redis.stop();
    for (let i = 0; i < 5; i += 1) {
      expect((await request(url, 'GET', `/wallets/${walletId}`)).status).toBe(200);
    }
  });
});

describe('access log', () => {
  it('When a request is answered, then one access line names method, path, status and request id, and never the key', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const logged = await startApi(env.config, pino({ level: 'info' }, sink));
    extraApis.push(logged);
    const url = `http://127.0.0.1:${logged.port}`;
    const response = await request(url, 'GET', `/wallets/${walletId}?x=1`, {
      apiKey: env.apiKey,
      headers: { 'x-request-id': 'access-log-1' },
    });
    expect(response.status).toBe(200);
    const refused = await request(url, 'GET', `/wallets/${walletId}`, { apiKey: 'wk_not-a-real-key-0000000000' });
    expect(refused.status).toBe(401);
    const access = lines.map((line) => JSON.parse(line)).filter((line) => line.msg === 'request completed');
    expect(access).toHaveLength(2);
    expect(access[0]).toMatchObject({
      requestId: 'access-log-1',
      req: { method: 'GET', path: `/wallets/${walletId}` },
      res: { status: 200 },
    });
    expect(access[0].durationMs).toEqual(expect.any(Number));
    expect(access[1]).toMatchObject({ requestId: refused.headers.get('x-request-id'), res: { status: 401 } });
    const everything = lines.join('');
    expect(everything).not.toContain(env.apiKey);
    expect(everything).not.toContain('wk_not-a-real-key');
    expect(everything.toLowerCase()).not.toContain('authorization');
  });
});

describe('AUTH_DISABLED', () => {
  it('When AUTH_DISABLED=true, then no key is needed and the process says so loudly at start', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const open = await startApi(loadConfig({ ...env.env, AUTH_DISABLED: 'true' }), pino({ level: 'info' }, sink));
    extraApis.push(open);
    const response = await request(`http://127.0.0.1:${open.port}`, 'GET', `/wallets/${walletId}`, { apiKey: null });
    expect(response.status).toBe(200);
    const warning = lines.map((line) => JSON.parse(line)).find((line) => /AUTH_DISABLED/.test(line.msg));
    expect(warning).toBeDefined();
    expect(warning.level).toBeGreaterThanOrEqual(50); // error level: survives LOG_LEVEL=warn and =error
  });

  it('When AUTH_DISABLED is anything but true or false, then the configuration is refused', () => {
    expect(() => loadConfig({ AUTH_DISABLED: 'yes' })).toThrow(/AUTH_DISABLED/);
    expect(loadConfig({}).AUTH_DISABLED).toBe(false);
  });
});

describe('headers', () => {
  it('When the API answers, then it carries security headers and no caching', async () => {
    const response = await request(api.url, 'GET', `/wallets/${walletId}`);
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(response.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(response.headers.get('strict-transport-security')).toMatch(/max-age=\d+/);
    expect(response.headers.get('x-frame-options')).toBe('SAMEORIGIN');
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(response.headers.get('x-powered-by')).toBeNull();
  });

  it.each([
    ['a sane id', 'req-123:abc.DEF_9', 'req-123:abc.DEF_9'],
    ['an id with spaces', 'hello world', null],
    ['an id of 129 characters', 'x'.repeat(129), null],
    ['an id with markup', '<script>', null],
  ])('When the request carries %s, then X-Request-Id echoes it only if sane', async (_, sent, echoed) => {
    const response = await request(api.url, 'GET', `/wallets/${walletId}`, { headers: { 'x-request-id': sent } });
    const id = response.headers.get('x-request-id');
    if (echoed) expect(id).toBe(echoed);
    else expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  });

  it.each(['/healthz', '/readyz', '/metrics'])(
    'When %s is answered, then it carries X-Request-Id and the same security headers as any other answer',
    async (path) => {
      const other = await request(api.url, 'GET', `/wallets/${walletId}`);
      const probe = await request(api.url, 'GET', path, { apiKey: null, headers: { 'x-request-id': 'probe-1' } });
      expect(probe.status).toBe(200);
      expect(probe.headers.get('x-request-id')).toBe('probe-1');
      const securityHeaders = [
        'content-security-policy',
        'cross-origin-opener-policy',
        'cross-origin-resource-policy',
        'referrer-policy',
        'strict-transport-security',
        'x-content-type-options',
        'x-frame-options',
        'cache-control',
      ];
      for (const name of securityHeaders) {
        expect(other.headers.get(name), name).not.toBeNull();
        expect(probe.headers.get(name), `${path}: ${name}`).toBe(other.headers.get(name));
      }
    },
  );

  it('When the request carries no id, then one is generated, also on a 401', async () => {
    const response = await request(api.url, 'GET', `/wallets/${walletId}`, { apiKey: null });
    expect(response.status).toBe(401);
    expect(response.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });
});
