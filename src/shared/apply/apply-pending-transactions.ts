/** apply: the worker's side: apply each wallet's pending transactions in order, announce finality, sweep strays. */
import type { DatabasePool } from 'slonik';
import { applyInOrder, type Outcome } from '../ledger/ledger.js';
import { centsToDecimal, decimalToCents } from '../ledger/money.js';
import {
  appendOutcomeEvents,
  findPendingEntries,
  markOriginalsVoided,
  recordOutcomes,
} from '../transactions/transaction-repository.js';
import { findLedgerState, updateLedgerState } from '../wallets/wallet-repository.js';

export interface ApplyOptions {
  /** Most transactions decided in one database transaction. */
  batchSize: number;
  /** How often to start over after losing an optimistic-concurrency race before giving up. */
  maxConflictRetries?: number;
  /** Asked between batches: true stops early (the process is shutting down) with work left. */
  shouldStop?: () => boolean;
}

export interface ApplySummary {
  /** Stopped by `shouldStop` while the wallet may still have pending transactions. */
  interrupted: boolean;
  applied: number;
  rejected: number;
  /** Applied reversals: each voided its original. */
  voided: number;
  batches: number;
  conflictRetries: number;
  /** Transactions decided by each committed batch, in order. */
  batchSizes: number[];
  /** Every transaction this run finalized, for metrics and traces. */
  finalized: FinalizedTransaction[];
}

export interface FinalizedTransaction {
  id: string;
  status: Outcome['status'];
  reason: string | null;
  refno: number | null;
  /** W3C traceparent of the request that reserved it (null when that request was not traced). */
  traceContext: string | null;
  /** Seconds from its reservation (`created`, database clock) to the commit that finalized it. */
  latencySeconds: number;
  /** When its batch's database transaction started and committed (epoch ms). */
  batchStartedAt: number;
  committedAt: number;
}

interface AppliedBatch {
  outcomes: Outcome[];
  pending: readonly { id: string; traceContext: string | null; ageSeconds: number }[];
  /** performance.now() when the pending rows were read (their ages are as of then). */
  readAt: number;
}

const NOTHING_APPLIED: AppliedBatch = { outcomes: [], pending: [], readAt: 0 };

/** Another writer changed the wallet (or finalized our rows) after we read it. */
export class VersionConflictError extends Error {}

/**
 * Applies a wallet's pending transactions in reservation order, a bounded batch per database
 * transaction, until none is left: one commit for many transactions on a busy wallet.
 * The wallet row's version guards the write, so concurrent appliers of one wallet cannot both win.
 */
export async function applyPendingTransactions(
  pool: DatabasePool,
  walletId: number,
  options: ApplyOptions,
): Promise<ApplySummary> {
  const summary: ApplySummary = {
    interrupted: false,
    applied: 0,
    rejected: 0,
    voided: 0,
    batches: 0,
    conflictRetries: 0,
    batchSizes: [],
    finalized: [],
  };
  const maxRetries = options.maxConflictRetries ?? 20;
  for (;;) {
    let batch: AppliedBatch;
    const batchStartedAt = Date.now();
    try {
      batch = await applyOneBatch(pool, walletId, options.batchSize);
    } catch (error) {
      if (!(error instanceof VersionConflictError) || summary.conflictRetries >= maxRetries) throw error;
      summary.conflictRetries += 1;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * summary.conflictRetries));
      continue;
    }
    const { outcomes } = batch;
    if (outcomes.length === 0) return summary;
    summary.batches += 1;
    for (const outcome of outcomes) {
      summary[outcome.status] += 1;
      if (outcome.status === 'applied' && outcome.voids) summary.voided += 1;
    }
    recordFinalized(summary, batch, batchStartedAt);
    if (outcomes.length < options.batchSize) return summary;
    if (options.shouldStop?.()) {
      summary.interrupted = true;
      return summary;
    }
  }
}

/** Adds a committed batch's transactions, with their end-to-end latency, to the summary. */
function recordFinalized(summary: ApplySummary, batch: AppliedBatch, batchStartedAt: number): void {
  const committedAt = Date.now();
  const sinceRead = (performance.now() - batch.readAt) / 1000;
  summary.batchSizes.push(batch.outcomes.length);
  batch.outcomes.forEach((outcome, index) => {
    // applyInOrder decides every pending entry, in order: outcome i is entry i.
    const entry = batch.pending[index]!;
    summary.finalized.push({
      id: outcome.id,
      status: outcome.status,
      reason: outcome.status === 'rejected' ? outcome.reason : null,
      refno: outcome.status === 'applied' ? outcome.refno : null,
      traceContext: entry.traceContext,
      latencySeconds: entry.ageSeconds + sinceRead,
      batchStartedAt,
      committedAt,
    });
  });
}

async function applyOneBatch(pool: DatabasePool, walletId: number, batchSize: number): Promise<AppliedBatch> {
  return pool.transaction(async (tx) => {
    const wallet = await findLedgerState(tx, walletId);
    if (!wallet) return NOTHING_APPLIED;
    const pending = await findPendingEntries(tx, walletId, batchSize);
    const readAt = performance.now();
    if (pending.length === 0) return NOTHING_APPLIED;

    const { outcomes, state } = applyInOrder(
      { balance: toCents(wallet.balance), lastRefno: wallet.lastRefno },
      pending.map((entry) => ({
        id: entry.id,
        amount: toCents(entry.amount),
        ...(entry.voids ? { voids: { id: entry.voids, stillApplied: entry.originalStillApplied === true } } : {}),
      })),
    );
    const won = await updateLedgerState(tx, walletId, wallet.version, {
      balance: centsToDecimal(state.balance),
      lastRefno: state.lastRefno,
    });
    if (!won) throw new VersionConflictError(`wallet ${walletId} moved past version ${wallet.version}`);
    const finalized = await recordOutcomes(tx, outcomes);
    if (finalized !== outcomes.length) {
      throw new VersionConflictError(`wallet ${walletId}: ${outcomes.length - finalized} transactions already final`);
    }
    const reversals = outcomes.flatMap((outcome) =>
      outcome.status === 'applied' && outcome.voids ? [{ reversalId: outcome.id, originalId: outcome.voids }] : [],
    );
    if ((await markOriginalsVoided(tx, reversals)) !== reversals.length) {
      throw new VersionConflictError(`wallet ${walletId}: an original was voided meanwhile`);
    }
    await appendOutcomeEvents(
      tx,
      outcomes.map((outcome) => outcome.id),
    );
    return { outcomes, pending, readAt };
  });
}

function toCents(decimal: string) {
  const cents = decimalToCents(decimal);
  if (cents === null) throw new Error(`database returned a non-decimal amount: ${decimal}`);
  return cents;
}
