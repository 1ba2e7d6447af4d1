import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FinalizationListener,
  announceFinalized,
  finalizationChannel,
} from '../../src/shared/apply/finalization-notices.js';
import { releaseStuckWallet } from '../../src/shared/apply/recover-stuck-wallets.js';
import { RateLimiter } from '../../src/shared/auth/rate-limit.js';
import { DependenciesUnreachableError, waitForDependencies } from '../../src/shared/infra/dependencies.js';
import { EventStreamPublisher, eventStreamKey } from '../../src/shared/events/event-stream.js';
import type { OutboxEvent } from '../../src/shared/events/cloud-events.js';
import {
  applyShardName,
  createApplyQueue,
  enqueueApplyMany,
  queueLayout,
  walletDeduplicationId,
  type ApplyQueue,
} from '../../src/shared/infra/queue.js';
import { Cluster, createRedis, isCluster, type RedisClient } from '../../src/shared/infra/redis.js';
import { startWorker } from '../../src/worker/worker.js';
import { request } from '../support/http.js';
import { REDIS_CLUSTER } from '../support/redis-topologies.js';
import { createTestEnv, silentLogger, startTestApi, waitUntil, type TestEnv } from '../support/test-env.js';

/**
 * Every user of Redis, on a Redis Cluster of three masters (started for the run by
 * test/support/redis-cluster-setup.ts) with the apply queue in three shards: the queue shards
 * spread over the nodes, and each multi-key script or command keeps its keys in one slot.
 */
let env: TestEnv;
let redis: RedisClient;
let queue: ApplyQueue;

