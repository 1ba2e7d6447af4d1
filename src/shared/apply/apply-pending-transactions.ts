/** apply: the worker's side: apply each wallet's pending transactions in order, announce finality, sweep strays. */
import type { DatabasePool } from 'slonik';
import { decide, decideHold, type HoldOutcome, type Outcome, type WalletLedgerState } from '../ledger/ledger.js';
import { maxBalance, unitsToDecimal, decimalToUnits } from '../ledger/money.js';
import { GroupCommitter, type GroupCommitOptions } from '../infra/group-commit.js';
import type { TransferLeg } from '../telemetry/metrics.js';
import {
  LEDGER_ASSERTION,
  readPendingWork,
  writeDecisions,
  type PendingMarker,
  type WalletDecision,
} from './apply-repository.js';

export interface ApplyOptions {
  /** Most transactions decided in one database transaction. */
  batchSize: number;
  /** How often to start over after losing an optimistic-concurrency race before giving up. */
  maxConflictRetries?: number;
  /** Asked between batches: true stops early (the process is shutting down) with work left. */
  shouldStop?: () => boolean;
}

export interface ApplySummary {
  /**
   * Stopped with work maybe left: by `shouldStop`, or by losing `maxConflictRetries` races after
   * some batches committed. The wallet must be enqueued again.
   */
  interrupted: boolean;
  /**
   * Why a run that had committed batches stopped with an error (a later batch failed): the run
   * is `interrupted` rather than thrown, so what committed (its credits, its notices) is still
   * reported. An error before any batch committed is thrown.
   */
  failure?: unknown;
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
  /** Holds decided (active or rejected) or taken out of `held`. */
  holdsDecided: number;
  /** Of those, the holds decided active, and rejected. */
  holdsActivated: number;
  holdsRejected: number;
  /** Wallets that got the credit leg of a transfer this run debited: to be enqueued. */
  credited: number[];
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
  /** Which leg of a transfer it is (or which leg's reversal), if it is one. */
  transferLeg: TransferLeg | null;
  /** When its batch's database transaction started and committed (epoch ms). */
  batchStartedAt: number;
  committedAt: number;
}

interface AppliedBatch {
  outcomes: Outcome[];
  /** Holds this batch decided or took out of `held` (they count toward the batch size). */
  holdsDecided?: number;
  /** Of those, the ones decided active, and rejected. */
  holdsActivated?: number;
  holdsRejected?: number;
  /** Destination wallets of the credit legs this batch reserved. */
  credited?: readonly number[];
  pending: readonly {
    id: string;
    traceContext: string | null;
    ageSeconds: number;
    transferId?: string | null;
    amount?: string;
    voids?: string | null;
  }[];
  /** performance.now() when the pending rows were read (their ages are as of then). */
  readAt: number;
}

/** What one database transaction did for one wallet: a batch, or lost the optimistic race. */
export type WalletBatchResult = { won: true; batch: AppliedBatch } | { won: false };

const NOTHING_APPLIED: WalletBatchResult = { won: true, batch: { outcomes: [], pending: [], readAt: 0 } };

/** Another writer changed the wallet after we read it, too often in a row. */
export class VersionConflictError extends Error {}

/** Applies one batch of a wallet's pending transactions; many wallets' calls may share a transaction. */
export type ApplyBatch = (walletId: number) => Promise<WalletBatchResult>;

/**
 * Applies a wallet's pending transactions in reservation order, a bounded batch per database
 * transaction, until none is left: one commit for many transactions on a busy wallet.
 * The wallet row's version guards the write, so concurrent appliers of one wallet cannot both win;
 * a lost race is retried with this wallet alone. `applyBatch` lets a worker share each database
 * transaction with other wallets (see WalletApplyGroups); by default the wallet is applied alone.
 */
