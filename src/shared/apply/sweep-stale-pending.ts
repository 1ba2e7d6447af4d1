import type { DatabasePool } from 'slonik';
import { enqueueApply, type ApplyQueue } from '../infra/queue.js';
import type { RedisClient } from '../infra/redis.js';
import { findWalletsWithStalePending } from '../transactions/transaction-repository.js';
import { releaseStuckWallet } from './recover-stuck-wallets.js';
import { findWalletsWithStaleHoldWork } from '../holds/hold-repository.js';
import { expireDueHolds } from '../holds/holds.js';
import { advancePendingFloor, ensurePendingMarkers, vacuumPendingMarkers } from './pending-markers.js';

const WALLETS_PER_SWEEP = 1000;

/** Where the next sweep of one process resumes: wallets are visited round-robin by id. */
export interface SweepCursor {
  afterWalletId: number;
  /** Passes so far, for the occasional marker vacuum. */
  passes?: number;
}

/** Every this many passes, a sweep vacuums the markers' table. */
const VACUUM_EVERY_PASSES = 12;

export interface SweepResult {
  /** Wallets enqueued (most are no-ops: their job is already queued). */
  enqueued: number;
  /** Wallets whose deduplication key named a job that could not move any more. */
  released: number;
  /** Pending markers written back after Postgres had lost them (a crash empties their unlogged table). */
  markersRestored: number | null;
  /** Active holds past their expiry that this pass expired (each exactly once: a conditional update). */
  holdsExpired: number;
}

/**
 * The safety net for a pending transaction whose job never ran: the API died between the
 * reservation and the enqueue, a job failed for good, or Redis lost part of the queue's keys.
 * Each stale wallet first has a stuck deduplication key released (see recover-stuck-wallets.ts),
 * else the enqueue would be dropped; enqueueing is deduplicated per wallet, so sweeping a wallet
 * whose job is already queued costs nothing.
 */
export async function sweepStalePending(
  deps: { db: DatabasePool; queue: ApplyQueue; redis: RedisClient },
  staleAfterMs: number,
  cursor: SweepCursor = { afterWalletId: 0 },
): Promise<SweepResult> {
  // Markers first: without them the stale transactions cannot be seen (nor applied).
  const markers = await ensurePendingMarkers(deps.db);
  await advancePendingFloor(deps.db);
  cursor.passes = (cursor.passes ?? 0) + 1;
  if (cursor.passes % VACUUM_EVERY_PASSES === 0) await vacuumPendingMarkers(deps.db);
  // Rebuilt markers are new: their transactions count as stale at once.
  const olderThanMs = markers.rebuilt ? -1 : staleAfterMs;
  // Holds past their expiry: expired once each, their wallets enqueued to take them out of held.
  const holdsExpired = await expireDueHolds(deps, WALLETS_PER_SWEEP);
  const pendingWallets = await findWalletsWithStalePending(
    deps.db,
    olderThanMs,
    WALLETS_PER_SWEEP,
    cursor.afterWalletId,
  );
  // Holds have no markers: a wallet whose hold work (a hold to decide, a release to settle) waits
  // longer than the threshold is enqueued too.
  const holdWallets = await findWalletsWithStaleHoldWork(deps.db, staleAfterMs, WALLETS_PER_SWEEP);
  const walletIds = [...pendingWallets, ...holdWallets.filter((id) => !pendingWallets.includes(id))];
  let released = 0;
  for (const walletId of walletIds) {
    if (await releaseStuckWallet(deps.redis, deps.queue, walletId)) released += 1;
    await enqueueApply(deps.queue, walletId);
    // Advanced per wallet, so a pass that fails halfway resumes after the last wallet it served.
    if (pendingWallets.includes(walletId)) cursor.afterWalletId = walletId;
  }
  return {
    enqueued: walletIds.length,
    released,
    markersRestored: markers.rebuilt ? markers.restored : null,
    holdsExpired,
  };
}
