import type { Job } from 'bullmq';
import type { DatabasePool } from 'slonik';
import {
  VersionConflictError,
  WalletApplyGroups,
  applyPendingTransactions,
  type ApplySummary,
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

  /** Metrics, traces and the notices to waiting clients of one wallet's apply run. */
  const report = async (walletId: number, summary: ApplySummary, span: Span) => {
    recordApplied(summary);
    if (summary.voided > 0) recordVoided(summary.voided);
    traceFinalized(span, walletId, summary.finalized);
    if (summary.failure !== undefined) {
      // The run stopped interrupted: its caller enqueues the wallet again.
      deps.logger.warn({ err: summary.failure, walletId }, 'a batch failed after others committed; enqueued again');
    }
    if (summary.applied + summary.rejected + summary.holdsDecided > 0) {
      // Best effort: a waiting client also rechecks the database every second.
      await announceFinalized(deps.redis, deps.queuePrefix, walletId).catch((error: unknown) => {
        deps.logger.warn({ err: error, walletId }, 'could not announce finalized transactions');
      });
    }
  };

  /**
   * Applies the credit legs a job's debits reserved, each destination in this process' apply groups
   * (one shared database transaction for all of them) rather than through a job of its own: a job
   * per credit cost ~40 Redis commands and a BullMQ round per transfer. The queue stays the way a
   * wallet is woken: a destination another applier holds (its version guard's lost race), on a
   * shard this worker does not serve, left with more to do, and the destinations of its own
   * transfer debits (applied with it) get their jobs as before; so do all of them while the worker
   * shuts down. Never throws: whatever is not applied here is enqueued, and if even that fails,
   * the committed markers leave it to the sweeper.
   */
  const applyCredits = async (credited: readonly number[], span: Span): Promise<void> => {
    const destinations = [...new Set(credited)];
    const here = deps.isClosing() ? [] : destinations.filter((walletId) => served.has(deps.queue.shardOf(walletId)));
    const later = destinations.filter((walletId) => !here.includes(walletId));
    let appliedHere = 0;
    try {
      await Promise.all(
        here.map((walletId) =>
          // A child of the debit's apply span, one per destination.
          inSpan(
            'wallet.apply',
            { attributes: { 'wallet.id': walletId, 'wallet.apply.transfer_credits': true } },
            async (child) => {
              try {
                const summary = await applyPendingTransactions(deps.pool, walletId, {
                  batchSize: deps.batchSize,
                  shouldStop: deps.isClosing,
                  applyBatch: groups.applyBatch,
                  maxConflictRetries: 0,
                });
                if (summary.interrupted) later.push(walletId);
                later.push(...summary.credited);
                appliedHere += 1;
                await report(walletId, summary, child);
              } catch (error) {
                if (!(error instanceof VersionConflictError)) {
                  deps.logger.warn({ err: error, walletId }, 'could not apply a transfer credit here; enqueued');
                }
                later.push(walletId);
              }
            },
          ),
        ),
      );
    } finally {
      span.setAttribute('wallet.apply.credits_applied_here', appliedHere);
      await enqueueLater(later);
    }
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
          await report(walletId, summary, span);
          span.setAttributes({
            'wallet.transactions.applied': summary.applied,
            'wallet.transactions.rejected': summary.rejected,
            'wallet.apply.batches': summary.batches,
            'wallet.apply.conflict_retries': summary.conflictRetries,
          });
          // The credit legs of the transfers this job debited: applied here (their rows and markers are committed).
          if (summary.credited.length > 0) await applyCredits(summary.credited, span);
          // Still active, so the deduplicated add is kept and runs after this job, on any worker.
          if (summary.interrupted) await enqueueApply(deps.queue, walletId);
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