export async function applyPendingTransactions(
  pool: DatabasePool,
  walletId: number,
  options: ApplyOptions & { applyBatch?: ApplyBatch },
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
    credited: [],
    holdsDecided: 0,
    holdsActivated: 0,
    holdsRejected: 0,
  };
  const maxRetries = options.maxConflictRetries ?? 20;
  const alone: ApplyBatch = async (id) => (await applyWalletBatches(pool, [id], options.batchSize)).get(id)!;
  let applyBatch = options.applyBatch ?? alone;
  for (;;) {
    const batchStartedAt = Date.now();
    const result = await applyBatch(walletId).catch((error: unknown) => {
      if (error instanceof VersionConflictError) return { won: false } as const;
      if (summary.batches > 0) return { failure: error } as const;
      throw error;
    });
    if ('failure' in result) {
      summary.interrupted = true;
      summary.failure = result.failure;
      return summary;
    }
    if (!result.won) {
      if (summary.conflictRetries >= maxRetries) {
        // What committed stays reported (its credits to enqueue, its notices): the rest is left
        // for the wallet's next job, as when stopping early.
        if (summary.batches > 0) {
          summary.interrupted = true;
          return summary;
        }
        throw new VersionConflictError(`wallet ${walletId}: lost ${maxRetries} optimistic races in a row`);
      }
      summary.conflictRetries += 1;
      applyBatch = alone;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * summary.conflictRetries));
      continue;
    }
    const { batch } = result;
    const { outcomes } = batch;
    const decidedCount = outcomes.length + (batch.holdsDecided ?? 0);
    if (decidedCount === 0) return summary;
    summary.batches += 1;
    summary.holdsDecided += batch.holdsDecided ?? 0;
    summary.holdsActivated += batch.holdsActivated ?? 0;
    summary.holdsRejected += batch.holdsRejected ?? 0;
    for (const outcome of outcomes) {
      summary[outcome.status] += 1;
      if (outcome.status === 'applied' && outcome.voids) summary.voided += 1;
    }
    recordFinalized(summary, batch, batchStartedAt);
    if (batch.credited) summary.credited.push(...batch.credited);
    if (decidedCount < options.batchSize) return summary;
    if (options.shouldStop?.()) {
      summary.interrupted = true;
      return summary;
    }
  }
}

/** How a worker groups wallets into shared database transactions; tuned on the bench (docs/benchmarks.md). */
export const APPLY_GROUPS = { maxSize: 64, maxDelayMs: 3, maxInFlight: 1, timeoutMs: 30_000 } as const;

/**
 * Lets the wallets a worker process holds at one moment share their database transactions: each
 * group is applied by the same fixed set of statements whatever its size (applyWalletBatches).
 */
export class WalletApplyGroups {
  private readonly groups: GroupCommitter<number, WalletBatchResult>;

  constructor(pool: DatabasePool, batchSize: number, options: GroupCommitOptions = APPLY_GROUPS) {
    this.groups = new GroupCommitter(async (walletIds) => {
      const results = await applyWalletBatches(pool, walletIds, batchSize);
      return walletIds.map((walletId, index) => ({
        ok: true,
        // A wallet twice in one group (its own job and a transfer credit applied here, say) retries alone.
        value: walletIds.indexOf(walletId) === index ? results.get(walletId)! : { won: false },
      }));
    }, options);
  }

  readonly applyBatch: ApplyBatch = (walletId) => this.groups.submit(walletId);
}

/** A leg is a debit when it takes money; a reversal takes back what its leg moved. */
function transferLegOf(amount: string, voids: string | null): TransferLeg {
  const takes = amount.startsWith('-');
  if (voids === null) return takes ? 'debit' : 'credit';
  return takes ? 'credit-reversal' : 'debit-reversal';
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
      transferLeg: entry.transferId ? transferLegOf(entry.amount ?? '', entry.voids ?? null) : null,
      batchStartedAt,
      committedAt,
    });
  });
}

/**
 * One round of a group of wallets in two statements whatever the group's size, and no explicit
 * transaction: read the wallets' states and their oldest pending transactions (one snapshot),
 * decide each wallet's batch with the ledger rules, then write every decision in one autocommitted
 * statement that is guarded by each wallet's version. A wallet whose version moved meanwhile (or
 * that another applier holds) lost: nothing of its batch is written, and it answers `{ won: false }`.
 */
