import { Worker } from 'bullmq';
import type { DatabasePool } from 'slonik';
import type { Config } from '../shared/infra/config.js';
import { EventStreamPublisher } from '../shared/events/event-stream.js';
import type { Logger } from '../shared/infra/logger.js';
import { relayOutbox } from '../shared/events/outbox-relay.js';
import { deleteOldEvents, findSubscriptionsWithBacklog } from '../shared/events/outbox-repository.js';
import {
  createWebhookQueue,
  queueLayout,
  webhookQueueName,
  enqueueWebhookDelivery,
  type WebhookJobData,
} from '../shared/infra/queue.js';
import { createFailFastRedis, createRedis, type RedisClient } from '../shared/infra/redis.js';
import { registerEventStreamLag } from '../shared/telemetry/metrics.js';
import { closeRedis, settleWithin } from '../shared/infra/shutdown.js';
import { deliverPendingWebhooks } from '../shared/events/webhooks.js';
import { repeat } from './repeat.js';

const RELAY_BATCH_SIZE = 500;
const CLEANUP_BATCH_SIZE = 5000;

export interface RunningRelay {
  close(): Promise<void>;
}

/**
 * The outbox relay (publishes events to the Redis Stream and queues webhook deliveries), the
 * webhook delivery worker, the sweep that re-enqueues subscriptions whose retries ran out, and
 * the cleanup of events past their retention.
 * Every worker process runs them; an advisory lock lets one relay publish at a time.
 */
export function startEventRelay(deps: {
  pool: DatabasePool;
  redis: RedisClient;
  config: Config;
  logger: Logger;
}): RunningRelay {
  const { pool, redis, config, logger } = deps;
  // Fail fast while Redis is away: a waiting connection would pile every abandoned batch up in its offline queue.
  const streamConnection = createFailFastRedis(config, 'wallet-relay', logger);
  const publisher = new EventStreamPublisher(streamConnection, config.QUEUE_PREFIX, config.EVENT_STREAM_MAX_LENGTH);
  const unregisterLag = registerEventStreamLag(() => publisher.slowestGroupLag());
  const layout = queueLayout(config);
  const webhookQueue = createWebhookQueue(redis, config.QUEUE_PREFIX, layout);
  const deliveryConnection = createRedis(config, 'wallet-webhooks', logger);

  const deliveries = new Worker<WebhookJobData>(
    webhookQueueName(layout),
    async (job) => {
      await deliverPendingWebhooks(pool, job.data.subscriptionId, {
        timeoutMs: config.WEBHOOK_TIMEOUT_MS,
        batchSize: 100,
        allowPrivateTargets: config.WEBHOOK_ALLOW_PRIVATE_TARGETS,
      });
    },
    { connection: deliveryConnection, prefix: config.QUEUE_PREFIX, concurrency: config.WEBHOOK_CONCURRENCY },
  );
  deliveries.on('failed', (job, error) =>
    logger.warn(
      { subscriptionId: job?.data.subscriptionId, attempts: job?.attemptsMade, err: error },
      'webhook delivery failed',
    ),
  );
  deliveries.on('error', (error) => logger.error({ err: error }, 'webhook worker error'));

  const stopRelay = repeat(
    config.RELAY_INTERVAL_MS,
    async () => {
      const { relayed, subscriptionsToNotify } = await relayOutbox(
        pool,
        publisher,
        RELAY_BATCH_SIZE,
        config.RELAY_PUBLISH_TIMEOUT_MS,
      );
      for (const subscriptionId of subscriptionsToNotify) await enqueueWebhookDelivery(webhookQueue, subscriptionId);
      return relayed >= RELAY_BATCH_SIZE;
    },
    (error) => logger.error({ err: error }, 'outbox relay pass failed'),
  );

  const stopSweep = repeat(
    config.WEBHOOK_SWEEP_INTERVAL_MS,
    async () => {
      for (const subscriptionId of await findSubscriptionsWithBacklog(pool)) {
        await enqueueWebhookDelivery(webhookQueue, subscriptionId);
      }
      return false;
    },
    (error) => logger.error({ err: error }, 'webhook sweep failed'),
  );

  // Published events are kept OUTBOX_RETENTION_HOURS for inspection and replays, then deleted.
  const stopCleanup = repeat(
    config.WEBHOOK_SWEEP_INTERVAL_MS,
    async () => (await deleteOldEvents(pool, config.OUTBOX_RETENTION_HOURS, CLEANUP_BATCH_SIZE)) === CLEANUP_BATCH_SIZE,
    (error) => logger.error({ err: error }, 'outbox cleanup failed'),
  );

  return {
    async close() {
      await stopRelay();
      await stopSweep();
      await stopCleanup();
      await deliveries.close();
      await settleWithin(webhookQueue.close());
      await closeRedis(deliveryConnection);
      unregisterLag();
      await closeRedis(streamConnection);
    },
  };
}
