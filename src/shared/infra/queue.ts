import { Queue, type JobsOptions } from 'bullmq';
import { redisTarget, type Config } from './config.js';
import type { RedisClient } from './redis.js';
import { currentTraceparent } from '../telemetry/tracing.js';
import { within } from './time-limit.js';

/**
 * The apply queue carries "apply the pending transactions of wallet W" jobs.
 * Deduplicating on the wallet id (keepLastIfActive) keeps at most one active and one waiting job
 * per wallet: that is the per-wallet serialization, and the waiting job coalesces every
 * transaction reserved meanwhile. See docs/design.md.
 *
 * It is split into QUEUE_SHARDS BullMQ queues (shards): wallet W always goes to shard
 * W mod QUEUE_SHARDS, so its deduplication key, and with it the serialization, lives in one
 * queue. A BullMQ queue's keys must share one Redis Cluster hash slot; each shard has a hash tag
 * of its own (`{wallet-apply-3}`), so the shards spread over a cluster's nodes. With one shard on
 * a single Redis the queue keeps the name of the unsharded versions (`wallet-apply`), so the jobs
 * of an existing deployment stay where its workers look. Everything that enqueues or names a
 * wallet's queue goes through this module (ApplyQueue.forWallet); see docs/scaling.md for
 * changing the number of shards.
 */
export const APPLY_QUEUE_NAME = 'wallet-apply';
export const APPLY_JOB_NAME = 'apply';

export interface ApplyJobData {
  walletId: number;
  /**
   * W3C traceparent of the span that enqueued the job (absent when not traced). With deduplication
   * only one add's data survives, so each transaction also keeps its own context on its row.
   */
  traceparent?: string;
}

/** One shard: a BullMQ queue. */
export type ApplyShardQueue = Queue<ApplyJobData, void, typeof APPLY_JOB_NAME>;

/** How the apply queue is laid out: the number of shards, and whether Redis is a cluster. */
export interface QueueLayout {
  shards: number;
  cluster: boolean;
}

/** Today's default: one queue on one Redis. */
export const SINGLE_QUEUE: QueueLayout = { shards: 1, cluster: false };

/** The layout `config` asks for. */
export function queueLayout(config: Pick<Config, 'QUEUE_SHARDS' | 'REDIS_URL' | 'REDIS_CLUSTER_NODES'>): QueueLayout {
  return { shards: config.QUEUE_SHARDS, cluster: redisTarget(config).kind === 'cluster' };
}

/** The BullMQ queue name of `shard`: `wallet-apply` (one shard, one Redis), else `{wallet-apply-<shard>}`. */
export function applyShardName(shard: number, layout: QueueLayout): string {
  if (layout.shards === 1 && !layout.cluster) return APPLY_QUEUE_NAME;
  return `{${APPLY_QUEUE_NAME}-${shard}}`;
}

/** The shard of wallet `walletId`: walletId mod shards (wallet ids are positive integers). */
export function shardOfWallet(walletId: number, shards: number): number {
  return walletId % shards;
}

const applyJobOptions: JobsOptions = {
  removeOnComplete: true,
  removeOnFail: { count: 1000 },
  // Failures here are infrastructure failures (database or Redis away); the sweeper is the last resort.
  attempts: 8,
  backoff: { type: 'exponential', delay: 250 },
};

/** The shards of the apply queue, over one connection. */
export class ApplyQueue {
  /** Index = shard number. */
  readonly shards: readonly ApplyShardQueue[];

  constructor(
    connection: RedisClient,
    readonly prefix: string,
    readonly layout: QueueLayout = SINGLE_QUEUE,
  ) {
    this.shards = Array.from(
      { length: layout.shards },
      (_, shard): ApplyShardQueue =>
        new Queue(applyShardName(shard, layout), { connection, prefix, defaultJobOptions: applyJobOptions }),
    );
  }

  shardOf(walletId: number): number {
    return shardOfWallet(walletId, this.shards.length);
  }

