import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { findLedgerViolations } from '../support/ledger-invariants.js';
import { createWallets } from '../support/load.js';
import { describeConnectionError, isConnectionRefused, keepAliveClient, request, useApiKey } from '../support/http.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import { SINGLE_REDIS } from '../support/redis-topologies.js';
import { describeWorkersThatDie } from '../support/worker-crash-suite.js';
import {
  ROOT,
  createTestEnv,
  spawnService,
  spawnWorker,
  startTestApi,
  stopProcess,
  waitForExit,
  waitUntil,
  type TestEnv,
} from '../support/test-env.js';

let env: TestEnv;
let api: Awaited<ReturnType<typeof startTestApi>>;
const workers: ChildProcess[] = [];

beforeAll(async () => {
  // Small batches keep jobs busy, so the kill lands mid-job; a short lock lets BullMQ notice quickly.
  env = await createTestEnv('crash', { WORKER_CONCURRENCY: '4', APPLY_BATCH_SIZE: '5' });
  api = await startTestApi(env);
});

afterAll(async () => {
  await Promise.all(workers.map(stopProcess));
  await api?.close();
  await env?.destroy();
});

const pendingCount = () =>
  env.pool.oneFirst(sql.type(z.object({ n: z.number() }))`
    SELECT count(*)::int AS n FROM transactions WHERE status = 'pending'
  `);
describeWorkersThatDie(SINGLE_REDIS);

describe('an API that is stopped', () => {
  it('When the API gets SIGTERM under load, then it answers the requests it took, closes keep-alive connections and exits 0', async () => {
    const walletIds = await createWallets(api.url, 2, 'api-sigterm');
    const leaving = spawnService(env, 'api');
    workers.push(leaving);
    await leaving.ready;
    const leavingUrl = `http://127.0.0.1:${leaving.port}`;

    let stopped: ReturnType<typeof waitForExit> | undefined;
    const accepted: string[] = [];
    const failures: string[] = [];
    let next = 0;
    // 16 clients, each on a keep-alive connection of its own.
    const lane = async () => {
      const client = keepAliveClient(leavingUrl, env.apiKey);
      try {
        while (next < 3000) {
          const fingerprint = `api-sigterm-${next++}`;
          if (next === 400) {
            leaving.kill('SIGTERM');
            stopped = waitForExit(leaving);
          }
          try {
            const status = await client.post(`/wallets/${walletIds[next % 2]}/transactions`, {
              amount: 1,
              fingerprint,
            });
            if (status === 202) accepted.push(fingerprint);
            else failures.push(`${status}`);
          } catch (error) {
            // Refused: the API stopped listening, as it should. Anything else (a reset, a socket
            // closed before the answer) is a request the API took and then dropped.
            if (!isConnectionRefused(error)) failures.push(`no answer: ${describeConnectionError(error)}`);
            return;
          }
        }
      } finally {
        client.close();
      }
    };
    await Promise.all(Array.from({ length: 16 }, lane));
    expect(stopped).toBeDefined();
    expect(await stopped, leaving.output()).toEqual({ code: 0, signal: null });
    expect(failures).toEqual([]);
    expect(accepted.length).toBeGreaterThanOrEqual(399 - 16);
    expect(accepted.length).toBeLessThan(3000);
    const stored = await env.pool.anyFirst(sql.type(z.object({ fingerprint: z.string() }))`
      SELECT fingerprint FROM transactions WHERE fingerprint LIKE 'api-sigterm-%'
    `);
    expect(new Set(stored)).toEqual(new Set(accepted));
  }, 60_000);
});