beforeAll(async () => {
  // Webhooks below go to a receiver on 127.0.0.1.
  env = await createTestEnv('cluster_redis', { ...REDIS_CLUSTER.env, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' });
  redis = createRedis(env.config, 'test-cluster', silentLogger);
  queue = createApplyQueue(redis, env.config.QUEUE_PREFIX, queueLayout(env.config));
});

afterAll(async () => {
  await queue?.close();
  redis?.disconnect();
  await env?.destroy();
});

/** The master that holds `key`. */
async function nodeOf(key: string): Promise<string> {
  const cluster = redis as Cluster;
  for (const node of cluster.nodes('master')) {
    // A node that does not serve the key's slot answers MOVED.
    if ((await node.exists(key).catch(() => 0)) === 1) return `${node.options.host}:${node.options.port}`;
  }
  return 'none';
}

describe('the apply queue on a cluster', () => {
  it('When wallets of every shard are enqueued, then each shard has its jobs under its own hash tag, the three shards on three nodes', async () => {
    expect(isCluster(redis)).toBe(true);
    await enqueueApplyMany(queue, [1, 2, 3, 4, 5, 6]);
    const placement = await Promise.all(
      queue.shards.map(async (shard, index) => {
        expect(shard.name).toBe(applyShardName(index, queueLayout(env.config)));
        const waiting = (await shard.getWaiting()).map((job) => job.data.walletId).sort();
        return { waiting, node: await nodeOf(shard.toKey('wait')) };
      }),
    );
    // Wallet W in shard W mod 3.
    expect(placement.map((shard) => shard.waiting)).toEqual([
      [3, 6],
      [1, 4],
      [2, 5],
    ]);
    expect(new Set(placement.map((shard) => shard.node)).size).toBe(3);
    await Promise.all(queue.shards.map((shard) => shard.obliterate({ force: true })));
  });

  it('When a wallet is stranded (its deduplication key names a job in no list), then its release works in its shard', async () => {
    const walletId = 8; // shard 2
    const shard = queue.forWallet(walletId);
    await enqueueApplyMany(queue, [walletId]);
    expect(await releaseStuckWallet(redis, queue, walletId)).toBe(false); // waiting: can still run
    const jobId = await redis.get(shard.toKey(`de:${walletDeduplicationId(walletId)}`));
    expect(jobId).not.toBeNull();
    expect(await redis.lrem(shard.toKey('wait'), 0, jobId!)).toBe(1);
    expect(await releaseStuckWallet(redis, queue, walletId)).toBe(true);
    expect(await redis.exists(shard.toKey(`de:${walletDeduplicationId(walletId)}`))).toBe(0);
    await shard.obliterate({ force: true });
  });
});

describe('the rest of Redis on a cluster', () => {
  it('When several callers take tokens at once, then each has a bucket of its own and is limited at its burst', async () => {
    const limiter = new RateLimiter(
      redis,
      { perSecond: 1, burst: 2, prefix: env.config.QUEUE_PREFIX, now: () => 1_000_000 },
      silentLogger,
    );
    await waitUntil('the cluster connection is ready', () => Promise.resolve(redis.status === 'ready'));
    const callers = ['alice', 'bob', 'carol', 'dave'];
    // Three requests per caller, all at once: one group, several buckets (several slots).
    const decisions = await Promise.all(callers.flatMap((caller) => [1, 2, 3].map(() => limiter.take(caller))));
    expect(decisions.map((decision) => decision?.allowed)).toEqual(callers.flatMap(() => [true, true, false]));
  });

  it('When a worker announces a wallet final, then a waiter subscribed through another node of the cluster wakes', async () => {
    const subscriber = createRedis(env.config, 'test-finalized', silentLogger);
    // Re-checks without news once an hour: only the notice can wake the waiter in time.
    const listener = new FinalizationListener(subscriber, finalizationChannel(env.config.QUEUE_PREFIX), 3_600_000);
    try {
      await listener.start();
      let final = false;
      let reads = 0;
      const waiting = listener.waitFor(77, 3_600_000, () => {
        reads += 1;
        return Promise.resolve(final ? 'final' : null);
      });
      await waitUntil('the waiter read once', () => Promise.resolve(reads === 1));
      final = true;
      await announceFinalized(redis, env.config.QUEUE_PREFIX, 77);
      expect(await waiting).toBe('final');
      expect(reads).toBe(2);
    } finally {
      await listener.close();
      subscriber.disconnect();
    }
  });

  it('When the relay publishes a batch, then its script (stream and the legacy set, one slot) adds each event once', async () => {
    const publisher = new EventStreamPublisher(redis, env.config.QUEUE_PREFIX, 1000);
    const events: OutboxEvent[] = [1, 2, 3].map((n) => ({
      position: `${String(n).padStart(20, '0')}`,
      xid: '1',
      row: n,
      ordinal: 0,
      eventId: `00000000-0000-4000-8000-00000000000${n}`,
      walletId: 1,
      type: 'wallet.transaction.applied',
      subject: null,
      data: '{}',
      created: new Date(0).toISOString(),
      legacyId: n === 3 ? 42 : null,
    }));
    expect(await publisher.publish(events, '0')).toBe(3);
    expect(await publisher.publish(events, '0')).toBe(0); // the stream's tail holds the position
    expect(await redis.xlen(eventStreamKey(env.config.QUEUE_PREFIX))).toBe(3);
  });

  it('When a process starts, then it finds the cluster, and names the cluster nodes when none answers', async () => {
    await waitForDependencies(env.config, ['Redis'], 0);
    const gone = { ...env.config, REDIS_URL: 'redis+cluster://127.0.0.1:1,127.0.0.1:2' };
    const failure = await waitForDependencies(gone, ['Redis'], 0).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(DependenciesUnreachableError);
    expect((failure as Error).message).toBe(
      'cannot reach Redis at redis+cluster://127.0.0.1:1,127.0.0.1:2 (no node of the cluster answered). ' +
        'Start it (with Docker: docker compose up -d postgres redis), or set REDIS_URL to where it runs.',
    );
  });

  it('When the API runs on the cluster, then /readyz reports Redis ready', async () => {
    const api = await startTestApi(env);
    try {
      const ready = await request(api.url, 'GET', '/readyz');
      expect(ready.status, JSON.stringify(ready.body)).toBe(200);
      expect(ready.body.checks).toMatchObject({ redis: 'ok' });
    } finally {
      await api.close();
    }
  });

  it('When a wallet is created with a webhook subscribed, then the worker relays the event to the stream and delivers it through the webhook queue', async () => {
    const received: { type: string; walletid?: string }[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        received.push(JSON.parse(body) as { type: string; walletid?: string });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const api = await startTestApi(env);
    const worker = await startWorker({ ...env.config, METRICS_PORT: 0 }, silentLogger);
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
      const subscribed = await request(api.url, 'POST', '/webhooks', { json: { url, events: ['WalletCreated'] } });
      expect(subscribed.status).toBe(201);
      const wallet = await request(api.url, 'POST', '/wallets', { json: { externalId: 'cluster-webhook' } });
      expect(wallet.status).toBe(201);
      await waitUntil(
        'the receiver got the WalletCreated event',
        () => Promise.resolve(received.some((event) => event.walletid === String(wallet.body.id))),
        20_000,
      );
      expect(received.find((event) => event.walletid === String(wallet.body.id))?.type).toBe('WalletCreated');
    } finally {
      await worker.close();
      await api.close();
      await new Promise((resolve) => server.close(resolve));
    }
  }, 30_000);
});
