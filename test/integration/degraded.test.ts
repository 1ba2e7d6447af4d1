import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type Config } from '../../src/shared/infra/config.js';
import { renderMetrics } from '../../src/shared/telemetry/metrics.js';
import { insertPendingTransaction } from '../../src/shared/transactions/transaction-repository.js';
import { startWorker } from '../../src/worker/worker.js';
import { request } from '../support/http.js';
import { parseMetrics, sampleValue } from '../support/prometheus-text.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import { createTestEnv, silentLogger, startTestApi, waitUntil, type TestEnv } from '../support/test-env.js';

let env: TestEnv;
let postgres: TcpProxy;
let redis: TcpProxy;
let api: Awaited<ReturnType<typeof startTestApi>>;
/** This file's config with Postgres and Redis behind the proxies. */
let proxied: Config;

/** The API reaches Postgres and Redis through proxies this test can cut. */
beforeAll(async () => {
  // A key verified once stays trusted, so requests reach the routes while Postgres is away or frozen.
  env = await createTestEnv('degraded', { API_KEY_CACHE_TTL_MS: '600000' });
  postgres = await new TcpProxy('127.0.0.1', 5432).start();
  redis = await new TcpProxy('127.0.0.1', 6379).start();
  const databaseUrl = new URL(env.config.DATABASE_URL);
  databaseUrl.port = String(postgres.port);
  proxied = loadConfig({
    ...env.env,
    DATABASE_URL: databaseUrl.toString(),
    REDIS_URL: `redis://127.0.0.1:${redis.port}`,
  });
  api = await startTestApi({ ...env, config: proxied });
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

  it('When Postgres is down, then a posted transaction answers 503 with Retry-After and reserves nothing; the same requests are accepted once it is back', async () => {
    const walletId = (await request(api.url, 'POST', '/wallets', { json: { externalId: 'post-during-outage' } })).body
      .id;
    const bodies = [1, 2, 3].map((amount) => ({ amount, fingerprint: `outage-${walletId}-${amount}` }));
    const post = (json: object) => request(api.url, 'POST', `/wallets/${walletId}/transactions`, { json });

    await postgres.stop();
    let during: Awaited<ReturnType<typeof post>>[];
    try {
      during = await Promise.all(bodies.map(post));
    } finally {
      await postgres.restart();
    }

    for (const answer of during) {
      expect(answer.status).toBe(503);
      expect(answer.headers.get('retry-after')).toBe('5');
      expect(answer.body).toMatchObject({ status: 503, type: '/problems/service-unavailable' });
      expect(answer.text).not.toMatch(/ECONNREFUSED|5432|stack|at /);
    }
    await waitUntil('the API reaches Postgres again', async () => (await post(bodies[0]!)).status !== 503, 15_000);
    // Accepted now, not replays: nothing was reserved during the outage.
    const after = await Promise.all(bodies.slice(1).map(post));
    expect(after.map((answer) => answer.status)).toEqual([202, 202]);
    const listed = await request(api.url, 'GET', `/wallets/${walletId}/transactions`);
    expect(listed.body.items.map((item: any) => item.fingerprint).sort()).toEqual(
      bodies.map((body) => body.fingerprint),
    );
  });

  it('When the group statement gets no answer (Postgres hangs), then the request answers 503 at the reservation deadline, and its retry is a replay', async () => {
    const walletId = (await request(api.url, 'POST', '/wallets', { json: { externalId: 'post-while-frozen' } })).body
      .id;
    const body = { amount: 2, fingerprint: `frozen-${walletId}` };
    const post = () => request(api.url, 'POST', `/wallets/${walletId}/transactions`, { json: body });

    postgres.freeze();
    let stuck: Awaited<ReturnType<typeof post>>;
    try {
      stuck = await post();
    } finally {
      postgres.thaw();
    }

    expect(stuck.status).toBe(503);
    expect(stuck.headers.get('retry-after')).toBe('5');
    expect(stuck.body).toMatchObject({ status: 503, type: '/problems/service-unavailable' });
    // Its INSERT may still have gone through once Postgres answered: either way the retry gets the
    // one transaction of that fingerprint.
    const retry = await post();
    expect([202, 409]).toContain(retry.status);
    if (retry.status === 409) expect(retry.body.type).toBe('/problems/duplicate-fingerprint');
    const listed = await request(api.url, 'GET', `/wallets/${walletId}/transactions`);
    expect(listed.body.items.map((item: any) => item.fingerprint)).toEqual([body.fingerprint]);
  });
});

describe('the sweeper when Postgres goes away', () => {
  it('When sweeps fail while Postgres is down, then the sweeper carries on and rescues the stranded transaction once it is back', async () => {
    const sweepErrors = async () =>
      sampleValue(parseMetrics(await renderMetrics()), 'wallet_sweeper_errors_total') ?? 0;
    const walletId = (await request(api.url, 'POST', '/wallets', { json: { externalId: 'sweeper-outage' } })).body.id;
    // Reserved without a job (as when the API died before its enqueue): only the sweeper can save it.
    const stranded = await insertPendingTransaction(env.pool, {
      walletId,
      amount: '6.00',
      fingerprint: `stranded-${walletId}`,
      labels: {},
      description: null,
    });
    const worker = await startWorker(proxied, silentLogger);
    try {
      const errorsBefore = await sweepErrors();
      await postgres.stop();
      try {
        // Two failed passes in a row: it carried on after the first.
        await waitUntil('two sweeps failed', async () => (await sweepErrors()) >= errorsBefore + 2, 15_000);
      } finally {
        await postgres.restart();
      }
      await waitUntil(
        'the sweeper enqueued the wallet and it was applied',
        async () =>
          (await request(api.url, 'GET', `/wallets/${walletId}/transactions/${stranded!.id}`)).body?.status ===
          'applied',
        20_000,
      );
    } finally {
      await worker.close();
    }
  });
});
