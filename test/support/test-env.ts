import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { createPool, sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { startApi, type RunningApi } from '../../src/api/server.js';
import { createApiKey } from '../../src/shared/auth/api-key-repository.js';
import { SCOPES } from '../../src/shared/auth/api-keys.js';
import { loadConfig, type Config } from '../../src/shared/infra/config.js';
import { createDatabasePool } from '../../src/shared/infra/db.js';
import { connectRedis, deleteKeysWithPrefix } from '../../src/shared/infra/redis.js';
import { createDatabaseIfMissing, dropDatabase, migrate } from '../../src/shared/infra/migrate.js';
import { useApiKey } from './http.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BASE_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export const silentLogger = pino({ level: 'silent' });

/** A database and a queue prefix of this test file's own, migrated, with config pointing at them. */
export interface TestEnv {
  config: Config;
  /** Environment for child processes (workers) of this test file. */
  env: NodeJS.ProcessEnv;
  pool: DatabasePool;
  /**
   * A key with every scope, in this env's database. `request` sends it by default to this env's
   * APIs (and, as the file's default, to any API the file talks to).
   */
  apiKey: string;
  destroy(): Promise<void>;
}

export async function createTestEnv(
  name: string,
  overrides: Record<string, string> = {},
  servers: {
    /** The Postgres to create the database on (default TEST_DATABASE_URL's). */
    databaseUrl?: string;
    /** A streaming replica of it: DATABASE_READ_URL then names the same database there. */
    replicaUrl?: string;
  } = {},
): Promise<TestEnv> {
  const suffix = `${name}_${randomBytes(4).toString('hex')}`.replace(/[^a-z0-9_]/gi, '_').toLowerCase();
  const url = new URL(servers.databaseUrl ?? BASE_DATABASE_URL);
  url.pathname = `/wallet_test_${suffix}`;
  const databaseUrl = url.toString();
  const replica = servers.replicaUrl === undefined ? undefined : new URL(servers.replicaUrl);
  if (replica) replica.pathname = url.pathname;
  await createDatabaseIfMissing(databaseUrl);
  await migrate(databaseUrl);
  const env: Record<string, string> = {
    DATABASE_URL: databaseUrl,
    ...(replica ? { DATABASE_READ_URL: replica.toString() } : {}),
    REDIS_URL,
    QUEUE_PREFIX: `test_${suffix}`,
    LOG_LEVEL: 'silent',
    PORT: '0',
    HOST: '127.0.0.1',
    DB_POOL_SIZE: '10',
    SWEEP_INTERVAL_MS: '500',
    SWEEP_STALE_AFTER_MS: '2000',
    WORKER_LOCK_DURATION_MS: '4000',
    WORKER_STALLED_INTERVAL_MS: '1000',
    // Tests post thousands of requests with one key: limit far above that (auth.test sets its own).
    RATE_LIMIT_PER_SECOND: '1000000',
    RATE_LIMIT_BURST: '1000000',
    RATE_LIMIT_UNAUTHENTICATED_PER_SECOND: '1000000',
    RATE_LIMIT_UNAUTHENTICATED_BURST: '1000000',
    ...overrides,
  };
  const config = loadConfig(env);
  const pool = await createDatabasePool(config);
  const { key: apiKey } = await createApiKey(pool, { name: `test ${suffix}`, scopes: SCOPES });
  useApiKey(apiKey);
  return {
    config,
    env: { ...process.env, ...env },
    pool,
    apiKey,
    async destroy() {
      await pool.end();
      await deleteQueueKeys(config);
      await dropDatabase(databaseUrl);
    },
  };
}

/** Every key of the env's prefix, on its Redis (one server or a cluster: REDIS_URL may be overridden). */
async function deleteQueueKeys(config: Config): Promise<void> {
  const redis = connectRedis(config, {});
  try {
    await deleteKeysWithPrefix(redis, config.QUEUE_PREFIX);
  } finally {
    redis.disconnect();
  }
}

/** The HTTP API in this process, on a free port. */
export async function startTestApi(env: TestEnv): Promise<RunningApi & { url: string }> {
  const api = await startApi(env.config, silentLogger);
  const url = `http://127.0.0.1:${api.port}`;
  useApiKey(env.apiKey, url);
  const close = api.close.bind(api);
  return Object.assign(api, {
    url,
    async close() {
      // Torn down between tests, with nothing in flight: its idle keep-alive connections need not
      // stay open for the quiet time a stopping API gives them (src/api/server.ts).
      api.server.closeIdleConnections();
      await close();
    },
  });
}

export type ServiceProcess = ChildProcess & {
  /** Resolves once the process logged that it is up: the worker takes jobs, the API listens. */
  ready: Promise<void>;
  /** The API's port, once ready. */
  port: number;
  /** The last lines the process wrote, for failure messages. */
  output: () => string;
};

const READY_MESSAGE = { worker: 'worker started', api: 'api listening' } as const;

/** `wallet worker` or `wallet api` as its own OS process, as operators run it. */
export function spawnService(
  env: TestEnv,
  role: 'worker' | 'api',
  extraEnv: Record<string, string> = {},
  /** Modules loaded before the service (`node --import`), e.g. test/support/crash-later.ts. */
  preload: string[] = [],
): ServiceProcess {
  const imports = ['tsx', ...preload].flatMap((module) => ['--import', module]);
  const child = spawn(process.execPath, [...imports, path.join(ROOT, 'src/cli.ts'), role], {
    cwd: ROOT,
    env: { ...env.env, LOG_LEVEL: 'info', ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const service = Object.assign(child, { ready: Promise.resolve(), port: 0, output: () => output });
  service.ready = new Promise<void>((resolve, reject) => {
    let started = false;
    child.stdout.on('data', (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-4000);
      // Once started, later output can push the start line's head out of the 4000-character window.
      if (started) return;
      for (const line of output.split('\n').slice(0, -1)) {
        if (!line.includes(`"msg":"${READY_MESSAGE[role]}"`)) continue;
        service.port = (JSON.parse(line) as { port?: number }).port ?? 0;
        started = true;
        resolve();
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)));
    child.once('exit', (code, signal) =>
      reject(new Error(`${role} exited (${code ?? signal}) before ready: ${output}`)),
    );
  });
  service.ready.catch(() => undefined); // a process killed on purpose later must not raise here
  return service;
}

export function spawnWorker(env: TestEnv, extraEnv: Record<string, string> = {}): ServiceProcess {
  return spawnService(env, 'worker', extraEnv);
}

export function waitForExit(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await waitForExit(child);
  clearTimeout(timer);
}

export async function waitUntil(what: string, condition: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export { createPool };

/** True while some session of this test database waits on a row lock in an apply group's write statement. */
export async function applyGroupWaitsOnLock(pool: DatabasePool): Promise<boolean> {
  const waiting = await pool.oneFirst(sql.type(z.object({ n: z.number() }))`
    SELECT count(*)::int AS n FROM pg_stat_activity
    WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%pg_try_advisory_xact_lock%'
  `);
  return waiting > 0;
}
