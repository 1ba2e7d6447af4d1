import { Queue, type JobsOptions } from 'bullmq';
import type { Redis } from './redis.js';
import { currentTraceparent } from '../telemetry/tracing.js';
import { within } from './time-limit.js';

/**
 * One BullMQ queue carries "apply the pending transactions of wallet W" jobs.
 * Deduplicating on the wallet id (keepLastIfActive) keeps at most one active and one waiting job
 * per wallet: that is the per-wallet serialization, and the waiting job coalesces every
 * transaction reserved meanwhile. See docs/design.md.
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

export type ApplyQueue = Queue<ApplyJobData, void, typeof APPLY_JOB_NAME>;

const applyJobOptions: JobsOptions = {
  removeOnComplete: true,
  removeOnFail: { count: 1000 },
  // Failures here are infrastructure failures (database or Redis away); the sweeper is the last resort.
  attempts: 8,
  backoff: { type: 'exponential', delay: 250 },
};

export function createApplyQueue(connection: Redis, prefix: string): ApplyQueue {
  return new Queue(APPLY_QUEUE_NAME, { connection, prefix, defaultJobOptions: applyJobOptions });
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
 * enqueueApply for a group of wallets in one Redis round trip (one pipeline of deduplicated
 * adds); BullMQ still keeps at most one waiting job per wallet, within the bulk too.
 */
export async function enqueueApplyMany(queue: ApplyQueue, walletIds: readonly number[]): Promise<void> {
  if (walletIds.length === 0) return;
  const traceparent = currentTraceparent();
  const jobs: Parameters<ApplyQueue['addBulk']>[0] = walletIds.map((walletId) => ({
    name: APPLY_JOB_NAME,
    data: traceparent ? { walletId, traceparent } : { walletId },
    opts: { deduplication: { id: walletDeduplicationId(walletId), keepLastIfActive: true } },
  }));
  await within(queue.addBulk(jobs), ENQUEUE_TIMEOUT_MS, enqueueTimedOut);
}

/** Webhook deliveries: one job per subscription at a time, deduplicated the same way as wallets. */
export const WEBHOOK_QUEUE_NAME = 'webhook-delivery';
export const WEBHOOK_JOB_NAME = 'deliver';

export interface WebhookJobData {
  subscriptionId: number;
}

export type WebhookQueue = Queue<WebhookJobData, void, typeof WEBHOOK_JOB_NAME>;

export function createWebhookQueue(connection: Redis, prefix: string): WebhookQueue {
  return new Queue(WEBHOOK_QUEUE_NAME, {
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
