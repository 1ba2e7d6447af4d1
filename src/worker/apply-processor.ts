import type { Job } from 'bullmq';
import type { DatabasePool } from 'slonik';
import { WalletApplyGroups, applyPendingTransactions } from '../shared/apply/apply-pending-transactions.js';
import { announceFinalized } from '../shared/apply/finalization-notices.js';
import type { Logger } from '../shared/infra/logger.js';
import { enqueueApply, enqueueApplyMany, type ApplyJobData, type ApplyQueue } from '../shared/infra/queue.js';
import type { RedisClient } from '../shared/infra/redis.js';
import { recordApplied, recordApplyJob, recordVoided } from '../shared/telemetry/metrics.js';
import { SpanKind, inSpan, traceFinalized } from '../shared/telemetry/tracing.js';

export interface ApplyProcessorDeps {
  pool: DatabasePool;
  redis: RedisClient;
  queuePrefix: string;
  batchSize: number;
  logger: Logger;
  /** Where an interrupted job hands the rest of the wallet on (to run after it, on any worker). */
  queue: ApplyQueue;
  /** True once the worker is shutting down: a busy wallet's job stops between batches. */
  isClosing: () => boolean;
}

/**
 * The BullMQ processor: apply the wallet's pending transactions, then tell waiting clients.
 * Traced as `wallet.apply` (child of the enqueuing request, linked to every transaction's request)
 * and counted in the apply metrics; see docs/operations.md.
 */
export function createApplyProcessor(deps: ApplyProcessorDeps) {
  // The wallets of the jobs this process holds at one moment share their database transactions.
  const groups = new WalletApplyGroups(deps.pool, deps.batchSize);
  return async (job: Job<ApplyJobData>): Promise<void> => {
    const { walletId, traceparent } = job.data;
    const started = performance.now();
    const attributes = { 'wallet.id': walletId, 'messaging.message.id': job.id ?? '' };
    try {
      await inSpan(
        'wallet.apply',
        { kind: SpanKind.CONSUMER, attributes, parent: traceparent ?? null },
        async (span) => {
          const summary = await applyPendingTransactions(deps.pool, walletId, {
            batchSize: deps.batchSize,
            shouldStop: deps.isClosing,
            applyBatch: groups.applyBatch,
          });
          // Still active, so the deduplicated add is kept and runs after this job, on any worker.
          if (summary.interrupted) await enqueueApply(deps.queue, walletId);
          // The credit legs of the transfers this job debited, through each destination's own
          // (per-wallet) enqueue. Their rows and markers are committed: if Redis fails here, the
          // sweeper enqueues them later.
          if (summary.credited.length > 0) {
            await enqueueApplyMany(deps.queue, [...new Set(summary.credited)]).catch((error: unknown) => {
              deps.logger.warn({ err: error, walletId }, 'could not enqueue transfer credits; the sweeper will');
            });
          }
          recordApplied(summary);
          if (summary.voided > 0) recordVoided(summary.voided);
          traceFinalized(span, walletId, summary.finalized);
          span.setAttributes({
            'wallet.transactions.applied': summary.applied,
            'wallet.transactions.rejected': summary.rejected,
            'wallet.apply.batches': summary.batches,
            'wallet.apply.conflict_retries': summary.conflictRetries,
          });
          if (summary.applied + summary.rejected + summary.holdsDecided > 0) {
            await announceFinalized(deps.redis, deps.queuePrefix, walletId);
          }
          const { applied, rejected, batches, conflictRetries } = summary;
          deps.logger.debug(
            { walletId, jobId: job.id, applied, rejected, batches, conflictRetries },
            'applied pending transactions',
          );
        },
      );
    } catch (error) {
      recordApplyJob('failed', (performance.now() - started) / 1000);
      throw error;
    }
    recordApplyJob('completed', (performance.now() - started) / 1000);
  };
}
