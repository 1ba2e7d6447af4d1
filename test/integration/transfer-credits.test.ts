import { randomUUID } from 'node:crypto';
import { sql } from 'slonik';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { auditLedger } from '../../src/shared/audit/ledger-audit.js';
import { loadConfig } from '../../src/shared/infra/config.js';
import { registry } from '../../src/shared/telemetry/metrics.js';
import { startWorker, type RunningWorker } from '../../src/worker/worker.js';
import { request } from '../support/http.js';
import { createTestEnv, silentLogger, startTestApi, waitUntil, type TestEnv } from '../support/test-env.js';

/**
 * The credit legs of a job's transfer debits are applied by the worker that debited them, in its
 * apply groups, not by a queue job per destination; a destination on a shard the worker does not
 * serve still goes through its own shard's queue.
 */
let env: TestEnv;
let api: Awaited<ReturnType<typeof startTestApi>>;
const workers: RunningWorker[] = [];

beforeAll(async () => {
  env = await createTestEnv('transfer_credits', { QUEUE_SHARDS: '2' });
  api = await startTestApi(env);
});

afterAll(async () => {
  await api?.close();
  await env?.destroy();
});

const startWorkerServing = async (shards: string) => {
  const worker = await startWorker(loadConfig({ ...env.env, QUEUE_SHARDS_SERVED: shards }), silentLogger);
  workers.push(worker);
  return worker;
};

afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.close()));
});

/** Apply jobs this process' workers completed so far (the job duration histogram's count). */
async function completedApplyJobs(): Promise<number> {
  const text = await registry.getSingleMetricAsString('wallet_apply_job_duration_seconds');
  const count = /^wallet_apply_job_duration_seconds_count\{outcome="completed"\} (\d+)$/m.exec(text);
  return count ? Number(count[1]) : 0;
}

/** A new wallet whose id falls on `shard` of 2 (wallet W is on shard W mod 2). */
async function walletOnShard(shard: number): Promise<number> {
  for (;;) {
    const created = await request(api.url, 'POST', '/wallets', { json: { externalId: `credits-${randomUUID()}` } });
    expect(created.status).toBe(201);
    const id = created.body.id as number;
    if (id % 2 === shard) return id;
  }
}

const transferStatus = (fingerprint: string) =>
  env.pool.oneFirst(sql.type(z.object({ status: z.string() }))`
    SELECT CASE WHEN credit_seq IS NULL THEN 'debit only'
                ELSE (SELECT t.status FROM transactions t WHERE t.wallet_id = tr.to_wallet AND t.seq = tr.credit_seq)
           END AS status
    FROM transfers tr WHERE fingerprint = ${fingerprint}
  `);

describe('transfer credit legs', () => {
  it('When one job debits transfers to five wallets, then the same job applies all five credits: one apply job in all', async () => {
    const house = await walletOnShard(0);
    const winners = await Promise.all([0, 0, 0, 0, 0].map(walletOnShard));
    // Funded and transferred while no worker runs, so a single job finds every debit pending.
    const deposit = await request(api.url, 'POST', `/wallets/${house}/transactions`, {
      json: { amount: 500, fingerprint: `house-${house}` },
    });
    expect(deposit.status).toBe(202);
    const fingerprints = winners.map((to) => `prize-${house}-${to}`);
    for (const [index, to] of winners.entries()) {
      const posted = await request(api.url, 'POST', '/transfers', {
        json: { from: house, to, amount: '10.00', fingerprint: fingerprints[index] },
      });
      expect(posted.status).toBe(202);
    }
    const jobsBefore = await completedApplyJobs();
    await startWorkerServing('0,1');
    await waitUntil('every transfer is completed', async () => {
      const statuses = await Promise.all(fingerprints.map(transferStatus));
      return statuses.every((status) => status === 'applied');
    });
    // Without the credits applied here it is six jobs: the house's and one per winner.
    await waitUntil('the job is counted', async () => (await completedApplyJobs()) - jobsBefore >= 1);
    expect((await completedApplyJobs()) - jobsBefore).toBe(1);
    for (const to of winners) {
      expect((await request(api.url, 'GET', `/wallets/${to}`)).body.balance).toBe(10);
    }
    expect((await auditLedger(env.pool, { settled: true })).violations).toEqual([]);
  });

  it('When the destination is on a shard the worker does not serve, then its credit waits for a worker of that shard', async () => {
    const from = await walletOnShard(0);
    const to = await walletOnShard(1);
    await startWorkerServing('0');
    const deposit = await request(api.url, 'POST', `/wallets/${from}/transactions`, {
      json: { amount: 50, fingerprint: `fund-${from}` },
      headers: { prefer: 'wait=10' },
    });
    expect(deposit.status).toBe(201);
    const fingerprint = `across-${from}-${to}`;
    const posted = await request(api.url, 'POST', '/transfers', {
      json: { from, to, amount: '20.00', fingerprint },
    });
    expect(posted.status).toBe(202);
    await waitUntil('the debit is applied and the credit reserved', async () => {
      return (await transferStatus(fingerprint)) === 'pending';
    });
    // The shard-0 worker keeps its hands off: the credit is still pending a while later.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await transferStatus(fingerprint)).toBe('pending');
    await startWorkerServing('1');
    await waitUntil(
      'the shard-1 worker applies the credit',
      async () => (await transferStatus(fingerprint)) === 'applied',
    );
    expect((await request(api.url, 'GET', `/wallets/${to}`)).body.balance).toBe(20);
    expect((await auditLedger(env.pool, { settled: true })).violations).toEqual([]);
  });
});