export async function applyWalletBatches(
  pool: DatabasePool,
  walletIds: readonly number[],
  batchSize: number,
): Promise<Map<number, WalletBatchResult>> {
  const ids = [...new Set(walletIds)];
  const results = new Map<number, WalletBatchResult>(ids.map((id) => [id, NOTHING_APPLIED]));
  const work = await readPendingWork(pool, ids, batchSize);
  const readAt = performance.now();

  const staleMarkers: PendingMarker[] = [];
  const decided = work.flatMap(({ wallet, markers, pending: pendingRead, holds }) => {
    // Markers whose transactions were all decided already (none visible as pending): forget them.
    if (pendingRead.length === 0 && holds.length === 0) {
      staleMarkers.push(...markers);
      return [];
    }
    // Transactions and holds share one seq order: decide the oldest `batchSize` of both, in order.
    const merged = [
      ...pendingRead.map((entry) => ({ seq: entry.seq, transaction: entry, hold: null })),
      ...holds.map((entry) => ({ seq: entry.seq, transaction: null, hold: entry })),
    ]
      .sort((a, b) => a.seq - b.seq)
      .slice(0, batchSize);
    const pending = merged.flatMap((item) => (item.transaction ? [item.transaction] : []));
    let state: WalletLedgerState = {
      balance: toUnits(wallet.balance),
      lastRefno: wallet.lastRefno,
      maxBalance: maxBalance(wallet.minorUnits),
      held: toUnits(wallet.held),
    };
    const outcomes: Outcome[] = [];
    const holdOutcomes: HoldOutcome[] = [];
    for (const item of merged) {
      if (item.hold) {
        const decision = decideHold(state, {
          id: item.hold.id,
          kind: item.hold.status === 'pending' ? 'hold' : 'hold_release',
          amount: toUnits(item.hold.amount),
        });
        holdOutcomes.push(decision.outcome);
        state = decision.state;
        continue;
      }
      const entry = item.transaction;
      const decision = decide(state, {
        id: entry.id,
        amount: toUnits(entry.amount),
        ...(entry.voids ? { voids: { id: entry.voids, stillApplied: entry.originalStillApplied === true } } : {}),
        ...(entry.transferId !== null && !entry.amount.startsWith('-') ? { transferCredit: true } : {}),
        ...(entry.holdAmount !== null ? { capturesHold: toUnits(entry.holdAmount) } : {}),
      });
      outcomes.push(decision.outcome);
      state = decision.state;
    }
    // Every visible pending row up to the last one decided is decided now: a marker whose range
    // ends there is done. A batch shorter than the limit decided all of them (the transactions
    // read stop at the limit too, so a full merged batch ends at or before their last one).
    const lastDecidedSeq = merged.length < batchSize ? Number.POSITIVE_INFINITY : merged.at(-1)!.seq;
    const decision: WalletDecision = {
      walletId: wallet.id,
      expectedVersion: wallet.version,
      balance: unitsToDecimal(state.balance),
      lastRefno: state.lastRefno,
      held: unitsToDecimal(state.held ?? 0n),
      holdOutcomes,
      outcomes,
      seqs: pending.map((entry) => entry.seq),
      coveredMarkers: markers.filter((marker) => marker.lastSeq <= lastDecidedSeq).map((marker) => marker.firstSeq),
      legsOrHolds:
        holdOutcomes.length > 0 || pending.some((entry) => entry.transferId !== null || entry.holdAmount !== null),
    };
    return [{ decision, pending }];
  });
  if (decided.length === 0 && staleMarkers.length === 0) return results;

  const { won, credited } = await writeDecisions(
    pool,
    decided.map(({ decision }) => decision),
    staleMarkers,
  ).catch((error: unknown) => {
    // Rolled back whole: every wallet of the group starts over alone.
    if (error instanceof Error && error.message.includes(LEDGER_ASSERTION))
      throw new VersionConflictError(error.message);
    throw error;
  });
  for (const { decision, pending } of decided) {
    results.set(
      decision.walletId,
      won.has(decision.walletId)
        ? {
            won: true,
            batch: {
              outcomes: [...decision.outcomes],
              holdsDecided: decision.holdOutcomes?.length ?? 0,
              holdsActivated: decision.holdOutcomes?.filter((outcome) => outcome.status === 'active').length ?? 0,
              holdsRejected: decision.holdOutcomes?.filter((outcome) => outcome.status === 'rejected').length ?? 0,
              pending,
              readAt,
              credited: credited.filter(({ from }) => from === decision.walletId).map(({ to }) => to),
            },
          }
        : { won: false },
    );
  }
  return results;
}

function toUnits(decimal: string) {
  const units = decimalToUnits(decimal);
  if (units === null) throw new Error(`database returned a non-decimal amount: ${decimal}`);
  return units;
}
