import type { DatabasePool } from 'slonik';
import { describe, expect, it } from 'vitest';
import {
  VersionConflictError,
  applyPendingTransactions,
  type ApplyBatch,
  type WalletBatchResult,
} from '../../src/shared/apply/apply-pending-transactions.js';

/** Never touched: every batch goes through the given applyBatch, and no race is retried alone. */
const pool = {} as DatabasePool;

/** A committed batch of `size` applied deposits, one of them a transfer debit's credit elsewhere. */
function batchOf(size: number, credited: number[]): WalletBatchResult {
  const ids = Array.from({ length: size }, (_, index) => `tx-${index}`);
  return {
    won: true,
    batch: {
      outcomes: ids.map((id, index) => ({
        id,
        status: 'applied' as const,
        refno: index + 1,
        oldBalance: BigInt(index * 100),
        newBalance: BigInt((index + 1) * 100),
      })),
      pending: ids.map((id) => ({ id, traceContext: null, ageSeconds: 0 })),
      credited,
      readAt: performance.now(),
    },
  };
}

/** Answers each call with the next result. */
const scripted =
  (...results: WalletBatchResult[]): ApplyBatch =>
  () =>
    Promise.resolve(results.shift() ?? { won: false });

describe('applyPendingTransactions when it loses a race', () => {
  it('When a race is lost after a batch committed, then the committed batch stays reported (its credits, its count) and the run ends interrupted, not with an error', async () => {
    const summary = await applyPendingTransactions(pool, 7, {
      batchSize: 2,
      maxConflictRetries: 0,
      applyBatch: scripted(batchOf(2, [40]), { won: false }),
    });
    expect(summary).toMatchObject({ interrupted: true, applied: 2, batches: 1, credited: [40] });
    expect(summary.finalized.map((transaction) => transaction.id)).toEqual(['tx-0', 'tx-1']);
  });

  it('When the first batch already loses, then it is an error the caller retries (nothing committed to report)', async () => {
    await expect(
      applyPendingTransactions(pool, 7, { batchSize: 2, maxConflictRetries: 0, applyBatch: scripted({ won: false }) }),
    ).rejects.toBeInstanceOf(VersionConflictError);
  });
});

describe('applyPendingTransactions when a later batch fails', () => {
  it('When a batch fails after one committed, then the committed batch stays reported (its credits) and the run ends interrupted with the failure, not thrown', async () => {
    const failing = new Error('connection terminated');
    const results: (() => Promise<WalletBatchResult>)[] = [
      () => Promise.resolve(batchOf(2, [40])),
      () => Promise.reject(failing),
    ];
    const summary = await applyPendingTransactions(pool, 7, {
      batchSize: 2,
      applyBatch: () => results.shift()!(),
    });
    expect(summary).toMatchObject({ interrupted: true, applied: 2, batches: 1, credited: [40], failure: failing });
  });

  it('When the first batch fails, then the error is thrown (nothing committed to report)', async () => {
    const failing = new Error('connection terminated');
    await expect(
      applyPendingTransactions(pool, 7, { batchSize: 2, applyBatch: () => Promise.reject(failing) }),
    ).rejects.toBe(failing);
  });
});