describe('processes killed in the middle of a group', () => {
  it('When the API is SIGKILLed after its group INSERT committed but before it answered, then a retry is a replay and each transaction is applied once', async () => {
    const [walletId] = await createWallets(api.url, 1, 'api-mid-group');
    // Redis behind a proxy that we freeze: the group's INSERT commits, then its enqueue hangs.
    const redisProxy = await new TcpProxy('127.0.0.1', Number(new URL(env.config.REDIS_URL).port || 6379)).start();
    const leaving = spawnService(env, 'api', {
      REDIS_URL: `redis://127.0.0.1:${redisProxy.port}`,
      RATE_LIMIT_PER_SECOND: '0',
    });
    workers.push(leaving);
    try {
      await leaving.ready;
      const leavingUrl = `http://127.0.0.1:${leaving.port}`;
      // This file's key, not the default one: the workers suite above made an env (and key) of its own.
      useApiKey(env.apiKey, leavingUrl);
      const bodies = Array.from({ length: 20 }, (_, i) => ({
        amount: i % 5 === 4 ? -3 : 2,
        fingerprint: `mid-group-${i}`,
      }));
      redisProxy.freeze();
      // `Prefer: wait` keeps every answer open after the INSERT (no worker runs), so the kill
      // always lands between the commit and the answers, however slow the machine is.
      const answers = bodies.map((json) =>
        request(leavingUrl, 'POST', `/wallets/${walletId}/transactions`, { json, headers: { prefer: 'wait=20' } }).then(
          (response) => response.status,
          () => 'no answer',
        ),
      );
      await waitUntil('the group is committed', async () => {
        const n = await env.pool.oneFirst(sql.type(z.object({ n: z.number() }))`
          SELECT count(*)::int AS n FROM transactions WHERE fingerprint LIKE 'mid-group-%'
        `);
        return n === bodies.length;
      });
      leaving.kill('SIGKILL');
      expect(await waitForExit(leaving)).toEqual({ code: null, signal: 'SIGKILL' });
      // Cut off between the group's commit and its answers: nobody got one.
      expect(new Set(await Promise.all(answers))).toEqual(new Set(['no answer']));

      // The clients retry against a live API: each gets its own transaction back (a replay), none a new one.
      for (const json of bodies) {
        const retry = await request(api.url, 'POST', `/wallets/${walletId}/transactions`, { json });
        expect(retry.status).toBe(409);
        expect(retry.body).toMatchObject({
          type: '/problems/duplicate-fingerprint',
          transaction: { fingerprint: json.fingerprint },
        });
      }
      // Nobody enqueued the wallet (the enqueue never reached Redis): the sweeper does.
      workers.push(spawnWorker(env));
      await waitUntil('every transaction is final', async () => (await pendingCount()) === 0, 60_000);
      const outcomes = await env.pool.any(sql.type(z.object({ fingerprint: z.string(), status: z.string() }))`
        SELECT fingerprint, status FROM transactions WHERE fingerprint LIKE 'mid-group-%'
      `);
      expect(outcomes).toHaveLength(bodies.length);
      expect(await findLedgerViolations(env.pool)).toEqual([]);
    } finally {
      redisProxy.thaw();
      await redisProxy.stop();
    }
  }, 90_000);
});

describe('processes that crash', () => {
  it.each([
    ['api', 'exception', 'injected uncaught exception'],
    ['worker', 'rejection', 'injected unhandled rejection'],
  ] as const)(
    'When the %s hits an uncaught %s, then it logs the reason, closes through the graceful shutdown and exits 1',
    async (role, kind, message) => {
      const crashing = spawnService(env, role, { CRASH_KIND: kind, METRICS_PORT: '0' }, [
        path.join(ROOT, 'test/support/crash-later.ts'),
      ]);
      workers.push(crashing);
      await crashing.ready;
      crashing.kill('SIGWINCH');
      expect(await waitForExit(crashing), crashing.output()).toEqual({ code: 1, signal: null });
      const lines = crashing
        .output()
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as { msg?: string; err?: { message?: string } });
      const crash = lines.find((line) => line.msg === 'crashed; shutting down');
      expect(crash?.err?.message, crashing.output()).toBe(message);
      expect(
        lines.some((line) => line.msg === `${role} stopped`),
        crashing.output(),
      ).toBe(true);
    },
    30_000,
  );
});
