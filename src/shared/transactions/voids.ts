import { UniqueIntegrityConstraintViolationError, type CommonQueryMethods } from 'slonik';
import { DuplicateFingerprintError, NotVoidableError } from './conflicts.js';
import { RuleViolationError } from '../domain/errors.js';
import { decimalToCents, centsToDecimal } from '../ledger/money.js';
import type { ApplyQueue } from '../infra/queue.js';
import { findTransactionByFingerprint, findVoidOf, insertPendingTransaction } from './transaction-repository.js';
import { recordReserved } from '../telemetry/metrics.js';
import { currentTraceparent, inSpan } from '../telemetry/tracing.js';
import { getTransaction, nudgeWorker, type Reservation } from './transactions.js';

export interface VoidRequest {
  /** Makes the void idempotent; defaults to `void:<transaction id>`, so a plain retry is one void. */
  fingerprint?: string;
  reason?: string;
}

const LIVE_VOID_INDEX = 'transactions_one_live_void';

/**
 * Voids a recent applied transaction by reserving a reversal (amount = -original) that goes
 * through the wallet's queue like any transaction: it gets its own refno, and when it is applied
 * the original becomes `voided`. A reversal that would overdraw is rejected and the original
 * stays applied.
 */
export function requestVoid(
  deps: { db: CommonQueryMethods; queue: ApplyQueue; voidWindowMs: number },
  walletId: number,
  originalId: string,
  request: VoidRequest,
): Promise<Reservation> {
  const attributes = { 'wallet.id': walletId, 'wallet.transaction.voids': originalId };
  return inSpan('wallet.void', { attributes }, async (span) => {
    const reservation = await reserveReversal(deps, walletId, originalId, request);
    span.setAttribute('wallet.transaction.id', reservation.transaction.id);
    recordReserved();
    return reservation;
  });
}

async function reserveReversal(
  deps: { db: CommonQueryMethods; queue: ApplyQueue; voidWindowMs: number },
  walletId: number,
  originalId: string,
  request: VoidRequest,
): Promise<Reservation> {
  const original = await getTransaction(deps.db, walletId, originalId);
  if (original.voids) throw new NotVoidableError(original, 'it is itself a reversal');
  if (original.status === 'voided') throw new NotVoidableError(original, 'it is already voided');
  if (original.status !== 'applied') throw new NotVoidableError(original, `it is ${original.status}`);
  const ageMs = Date.now() - Date.parse(original.created);
  if (ageMs > deps.voidWindowMs) {
    throw new RuleViolationError(
      `transaction ${originalId} is older than the void window of ${Math.round(deps.voidWindowMs / 3_600_000)} h`,
      'void-window-expired',
    );
  }

  const fingerprint = request.fingerprint ?? `void:${originalId}`;
  const reason = request.reason ?? null;
  let reversal;
  try {
    reversal = await insertPendingTransaction(deps.db, {
      walletId,
      amount: centsToDecimal(-decimalToCents(original.amount)!),
      fingerprint,
      labels: reason ? { voids: originalId, reason } : { voids: originalId },
      description: `void of ${originalId}${reason ? `: ${reason}` : ''}`,
      voids: originalId,
      traceContext: currentTraceparent(),
    });
  } catch (error) {
    if (error instanceof UniqueIntegrityConstraintViolationError && error.constraint === LIVE_VOID_INDEX) {
      const live = await findVoidOf(deps.db, originalId);
      throw new NotVoidableError(original, `a void of it is already ${live?.status ?? 'in progress'} (${live?.id})`);
    }
    throw error;
  }
  if (!reversal) {
    const existing = await findTransactionByFingerprint(deps.db, fingerprint);
    if (!existing) throw new Error(`fingerprint ${fingerprint} conflicted but is missing`);
    throw new DuplicateFingerprintError(existing);
  }
  return nudgeWorker(deps.queue, reversal);
}
