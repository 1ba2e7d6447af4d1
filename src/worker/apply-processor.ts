import type { Job } from 'bullmq';
import type { DatabasePool } from 'slonik';
import { applyPendingTransactions, type ApplySummary } from '../shared/apply-pending-transactions.js';
import { announceFinalized } from '../shared/finalization-notices.js';
import type { Logger } from '../shared/logger.js';
import type { ApplyJobData } from '../shared/queue.js';
import type { Redis } from '../shared/redis.js';

export interface ApplyProcessorDeps {
  pool: DatabasePool;
  redis: Redis;
  queuePrefix: string;
  batchSize: number;
  logger: Logger;
}

/** The BullMQ processor: apply the wallet's pending transactions, then tell waiting clients. */
export function createApplyProcessor(deps: ApplyProcessorDeps) {
  return async (job: Job<ApplyJobData>): Promise<ApplySummary> => {
    const { walletId } = job.data;
    const summary = await applyPendingTransactions(deps.pool, walletId, { batchSize: deps.batchSize });
    if (summary.applied + summary.rejected > 0) {
      await announceFinalized(deps.redis, deps.queuePrefix, walletId);
    }
    deps.logger.debug({ walletId, jobId: job.id, ...summary }, 'applied pending transactions');
    return summary;
  };
}
