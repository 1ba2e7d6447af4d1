/** transactions: the API's side: reserve, void, look up and page through transactions; the transactions table. */
import type { CommonQueryMethods } from 'slonik';
import { DuplicateFingerprintError, FingerprintReusedError } from './conflicts.js';
import { isReplayOf } from './fingerprint-reuse.js';
import { NotFoundError } from '../domain/errors.js';
import { centsToDecimal, type Cents } from '../ledger/money.js';
import { enqueueApply, type ApplyQueue } from '../infra/queue.js';
import {
  findLatestAppliedTransaction,
  findTransactionByFingerprint,
  findWalletTransaction,
  insertPendingTransaction,
  type NewTransaction,
  type TransactionRow,
} from './transaction-repository.js';
import { recordReserved } from '../telemetry/metrics.js';
import { currentTraceparent, inSpan } from '../telemetry/tracing.js';

export interface TransactionRequest {
  amount: Cents;
  fingerprint: string;
  labels: Record<string, string>;
  description: string | null;
}

export interface Reservation {
  transaction: TransactionRow;
  /** False when the queue could not be reached; the sweeper enqueues the wallet later. */
  enqueued: boolean;
}

/**
 * Reserves the fingerprint with a pending row, then asks a worker to apply the wallet's pending
 * transactions. The row in Postgres is the promise to the client; the job is only a nudge. If the
 * enqueue fails, or the process dies between the two, the sweeper enqueues the wallet later.
 * Traced as `wallet.reserve`; the row keeps that span's context for the worker (docs/operations.md).
 */
export function reserveTransaction(
  deps: { db: CommonQueryMethods; queue: ApplyQueue },
  walletId: number,
  request: TransactionRequest,
): Promise<Reservation> {
  return inSpan('wallet.reserve', { attributes: { 'wallet.id': walletId } }, async (span) => {
    const reservation = await reservePending(deps, walletId, request);
    span.setAttribute('wallet.transaction.id', reservation.transaction.id);
    recordReserved();
    return reservation;
  });
}

async function reservePending(
  deps: { db: CommonQueryMethods; queue: ApplyQueue },
  walletId: number,
  request: TransactionRequest,
): Promise<Reservation> {
  const transaction: NewTransaction = {
    walletId,
    amount: centsToDecimal(request.amount),
    fingerprint: request.fingerprint,
    labels: request.labels,
    description: request.description,
    traceContext: currentTraceparent(),
  };
  const reserved = await insertPendingTransaction(deps.db, transaction);
  if (!reserved) throw await explainRefusedReservation(deps.db, transaction);
  return nudgeWorker(deps.queue, reserved);
}

/** Enqueues the wallet of a just-reserved transaction; a failure is left to the sweeper. */
export async function nudgeWorker(queue: ApplyQueue, reserved: TransactionRow): Promise<Reservation> {
  const enqueued = await enqueueApply(queue, reserved.walletId).then(
    () => true,
    () => false,
  );
  return { transaction: reserved, enqueued };
}

async function explainRefusedReservation(db: CommonQueryMethods, transaction: NewTransaction) {
  const existing = await findTransactionByFingerprint(db, transaction.fingerprint);
  if (existing) return fingerprintConflict(existing, transaction);
  return new NotFoundError(`wallet ${transaction.walletId} does not exist`);
}

/** A taken fingerprint: a replay gets the transaction it made; any other request learns nothing. */
export function fingerprintConflict(existing: TransactionRow, request: NewTransaction) {
  return isReplayOf(existing, request) ? new DuplicateFingerprintError(existing) : new FingerprintReusedError();
}

export function isFinal(transaction: TransactionRow): boolean {
  return transaction.status !== 'pending';
}

export async function getTransaction(
  db: CommonQueryMethods,
  walletId: number,
  transactionId: string,
): Promise<TransactionRow> {
  const transaction = await findWalletTransaction(db, walletId, transactionId);
  if (!transaction) throw new NotFoundError(`wallet ${walletId} has no transaction ${transactionId}`);
  return transaction;
}

export async function getLatestApplied(db: CommonQueryMethods, walletId: number): Promise<TransactionRow> {
  const transaction = await findLatestAppliedTransaction(db, walletId);
  if (!transaction) throw new NotFoundError(`wallet ${walletId} has no applied transaction`);
  return transaction;
}
