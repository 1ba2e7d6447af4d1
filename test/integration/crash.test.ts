import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { Redis } from 'ioredis';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { findEventsAfter, listOutboxEvents, readRelayCursor } from '../../src/shared/events/outbox-repository.js';
import { eventStreamKey } from '../../src/shared/events/event-stream.js';
import { createApplyQueue } from '../../src/shared/infra/queue.js';
import { findLedgerViolations } from '../support/ledger-invariants.js';
import { createWallets, postTransactionLoad } from '../support/load.js';
import { describeConnectionError, isConnectionRefused, keepAliveClient, request } from '../support/http.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import {
  ROOT,
  applyGroupWaitsOnLock,
  createPool,
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
const unpublishedCount = async () => (await findEventsAfter(env.pool, await readRelayCursor(env.pool), 100_000)).length;
const finalCount = () =>
  env.pool.oneFirst(sql.type(z.object({ n: z.number() }))`
    SELECT count(*)::int AS n FROM transactions WHERE status <> 'pending'
  `);

describe('workers that die', () => {
  it('When a worker is SIGKILLed mid-run and another starts, then every transaction still ends final exactly once', async () => {
    const doomed = spawnWorker(env);
    const survivor = spawnWorker(env);
    workers.push(doomed, survivor);
    await Promise.all([doomed.ready, survivor.ready]);
    const walletIds = await createWallets(api.url, 4, 'crash');

    let killed = false;
    const load = postTransactionLoad({
      apiUrl: api.url,
      walletIds,
      count: 2000,
      concurrency: 32,
      seed: 4242,
      onAccepted: async (accepted) => {
        if (killed || accepted < 600) return;
        killed = true;
        // Only once the workers are really applying, so the kill interrupts work in progress.
        if ((await finalCount()) === 0) killed = false;
        else doomed.kill('SIGKILL');
      },
    });
    const result = await load;
    expect(killed).toBe(true);
    expect(await waitForExit(doomed)).toEqual({ code: null, signal: 'SIGKILL' });
    workers.push(spawnWorker(env));

    expect(result.unexpected).toEqual([]);
    await waitUntil('every transaction is final', async () => (await pendingCount()) === 0, 120_000);
    expect(await findLedgerViolations(env.pool)).toEqual([]);
    const stored = await env.pool.anyFirst(
      sql.type(z.object({ fingerprint: z.string() }))`SELECT fingerprint FROM transactions`,
    );
    expect(new Set(stored)).toEqual(result.accepted);

    // The killed worker may have been relaying events: each still reaches the stream exactly once.
    await waitUntil('the outbox is drained', async () => (await unpublishedCount()) === 0, 60_000);
    const outboxIds = (await listOutboxEvents(env.pool)).map((event) => event.eventId);
    const redis = new Redis(env.config.REDIS_URL);
    try {
      const entries = await redis.xrange(eventStreamKey(env.config.QUEUE_PREFIX), '-', '+');
      const streamIds = entries.map(
        ([, fields]) => (JSON.parse(fields[fields.indexOf('event') + 1]!) as { id: string }).id,
      );
      expect(streamIds).toHaveLength(outboxIds.length);
      expect(new Set(streamIds)).toEqual(new Set(outboxIds));
    } finally {
      redis.disconnect();
    }
  }, 180_000);

  it('When a worker gets SIGTERM while busy, then it finishes the jobs it holds before it exits 0, and nothing is lost', async () => {
    await Promise.all(workers.map(stopProcess));
    const walletIds = await createWallets(api.url, 3, 'sigterm');
    const fingerprints = walletIds.flatMap((walletId) =>
      Array.from({ length: 12 }, (_, i) => `sigterm-${walletId}-${i}`),
    );
    for (const fingerprint of fingerprints) {
      const walletId = Number(fingerprint.split('-')[1]);
      const posted = await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
        json: { amount: 2, fingerprint },
      });
      expect(posted.status).toBe(202);
    }
    // Another session holds the first transaction's row: the leaving worker's group waits on it
    // mid-job, so the signal surely comes while the worker holds jobs.
    const held = await lockTransactionRow(fingerprints[0]!);
    const redis = new Redis(env.config.REDIS_URL);
    const queue = createApplyQueue(redis, env.config.QUEUE_PREFIX);
    try {
      const leaving = spawnWorker(env);
      workers.push(leaving);
      await leaving.ready;
      await waitUntil('a group waits on the held row', () => applyGroupWaitsOnLock(env.pool));
      const jobs = (await queue.getActive()).map((job) => job.id!);
      expect(jobs.length).toBeGreaterThan(0);
      leaving.kill('SIGTERM');
      await waitUntil('the worker begins its shutdown', () =>
        Promise.resolve(leaving.output().includes('shutting down')),
      );
      // Its job cannot finish while the row is held, so neither can the worker.
      expect(leaving.exitCode).toBeNull();
      held.release();
      expect(await waitForExit(leaving), leaving.output()).toEqual({ code: 0, signal: null });

      // Checked before any other worker runs, so none can have finished them in its place: the
      // jobs it held are done (completed jobs are removed; a failed one would stay), none is left
      // active for another worker to take over once its lock expires, and the held transaction,
      // which its job had in hand, is applied.
      const states = await Promise.all(
        jobs.map(async (id) => (await (await queue.getJob(id))?.getState()) ?? 'completed and removed'),
      );
      expect(states).toEqual(jobs.map(() => 'completed and removed'));
      expect(await queue.getJobCounts('active', 'failed')).toEqual({ active: 0, failed: 0 });
      const inHand = await request(api.url, 'GET', `/transactions/by-fingerprint/${fingerprints[0]!}`);
      expect(inHand.body.status).toBe('applied');
    } finally {
      held.release();
      await held.done;
      await queue.close();
      redis.disconnect();
    }
    // What it had not started is left pending for the next worker, which applies all of it.
    workers.push(spawnWorker(env));
    await waitUntil('every transaction is final', async () => (await pendingCount()) === 0, 60_000);
    expect(await findLedgerViolations(env.pool)).toEqual([]);
    const balances = await Promise.all(
      walletIds.map(async (walletId) => (await request(api.url, 'GET', `/wallets/${walletId}/balance`)).text),
    );
    expect(balances).toEqual(walletIds.map(() => '24.0'));
  }, 120_000);
});

