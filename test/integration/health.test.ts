import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { loadConfig } from '../../src/shared/infra/config.js';
import { HealthChecks } from '../../src/shared/infra/health.js';
import { request } from '../support/http.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import {
  createTestEnv,
  silentLogger,
  spawnWorker,
  startTestApi,
  stopProcess,
  waitUntil,
  type ServiceProcess,
  type TestEnv,
} from '../support/test-env.js';

let env: TestEnv;
let postgres: TcpProxy;
let redis: TcpProxy;
let api: Awaited<ReturnType<typeof startTestApi>>;
let worker: ServiceProcess;
let workerUrl: string;

/** The API (in this process) and a worker (its own process) reach Postgres and Redis through proxies this test cuts. */
beforeAll(async () => {
  env = await createTestEnv('health', { METRICS_PORT: '0' });
  postgres = await new TcpProxy('127.0.0.1', 5432).start();
  redis = await new TcpProxy('127.0.0.1', 6379).start();
  const databaseUrl = new URL(env.config.DATABASE_URL);
  databaseUrl.port = String(postgres.port);
  const proxied = { DATABASE_URL: databaseUrl.toString(), REDIS_URL: `redis://127.0.0.1:${redis.port}` };
  api = await startTestApi({ ...env, config: loadConfig({ ...env.env, ...proxied }) });
  worker = spawnWorker({ ...env, env: { ...env.env, ...proxied } });
  await worker.ready;
  workerUrl = `http://127.0.0.1:${worker.port}`;
});

afterAll(async () => {
  await postgres?.restart();
  await redis?.restart();
  if (worker) await stopProcess(worker);
  await api?.close();
  await postgres?.stop();
  await redis?.stop();
  await env?.destroy();
});

/** Probes carry no API key: they must answer without one. */
const probe = (baseUrl: string, path: string) => request(baseUrl, 'GET', path, { apiKey: null });

describe.each([
  ['API', () => api.url],
  ['worker', () => workerUrl],
])('health of the %s', (_name, baseUrl) => {
  it('When everything is up, then /healthz and /readyz answer 200 and name each check', async () => {
    const live = await probe(baseUrl(), '/healthz');
    expect(live.status).toBe(200);
    expect(live.body).toEqual({ status: 'ok' });
    const ready = await probe(baseUrl(), '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: 'ready', checks: { postgres: 'ok', redis: 'ok', migrations: 'ok' } });
    expect(ready.headers.get('cache-control')).toBe('no-store');
  });

  it('When Postgres goes away, then /readyz answers 503 problem+json naming postgres while /healthz stays 200, and it recovers once Postgres is back', async () => {
    await postgres.stop();
    try {
      const ready = await probe(baseUrl(), '/readyz');
      expect(ready.status).toBe(503);
      expect(ready.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(ready.body).toMatchObject({ type: '/problems/not-ready', status: 503, checks: { redis: 'ok' } });
      expect(ready.body.checks.postgres).not.toBe('ok');
      expect(ready.body.detail).toMatch(/^postgres: /);
      expect(ready.text).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|stack/);
      expect((await probe(baseUrl(), '/healthz')).status).toBe(200);
    } finally {
      await postgres.restart();
    }
    await waitUntil('ready again', async () => (await probe(baseUrl(), '/readyz')).status === 200, 15_000);
  });

  it('When Redis goes away, then /readyz answers 503 naming redis, and it recovers once Redis is back', async () => {
    await redis.stop();
    try {
      const ready = await probe(baseUrl(), '/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body).toMatchObject({ checks: { postgres: 'ok', migrations: 'ok' } });
      expect(ready.body.checks.redis).not.toBe('ok');
      expect(ready.body.detail).toMatch(/^redis: /);
      expect((await probe(baseUrl(), '/healthz')).status).toBe(200);
    } finally {
      await redis.restart();
    }
    await waitUntil('ready again', async () => (await probe(baseUrl(), '/readyz')).status === 200, 15_000);
  });
});

describe('readiness and migrations', () => {
  it('When a migration is not applied, then readiness names it; once applied, it is ready', async () => {
    const [latest] = (await env.pool.anyFirst(
      sql.unsafe`SELECT name FROM schema_migrations ORDER BY name DESC LIMIT 1`,
    )) as string[];
    const connection = new Redis(env.config.REDIS_URL, { maxRetriesPerRequest: 1 });
    const health = new HealthChecks({ databaseUrl: env.config.DATABASE_URL, redis: connection, logger: silentLogger });
    try {
      await env.pool.query(sql.unsafe`DELETE FROM schema_migrations WHERE name = ${latest!}`);
      const missing = await health.readiness();
      expect(missing.ready).toBe(false);
      expect(missing.checks).toMatchObject({ postgres: 'ok', redis: 'ok', migrations: `1 pending: ${latest}` });

      await env.pool.query(sql.unsafe`INSERT INTO schema_migrations (name) VALUES (${latest!})`);
      expect(await health.readiness()).toEqual({
        ready: true,
        checks: { postgres: 'ok', redis: 'ok', migrations: 'ok' },
      });
    } finally {
      connection.disconnect();
    }
  });

  it('When many probes arrive at once, then they share one check: one Postgres connection, not one each', async () => {
    const counting = await new TcpProxy('127.0.0.1', 5432).start();
    const databaseUrl = new URL(env.config.DATABASE_URL);
    databaseUrl.port = String(counting.port);
    const connection = new Redis(env.config.REDIS_URL, { maxRetriesPerRequest: 1 });
    const health = new HealthChecks({ databaseUrl: databaseUrl.toString(), redis: connection, logger: silentLogger });
    try {
      await health.readiness(); // the first check also reads the migrations (then remembers them)
      const before = counting.accepted;
      const answers = await Promise.all(Array.from({ length: 50 }, () => health.readiness()));
      expect(answers.every((answer) => answer.ready)).toBe(true);
      expect(counting.accepted - before).toBe(1);
    } finally {
      connection.disconnect();
      await counting.stop();
    }
  });
});
