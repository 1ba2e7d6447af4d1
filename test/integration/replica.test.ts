import { sql, type DatabasePool } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startWorker, type RunningWorker } from '../../src/worker/worker.js';
import { request } from '../support/http.js';
import { startPrimaryWithReplica, type PrimaryWithReplica } from '../support/pg-replica.js';
import { parseMetrics, sampleValue } from '../support/prometheus-text.js';
import { createPool, createTestEnv, silentLogger, startTestApi, waitUntil, type TestEnv } from '../support/test-env.js';

/**
 * DATABASE_READ_URL on a real streaming replica (a primary and a replica of this test's own, from
 * the machine's Postgres binaries): listings and searches read the replica and may lag; what a
 * client must see right after its own write reads the primary; the lag is a metric.
 */
let servers: PrimaryWithReplica;
let env: TestEnv;
let replica: DatabasePool;
let api: Awaited<ReturnType<typeof startTestApi>>;
let worker: RunningWorker;

beforeAll(async () => {
  servers = await startPrimaryWithReplica();
  env = await createTestEnv('replica', {}, { databaseUrl: servers.primaryUrl, replicaUrl: servers.replicaUrl });
  // The database and its migrations reach the replica by WAL like everything else: until they do,
  // even connecting fails (no such database).
  let connected: DatabasePool | undefined;
  await waitUntil(
    'the replica has the migrated database',
    async () => {
      try {
        connected ??= await createPool(env.config.DATABASE_READ_URL!, { maxPoolSize: 1 });
        await connected.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM wallets`);
        return true;
      } catch {
        return false;
      }
    },
    30_000,
  );
  replica = connected!;
  api = await startTestApi(env);
  worker = await startWorker({ ...env.config, METRICS_PORT: 0 }, silentLogger);
}, 90_000);

afterAll(async () => {
  await worker?.close();
  await api?.close();
  await replica?.query(sql.unsafe`SELECT pg_wal_replay_resume()`).catch(() => undefined);
  await replica?.end();
  await env?.destroy();
  await servers?.stop();
});

async function lagSeconds(): Promise<number | undefined> {
  const text = await (await fetch(`${api.url}/metrics`)).text();
  return sampleValue(parseMetrics(text), 'wallet_db_replica_lag_seconds', { pool: 'api-read' });
}

const listed = async (walletId: number) =>
  ((await request(api.url, 'GET', `/wallets/${walletId}/transactions`)).body.items as { id: string }[]).map(
    (item) => item.id,
  );

describe('reads off a streaming replica', () => {
  it('When the replica stops replaying, then listings and searches lag, the lag metric shows it, and what a client needs after its own write still comes from the primary', async () => {
    const wallet = await request(api.url, 'POST', '/wallets', { json: { externalId: 'replica-1' } });
    expect(wallet.status).toBe(201);
    const walletId = wallet.body.id as number;
    const post = (fingerprint: string) =>
      request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
        json: { amount: 5, fingerprint, labels: { via: 'replica-test' } },
        headers: { prefer: 'wait=10' },
      });
    const first = await post('replica-first');
    expect(first.body.status).toBe('applied');
    await waitUntil('the replica lists the first transaction', async () =>
      (await listed(walletId)).includes(first.body.id),
    );
    await waitUntil('the replica has caught up', async () => (await lagSeconds()) === 0, 10_000);

    await replica.query(sql.unsafe`SELECT pg_wal_replay_pause()`);
    await waitUntil(
      'replay is paused',
      async () =>
        (await replica.oneFirst(
          sql.type(z.object({ state: z.string() }))`SELECT pg_get_wal_replay_pause_state() AS state`,
        )) === 'paused',
    );
    const second = await post('replica-second');
    // Prefer: wait, the transaction itself, its lookup by fingerprint, the balance: the primary's.
    expect(second.body.status).toBe('applied');
    expect((await request(api.url, 'GET', `/wallets/${walletId}/transactions/${second.body.id}`)).body.status).toBe(
      'applied',
    );
    expect((await request(api.url, 'GET', '/transactions/by-fingerprint/replica-second')).body.id).toBe(second.body.id);
    expect((await request(api.url, 'GET', `/wallets/${walletId}/balance`)).text).toBe('10.0');
    // Listing and label search: the replica's, which has not replayed it.
    expect(await listed(walletId)).toEqual([first.body.id]);
    const searched = await request(api.url, 'GET', '/transactions?labels[via]=replica-test');
    expect(searched.status, JSON.stringify(searched.body)).toBe(200);
    expect((searched.body.items as { id: string }[]).map((item) => item.id)).toEqual([first.body.id]);
    await waitUntil('the lag metric shows the replica behind', async () => ((await lagSeconds()) ?? 0) > 0, 10_000);

    await replica.query(sql.unsafe`SELECT pg_wal_replay_resume()`);
    await waitUntil('the replica lists the second transaction', async () =>
      (await listed(walletId)).includes(second.body.id),
    );
    await waitUntil('the lag is back to 0', async () => (await lagSeconds()) === 0, 10_000);
  }, 60_000);

  it('When all pending transactions are listed, then the primary answers: the markers they are found by are unlogged, which a replica cannot read', async () => {
    const pending = await request(api.url, 'GET', '/transactions?status=pending');
    expect(pending.status, JSON.stringify(pending.body)).toBe(200);
    expect(pending.body).toEqual({ items: [], nextCursor: null });
  });
});