/**
 * Another session locks one transaction's row (FOR UPDATE) until `release`: an apply group that
 * reaches it waits there, in the middle of its statements.
 */
async function lockTransactionRow(fingerprint: string) {
  const holder = await createPool(env.config.DATABASE_URL, { maxPoolSize: 1 });
  let release!: () => void;
  let locked!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const isLocked = new Promise<void>((resolve) => (locked = resolve));
  const holding = holder.transaction(async (tx) => {
    await tx.query(sql.unsafe`SELECT 1 FROM transactions WHERE fingerprint = ${fingerprint} FOR UPDATE`);
    locked();
    await released;
  });
  await isLocked;
  return { release, done: holding.finally(() => holder.end()) };
}

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

  it('When a worker is SIGKILLed in the middle of the write statement of its group, then nothing of the group is written and another worker applies it once', async () => {
    await Promise.all(workers.map(stopProcess));
    const walletIds = await createWallets(api.url, 6, 'worker-mid-group');
    const [blocked] = walletIds;
    for (const walletId of walletIds) {
      for (let i = 0; i < 3; i += 1) {
        const response = await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
          json: { amount: 4, fingerprint: `worker-mid-${walletId}-${i}` },
        });
        expect(response.status).toBe(202);
      }
    }

    // Another session holds one pending transaction's row: the group reads, and its write statement
    // updates the balances, then waits on that row's outcome UPDATE, before its commit.
    const held = await lockTransactionRow(`worker-mid-${blocked!}-0`);
    try {
      const doomed = spawnWorker(env, { WORKER_CONCURRENCY: '64' });
      workers.push(doomed);
      await doomed.ready;
      await waitUntil('a group waits on the held row', () => applyGroupWaitsOnLock(env.pool));
      doomed.kill('SIGKILL');
      expect(await waitForExit(doomed)).toEqual({ code: null, signal: 'SIGKILL' });
      // The group had written balances when it was cut off: none of it is visible.
      const written = await env.pool.oneFirst(sql.type(z.object({ n: z.number() }))`
        SELECT count(*)::int AS n FROM transactions WHERE fingerprint LIKE 'worker-mid-%' AND status <> 'pending'
      `);
      expect(written).toBe(0);
      const balances = await env.pool.anyFirst(sql.type(z.object({ balance: z.string() }))`
        SELECT balance::text AS balance FROM wallets WHERE id = ANY(${sql.array(walletIds, 'int8')})
      `);
      expect(new Set(balances)).toEqual(new Set(['0.00']));
    } finally {
      held.release();
      await held.done;
    }
    workers.push(spawnWorker(env));
    await waitUntil('every transaction is final', async () => (await pendingCount()) === 0, 60_000);
    const refnos = await env.pool.any(sql.type(z.object({ walletId: z.number(), refnos: z.array(z.number()) }))`
      SELECT wallet_id AS "walletId", array_agg(refno ORDER BY refno) AS refnos FROM transactions
      WHERE fingerprint LIKE 'worker-mid-%' GROUP BY wallet_id
    `);
    expect(refnos.map((row) => row.refnos)).toEqual(walletIds.map(() => [1, 2, 3]));
    expect(await findLedgerViolations(env.pool)).toEqual([]);
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
