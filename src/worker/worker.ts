import { Worker } from 'bullmq';
import type { Config } from '../shared/infra/config.js';
import { createDatabasePool } from '../shared/infra/db.js';
import type { Logger } from '../shared/infra/logger.js';
import { APPLY_QUEUE_NAME, createApplyQueue, createWebhookQueue, type ApplyJobData } from '../shared/infra/queue.js';
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
  const queue = createApplyQueue(redis, config.QUEUE_PREFIX);
  const jobsConnection = createRedis(config, 'wallet-worker-jobs', logger);
  // Probes and scrapes must fail fast while Redis is away; the worker's own connections wait instead.
  const opsRedis = createFailFastRedis(config, 'wallet-worker-ops', logger);
  const metricsQueues = [
    createApplyQueue(opsRedis, config.QUEUE_PREFIX),
    createWebhookQueue(opsRedis, config.QUEUE_PREFIX),
  ];
  const unregisterMetrics = [
    registerDatabasePool('worker', pool),
    ...metricsQueues.map((metricsQueue) => registerQueueDepth(metricsQueue)),
    registerOutbox(() => readOutboxBacklog(pool)),
  ];

  let closing = false;
  const worker = new Worker<ApplyJobData>(
    APPLY_QUEUE_NAME,
    createApplyProcessor({
      pool,
      redis,
      queuePrefix: config.QUEUE_PREFIX,
      batchSize: config.APPLY_BATCH_SIZE,
      logger,
      queue,
      isClosing: () => closing,
    }),
    {
      connection: jobsConnection,
      prefix: config.QUEUE_PREFIX,
      concurrency: config.WORKER_CONCURRENCY,
      lockDuration: config.WORKER_LOCK_DURATION_MS,
      stalledInterval: config.WORKER_STALLED_INTERVAL_MS,
      // A job that stalls twice (its worker died twice) fails; the sweeper then enqueues the wallet again.
      maxStalledCount: 2,
    },
  );
  worker.on('failed', (job, error) => {
    logger.warn(
      { walletId: job?.data.walletId, jobId: job?.id, attempts: job?.attemptsMade, err: error },
      'apply job failed',
    );
  });
  worker.on('error', (error) => logger.error({ err: error }, 'worker error'));
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

  await worker.waitUntilReady();
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
    { concurrency: config.WORKER_CONCURRENCY, queuePrefix: config.QUEUE_PREFIX, port: ops.port },
    'worker started',
  );

  return {
    opsPort: ops.port,
    async close() {
      closing = true;
      await stopSweeper();
      await worker.close();
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
