import type { DatabasePool } from 'slonik';
import { applyInOrder, type Outcome } from './ledger.js';
import { centsToDecimal, decimalToCents } from './money.js';
import {
  appendOutcomeEvents,
  findPendingEntries,
  markOriginalsVoided,
  recordOutcomes,
} from './transaction-repository.js';
import { findLedgerState, updateLedgerState } from './wallet-repository.js';

export interface ApplyOptions {
  /** Most transactions decided in one database transaction. */
  batchSize: number;
  /** How often to start over after losing an optimistic-concurrency race before giving up. */
  maxConflictRetries?: number;
}

export interface ApplySummary {
  applied: number;
  rejected: number;
  batches: number;
  conflictRetries: number;
}

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
  const summary: ApplySummary = { applied: 0, rejected: 0, batches: 0, conflictRetries: 0 };
  const maxRetries = options.maxConflictRetries ?? 20;
  for (;;) {
    let outcomes: Outcome[];
    try {
      outcomes = await applyOneBatch(pool, walletId, options.batchSize);
    } catch (error) {
      if (!(error instanceof VersionConflictError) || summary.conflictRetries >= maxRetries) throw error;
      summary.conflictRetries += 1;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * summary.conflictRetries));
      continue;
    }
    if (outcomes.length === 0) return summary;
    summary.batches += 1;
    for (const outcome of outcomes) summary[outcome.status] += 1;
    if (outcomes.length < options.batchSize) return summary;
  }
}

async function applyOneBatch(pool: DatabasePool, walletId: number, batchSize: number): Promise<Outcome[]> {
  return pool.transaction(async (tx) => {
    const wallet = await findLedgerState(tx, walletId);
    if (!wallet) return [];
    const pending = await findPendingEntries(tx, walletId, batchSize);
    if (pending.length === 0) return [];

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
    return outcomes;
  });
}

function toCents(decimal: string) {
  const cents = decimalToCents(decimal);
  if (cents === null) throw new Error(`database returned a non-decimal amount: ${decimal}`);
  return cents;
}
