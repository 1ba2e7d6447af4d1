import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { findLedgerViolations } from '../support/ledger-invariants.js';
import { request } from '../support/http.js';
import { createWallets, postTransactionLoad } from '../support/load.js';
import { parseMetrics, sampleValue } from '../support/prometheus-text.js';
import {
  ROOT,
  createTestEnv,
  spawnWorker,
  startTestApi,
  stopProcess,
  waitUntil,
  type ServiceProcess,
  type TestEnv,
} from '../support/test-env.js';

/**
 * A master of the Redis Cluster crashes under load and comes back empty (no persistence, no
 * replica): the shard on it loses its jobs and deduplication keys. A cluster of this file's own
 * (ports 7111-7113), so the other cluster tests' cluster is not disturbed.
 */
const run = promisify(execFile);
const SCRIPT = path.join(ROOT, 'ops/redis-cluster.sh');
const clusterEnv = { ...process.env, REDIS_CLUSTER_PORT_BASE: '7110' };
const cluster = (...args: string[]) => run(SCRIPT, args, { env: clusterEnv });
/** Holds slots 5461-10922: shard 0 (`{wallet-apply-0}`, slot 7182) lives there. */
const DOOMED_PORT = '7112';

let env: TestEnv;
let api: Awaited<ReturnType<typeof startTestApi>>;
const workers: ServiceProcess[] = [];

beforeAll(async () => {
  await cluster('start');
  env = await createTestEnv('cluster_failover', {
    REDIS_URL: 'redis+cluster://127.0.0.1:7111,127.0.0.1:7112,127.0.0.1:7113',
    QUEUE_SHARDS: '3',
    WORKER_CONCURRENCY: '4',
    APPLY_BATCH_SIZE: '10',
  });
  api = await startTestApi(env);
}, 60_000);

afterAll(async () => {
  await Promise.all(workers.map(stopProcess));
  await api?.close();
  await env?.destroy();
  await cluster('stop');
});

const pendingCount = () =>
  env.pool.oneFirst(sql.type(z.object({ n: z.number() }))`
    SELECT count(*)::int AS n FROM transactions WHERE status = 'pending'
  `);

describe('a Redis Cluster master that crashes', () => {
  it('When a master is killed under load and restarts empty, then every accepted transaction still ends final exactly once, and what its lost jobs held is applied through the sweeper', async () => {
    workers.push(spawnWorker(env, { METRICS_PORT: '0' }), spawnWorker(env, { METRICS_PORT: '0' }));
    await Promise.all(workers.map((worker) => worker.ready));
    const walletIds = await createWallets(api.url, 6, 'failover');
    let outage: Promise<void> | undefined;
    const load = await postTransactionLoad({
      apiUrl: api.url,
      walletIds,
      count: 600,
      concurrency: 16,
      seed: 7112,
      onAccepted: (accepted) => {
        if (accepted !== 200) return;
        outage = (async () => {
          await cluster('kill', DOOMED_PORT);
          // Longer than the cluster's node timeout (2 s): the cluster marks it failed.
          await new Promise((resolve) => setTimeout(resolve, 3_000));
          await cluster('restart', DOOMED_PORT);
        })();
      },
    });
    expect(outage).toBeDefined();
    await outage;
    expect(load.unexpected).toEqual([]);
    expect(load.accepted.size).toBe(600);
    await waitUntil('every transaction is final', async () => (await pendingCount()) === 0, 90_000);
    const counts = await env.pool.oneFirst(sql.type(z.object({ n: z.number() }))`
      SELECT count(*)::int AS n FROM transactions WHERE status IN ('applied', 'rejected')
    `);
    expect(counts).toBe(600);
    expect(await findLedgerViolations(env.pool)).toEqual([]);
    for (const worker of workers) expect(worker.exitCode, worker.output()).toBeNull();

    // Under load, the next post of a wallet heals what the outage cost it. Now with nothing else to
    // come: jobs queued in the doomed node's shard, no worker; the node crashes and comes back empty.
    await Promise.all(workers.splice(0).map(stopProcess));
    const inShardZero = walletIds.filter((walletId) => walletId % 3 === 0);
    expect(inShardZero.length).toBeGreaterThan(0);
    for (const walletId of inShardZero) {
      const posted = await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
        json: { amount: 1, fingerprint: `after-crash-${walletId}` },
      });
      expect(posted.status).toBe(202);
    }
    await cluster('kill', DOOMED_PORT);
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    await cluster('restart', DOOMED_PORT);
    // Their jobs are gone with the node: only the sweeper (Postgres still has them pending) can help.
    const worker = spawnWorker(env, { METRICS_PORT: '0' });
    workers.push(worker);
    await worker.ready;
    await waitUntil('the stranded transactions are final', async () => (await pendingCount()) === 0, 30_000);
    const metrics = parseMetrics(await (await fetch(`http://127.0.0.1:${worker.port}/metrics`)).text());
    expect(sampleValue(metrics, 'wallet_sweeper_reenqueued_total') ?? 0).toBeGreaterThanOrEqual(inShardZero.length);
    expect(await findLedgerViolations(env.pool)).toEqual([]);
  }, 150_000);
});
