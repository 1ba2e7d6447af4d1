import type { Job } from 'bullmq';
import type { DatabasePool } from 'slonik';
import {
  VersionConflictError,
  WalletApplyGroups,
  applyPendingTransactions,
} from '../shared/apply/apply-pending-transactions.js';
import { announceFinalized } from '../shared/apply/finalization-notices.js';
import type { Logger } from '../shared/infra/logger.js';
import { enqueueApply, enqueueApplyMany, type ApplyJobData, type ApplyQueue } from '../shared/infra/queue.js';
import type { RedisClient } from '../shared/infra/redis.js';
import { recordApplied, recordApplyJob, recordVoided } from '../shared/telemetry/metrics.js';
import { SpanKind, inSpan, traceFinalized, type Span } from '../shared/telemetry/tracing.js';

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
  /** The shards this worker serves (QUEUE_SHARDS_SERVED): it applies credit legs of those only. */
  servedShards: readonly number[];
}

/**
 * The BullMQ processor: apply the wallet's pending transactions, then tell waiting clients.
 * Traced as `wallet.apply` (child of the enqueuing request, linked to every transaction's request)
 * and counted in the apply metrics; see docs/operations.md.
 */
export function createApplyProcessor(deps: ApplyProcessorDeps) {
  // The wallets of the jobs this process holds at one moment share their database transactions.
  const groups = new WalletApplyGroups(deps.pool, deps.batchSize);
  const served = new Set(deps.servedShards);

  /** Wakes the wallets' own jobs. Their work is committed: if Redis fails here, the sweeper enqueues them later. */
  const enqueueLater = async (walletIds: readonly number[]) => {
    if (walletIds.length === 0) return;
    await enqueueApplyMany(deps.queue, [...new Set(walletIds)]).catch((error: unknown) => {
      deps.logger.warn({ err: error, walletIds: walletIds.length }, 'could not enqueue wallets; the sweeper will');
    });
  };

  /**
   * Applies the credit legs a job's debits reserved, each destination in this process' apply groups
   * (one shared database transaction for all of them) rather than through a job of its own: a job
   * per credit cost ~40 Redis commands and a BullMQ round per transfer. The queue stays the way a
   * wallet is woken: a destination another applier holds (the lost race of its version guard), on
   * a shard this worker does not serve, left with more to do, or debiting transfers of its own,
   * gets its job as before.
   */
  const applyCredits = async (credited: readonly number[], span: Span): Promise<void> => {
    const destinations = [...new Set(credited)];
    const here = deps.isClosing() ? [] : destinations.filter((walletId) => served.has(deps.queue.shardOf(walletId)));
    const later = destinations.filter((walletId) => !here.includes(walletId));
    await Promise.all(
      here.map((walletId) =>
        // A child of the debit's apply span, one per destination.
        inSpan(
          'wallet.apply',
          { attributes: { 'wallet.id': walletId, 'wallet.apply.transfer_credits': true } },
          (child) =>
            applyPendingTransactions(deps.pool, walletId, {
              batchSize: deps.batchSize,
              shouldStop: deps.isClosing,
              applyBatch: groups.applyBatch,
              maxConflictRetries: 0,
            }).then(
              async (summary) => {
                if (summary.interrupted) later.push(walletId);
                later.push(...summary.credited);
                recordApplied(summary);
                if (summary.voided > 0) recordVoided(summary.voided);
                traceFinalized(child, walletId, summary.finalized);
                if (summary.applied + summary.rejected + summary.holdsDecided > 0) {
                  await announceFinalized(deps.redis, deps.queuePrefix, walletId);
                }
              },
              (error: unknown) => {
                if (!(error instanceof VersionConflictError)) {
                  deps.logger.warn({ err: error, walletId }, 'could not apply a transfer credit here; enqueued');
                }
                later.push(walletId);
              },
            ),
        ),
      ),
    );
    span.setAttribute('wallet.apply.credits_applied_here', here.length);
    await enqueueLater(later);
  };

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
          // The credit legs of the transfers this job debited: applied here (their rows and markers are committed).
          if (summary.credited.length > 0) await applyCredits(summary.credited, span);
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
