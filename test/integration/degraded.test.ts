import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/shared/infra/config.js';
import { startWorker } from '../../src/worker/worker.js';
import { request } from '../support/http.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import { createTestEnv, silentLogger, startTestApi, waitUntil, type TestEnv } from '../support/test-env.js';

let env: TestEnv;
let postgres: TcpProxy;
let redis: TcpProxy;
let api: Awaited<ReturnType<typeof startTestApi>>;

/** The API reaches Postgres and Redis through proxies this test can cut. */
beforeAll(async () => {
  env = await createTestEnv('degraded');
  postgres = await new TcpProxy('127.0.0.1', 5432).start();
  redis = await new TcpProxy('127.0.0.1', 6379).start();
  const databaseUrl = new URL(env.config.DATABASE_URL);
  databaseUrl.port = String(postgres.port);
  const config = loadConfig({
    ...env.env,
    DATABASE_URL: databaseUrl.toString(),
    REDIS_URL: `redis://127.0.0.1:${redis.port}`,
  });
  api = await startTestApi({ ...env, config });
});

afterAll(async () => {
  await postgres?.restart();
  await redis?.restart();
  await api?.close();
  await postgres?.stop();
  await redis?.stop();
  await env?.destroy();
});

describe('when a dependency is down', () => {
  it('When the database goes away, then requests get 503 problem+json with Retry-After, and succeed again once it is back', async () => {
    const created = await request(api.url, 'POST', '/wallets', { json: { externalId: 'db-outage' } });
    expect(created.status).toBe(201);

    await postgres.stop();
    const read = await request(api.url, 'GET', `/wallets/${created.body.id}`);
    expect(read.status).toBe(503);
    expect(read.headers.get('retry-after')).toBe('5');
    expect(read.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(read.body).toMatchObject({ status: 503, type: '/problems/service-unavailable' });
    expect(read.text).not.toMatch(/ECONNREFUSED|5432|stack|at /);
    expect((await request(api.url, 'POST', '/wallets', { json: { externalId: 'during-outage' } })).status).toBe(503);

    await postgres.restart();
    await waitUntil(
      'the API reads again',
      async () => (await request(api.url, 'GET', `/wallets/${created.body.id}`)).status === 200,
      15_000,
    );
  });

  it('When Redis goes away, then a posted transaction is still accepted quickly and the sweeper gets it applied later', async () => {
    const wallet = await request(api.url, 'POST', '/wallets', { json: { externalId: 'queue-outage' } });
    await redis.stop();
    const started = Date.now();
    const posted = await request(api.url, 'POST', `/wallets/${wallet.body.id}/transactions`, {
      json: { amount: 12, fingerprint: randomUUID() },
    });
    expect(posted.status).toBe(202);
    expect(posted.body.status).toBe('pending');
    expect(Date.now() - started).toBeLessThan(5000); // bounded, not hanging on the queue

    await redis.restart();
    const worker = await startWorker(env.config, silentLogger); // direct connections, like another host
    try {
      await waitUntil(
        'the sweeper enqueued the wallet and it was applied',
        async () => (await request(api.url, 'GET', `/wallets/${wallet.body.id}/balance`)).text === '12.0',
        20_000,
      );
    } finally {
      await worker.close();
    }
  });
});
