import type { CommonQueryMethods } from 'slonik';
import { enqueueApply, type ApplyQueue } from '../infra/queue.js';
import type { Redis } from '../infra/redis.js';
import { findWalletsWithStalePending } from '../transactions/transaction-repository.js';
import { releaseStuckWallet } from './recover-stuck-wallets.js';

const WALLETS_PER_SWEEP = 1000;

/** Where the next sweep of one process resumes: wallets are visited round-robin by id. */
export interface SweepCursor {
  afterWalletId: number;
}

export interface SweepResult {
  /** Wallets enqueued (most are no-ops: their job is already queued). */
  enqueued: number;
  /** Wallets whose deduplication key named a job that could not move any more. */
  released: number;
}

/**
 * The safety net for a pending transaction whose job never ran: the API died between the
 * reservation and the enqueue, a job failed for good, or Redis lost part of the queue's keys.
 * Each stale wallet first has a stuck deduplication key released (see recover-stuck-wallets.ts),
 * else the enqueue would be dropped; enqueueing is deduplicated per wallet, so sweeping a wallet
 * whose job is already queued costs nothing.
 */
export async function sweepStalePending(
  deps: { db: CommonQueryMethods; queue: ApplyQueue; redis: Redis },
  staleAfterMs: number,
  cursor: SweepCursor = { afterWalletId: 0 },
): Promise<SweepResult> {
  const walletIds = await findWalletsWithStalePending(deps.db, staleAfterMs, WALLETS_PER_SWEEP, cursor.afterWalletId);
  let released = 0;
  for (const walletId of walletIds) {
    if (await releaseStuckWallet(deps.redis, deps.queue, walletId)) released += 1;
    await enqueueApply(deps.queue, walletId);
    // Advanced per wallet, so a pass that fails halfway resumes after the last wallet it served.
    cursor.afterWalletId = walletId;
  }
  return { enqueued: walletIds.length, released };
}