  /** The BullMQ queue that holds wallet `walletId`'s jobs. */
  forWallet(walletId: number): ApplyShardQueue {
    return this.shards[this.shardOf(walletId)]!;
  }

  async close(): Promise<void> {
    await Promise.all(this.shards.map((shard) => shard.close()));
  }
}

export function createApplyQueue(
  connection: RedisClient,
  prefix: string,
  layout: QueueLayout = SINGLE_QUEUE,
): ApplyQueue {
  return new ApplyQueue(connection, prefix, layout);
}

export function walletDeduplicationId(walletId: number): string {
  return `wallet:${walletId}`;
}

const ENQUEUE_TIMEOUT_MS = 2000;

const enqueueTimedOut = () => new Error('enqueue timed out: Redis unreachable');

/**
 * Asks for the wallet's pending transactions to be applied; cheap to call many times.
 * Fails after a bounded wait, because BullMQ itself waits as long as Redis is away.
 */
export async function enqueueApply(queue: ApplyQueue, walletId: number): Promise<void> {
  await enqueueApplyMany(queue, [walletId]);
}

/**
 * enqueueApply for a group of wallets: one pipeline of deduplicated adds per shard, the shards
 * at the same time (one Redis round trip on one Redis); BullMQ still keeps at most one waiting
 * job per wallet, within a bulk too.
 */
export async function enqueueApplyMany(queue: ApplyQueue, walletIds: readonly number[]): Promise<void> {
  if (walletIds.length === 0) return;
  const traceparent = currentTraceparent();
  const byShard = new Map<number, Parameters<ApplyShardQueue['addBulk']>[0]>();
  for (const walletId of walletIds) {
    const shard = queue.shardOf(walletId);
    const jobs = byShard.get(shard) ?? [];
    jobs.push({
      name: APPLY_JOB_NAME,
      data: traceparent ? { walletId, traceparent } : { walletId },
      opts: { deduplication: { id: walletDeduplicationId(walletId), keepLastIfActive: true } },
    });
    byShard.set(shard, jobs);
  }
  const adds = [...byShard].map(([shard, jobs]) => queue.shards[shard]!.addBulk(jobs));
  await within(Promise.all(adds), ENQUEUE_TIMEOUT_MS, enqueueTimedOut);
}

/** Webhook deliveries: one job per subscription at a time, deduplicated the same way as wallets. */
export const WEBHOOK_QUEUE_NAME = 'webhook-delivery';
export const WEBHOOK_JOB_NAME = 'deliver';

export interface WebhookJobData {
  subscriptionId: number;
}

export type WebhookQueue = Queue<WebhookJobData, void, typeof WEBHOOK_JOB_NAME>;

/** `webhook-delivery`, hash-tagged on a cluster (one queue: deliveries are few). */
export function webhookQueueName(layout: QueueLayout): string {
  return layout.cluster ? `{${WEBHOOK_QUEUE_NAME}}` : WEBHOOK_QUEUE_NAME;
}

export function createWebhookQueue(
  connection: RedisClient,
  prefix: string,
  layout: QueueLayout = SINGLE_QUEUE,
): WebhookQueue {
  return new Queue(webhookQueueName(layout), {
    connection,
    prefix,
    defaultJobOptions: {
      removeOnComplete: true,
      removeOnFail: { count: 1000 },
      // About 1 s, 2 s, 4 s, ... up to ~68 min between tries, ~2.3 h in all; then the webhook sweep.
      attempts: 13,
      backoff: { type: 'exponential', delay: 1000 },
    },
  });
}

export async function enqueueWebhookDelivery(queue: WebhookQueue, subscriptionId: number): Promise<void> {
  await queue.add(
    WEBHOOK_JOB_NAME,
    { subscriptionId },
    { deduplication: { id: `subscription:${subscriptionId}`, keepLastIfActive: true } },
  );
}
