import { Worker } from 'bullmq';
import type { Config } from '../shared/infra/config.js';
import { createDatabasePool } from '../shared/infra/db.js';
import type { Logger } from '../shared/infra/logger.js';
import {
  applyShardName,
  createApplyQueue,
  createWebhookQueue,
  queueLayout,
  type ApplyJobData,
} from '../shared/infra/queue.js';
import { servedShards } from '../shared/infra/config.js';
import { createFailFastRedis, createRedis } from '../shared/infra/redis.js';
import { sweepStalePending, type SweepCursor } from '../shared/apply/sweep-stale-pending.js';
import { HealthChecks } from '../shared/infra/health.js';
import { readOutboxBacklog } from '../shared/events/outbox-repository.js';
import { recordSweep, registerDatabasePool, registerOutbox, registerQueueDepth } from '../shared/telemetry/metrics.js';
import { closeRedis, settleWithin } from '../shared/infra/shutdown.js';
import { createApplyProcessor } from './apply-processor.js';
import { startEventRelay } from './event-relay.js';
import { repeat } from './repeat.js';
import { startOpsServer } from './ops-server.js';

export interface RunningWorker {
  /** The port of its ops server (/metrics, /healthz, /readyz). */
  opsPort: number;
  /** Stops taking jobs, finishes the ones in flight, then closes connections. */
  close(): Promise<void>;
}

export async function startWorker(config: Config, logger: Logger): Promise<RunningWorker> {
  const pool = await createDatabasePool(config, 'wallet-worker');
  const redis = createRedis(config, 'wallet-worker', logger);
  const layout = queueLayout(config);
  const queue = createApplyQueue(redis, config.QUEUE_PREFIX, layout);
  const jobsConnection = createRedis(config, 'wallet-worker-jobs', logger);
  // Probes and scrapes must fail fast while Redis is away; the worker's own connections wait instead.
  const opsRedis = createFailFastRedis(config, 'wallet-worker-ops', logger);
  const metricsApplyQueue = createApplyQueue(opsRedis, config.QUEUE_PREFIX, layout);
  const metricsQueues = [...metricsApplyQueue.shards, createWebhookQueue(opsRedis, config.QUEUE_PREFIX, layout)];
  const unregisterMetrics = [
    registerDatabasePool('worker', pool),
    ...metricsQueues.map((metricsQueue) => registerQueueDepth(metricsQueue)),
    registerOutbox(() => readOutboxBacklog(pool)),
  ];

  let closing = false;
  // One processor for every shard: the wallets of all the jobs this process holds share its apply groups.
  const processor = createApplyProcessor({
    pool,
    redis,
    queuePrefix: config.QUEUE_PREFIX,
    batchSize: config.APPLY_BATCH_SIZE,
    logger,
    queue,
    isClosing: () => closing,
    servedShards: servedShards(config),
  });
  const shards = servedShards(config);
  // WORKER_CONCURRENCY is the process's: split over the shards it serves (wallets spread evenly over shards).
  const concurrency = Math.max(1, Math.ceil(config.WORKER_CONCURRENCY / shards.length));
  // One BullMQ worker per shard served; each blocks on a connection of its own (BullMQ duplicates jobsConnection).
  const workers = shards.map((shard) => {
    const worker = new Worker<ApplyJobData>(applyShardName(shard, layout), processor, {
      connection: jobsConnection,
      prefix: config.QUEUE_PREFIX,
      concurrency,
      lockDuration: config.WORKER_LOCK_DURATION_MS,
      stalledInterval: config.WORKER_STALLED_INTERVAL_MS,
      // A job that stalls twice (its worker died twice) fails; the sweeper then enqueues the wallet again.
      maxStalledCount: 2,
    });
    worker.on('failed', (job, error) => {
      logger.warn(
        { walletId: job?.data.walletId, jobId: job?.id, shard, attempts: job?.attemptsMade, err: error },
        'apply job failed',
      );
    });
    worker.on('error', (error) => logger.error({ err: error, shard }, 'worker error'));
    return worker;
  });
  const relay = startEventRelay({ pool, redis, config, logger });

  const sweepCursor: SweepCursor = { afterWalletId: 0 };
  const stopSweeper = repeat(
    config.SWEEP_INTERVAL_MS,
    async () => {
      const { enqueued, released, markersRestored } = await sweepStalePending(
        { db: pool, queue, redis },
        config.SWEEP_STALE_AFTER_MS,
        sweepCursor,
      );
      recordSweep({ reenqueued: enqueued });
      if (markersRestored !== null) {
        logger.warn({ restored: markersRestored }, 'pending markers were lost (a Postgres crash?) and were rebuilt');
      }
      if (released > 0) logger.warn({ released }, 'sweeper released wallets whose queued job could not move');
      if (enqueued > 0) logger.info({ enqueued }, 'sweeper re-enqueued wallets with stale pending transactions');
      return false;
    },
    (error) => {
      recordSweep({ error: true });
      logger.error({ err: error }, 'sweep failed');
    },
  );

  await Promise.all(workers.map((worker) => worker.waitUntilReady()));
  const ops = await startOpsServer(
    {
      port: config.METRICS_PORT,
      host: config.HOST,
      health: new HealthChecks({ databaseUrl: config.DATABASE_URL, redis: opsRedis, logger }),
    },
    logger,
  );
  // `port` is the ops port (/metrics, /healthz, /readyz).
  logger.info(
    {
      concurrency: config.WORKER_CONCURRENCY,
      queuePrefix: config.QUEUE_PREFIX,
      shards: config.QUEUE_SHARDS,
      shardsServed: shards,
      redis: layout.cluster ? 'cluster' : 'single',
      port: ops.port,
    },
    'worker started',
  );

  return {
    opsPort: ops.port,
    async close() {
      closing = true;
      await stopSweeper();
      await Promise.all(workers.map((worker) => worker.close()));
      await relay.close();
      await ops.close();
      for (const unregister of unregisterMetrics) unregister();
      await settleWithin(queue.close());
      for (const metricsQueue of metricsQueues) await settleWithin(metricsQueue.close());
      await closeRedis(jobsConnection);
      await closeRedis(opsRedis);
      await closeRedis(redis);
      await pool.end();
      logger.info('worker stopped');
    },
  };
}
