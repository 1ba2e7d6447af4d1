import type { CommonQueryMethods } from 'slonik';
import { enqueueApply, type ApplyQueue } from '../infra/queue.js';
import { findWalletsWithStalePending } from '../transactions/transaction-repository.js';

const WALLETS_PER_SWEEP = 1000;

/**
 * The safety net for a pending transaction whose job never ran: the API died between the
 * reservation and the enqueue, or a job failed for good. Enqueueing is deduplicated per wallet,
 * so sweeping a wallet whose job is already queued costs nothing. Returns the wallets enqueued.
 */
export async function sweepStalePending(
  deps: { db: CommonQueryMethods; queue: ApplyQueue },
  staleAfterMs: number,
): Promise<number> {
  const walletIds = await findWalletsWithStalePending(deps.db, staleAfterMs, WALLETS_PER_SWEEP);
  for (const walletId of walletIds) await enqueueApply(deps.queue, walletId);
  return walletIds.length;
}
