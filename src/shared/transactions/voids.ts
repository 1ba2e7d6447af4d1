import { UniqueIntegrityConstraintViolationError, type CommonQueryMethods } from 'slonik';
import { NotVoidableError, VoidExistsError } from './conflicts.js';
import { RuleViolationError, ValidationError } from '../domain/errors.js';
import {
  defaultVoidFingerprint,
  RESERVED_FINGERPRINT_REASON,
  RESERVED_TRANSFER_FINGERPRINT_REASON,
  HOLD_FINGERPRINT_PREFIX,
  RESERVED_HOLD_FINGERPRINT_REASON,
  TRANSFER_FINGERPRINT_PREFIX,
  VOID_FINGERPRINT_PREFIX,
} from '../domain/validation.js';
import { decimalToUnits, unitsToDecimal } from '../ledger/money.js';
import type { ApplyQueue } from '../infra/queue.js';
import {
  findTransactionByFingerprint,
  findVoidOf,
  insertPendingTransaction,
  type NewTransaction,
} from './transaction-repository.js';
import { recordReserved } from '../telemetry/metrics.js';
import { currentTraceparent, inSpan } from '../telemetry/tracing.js';
import { fingerprintConflict, getTransaction, nudgeWorker, type Reservation } from './transactions.js';

export interface VoidRequest {
  /**
   * Defaults to `void:<transaction id>`; other `void:` fingerprints are refused. Idempotency does not
   * hang on it: any retry of a void meets the original's live reversal.
   */
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
  const fingerprint = request.fingerprint ?? defaultVoidFingerprint(originalId);
  if (fingerprint.startsWith(VOID_FINGERPRINT_PREFIX) && fingerprint !== defaultVoidFingerprint(originalId)) {
    throw new ValidationError('the request body is invalid', [
      {
        name: 'fingerprint',
        reason: `${RESERVED_FINGERPRINT_REASON}, unless it is ${defaultVoidFingerprint('<txId>')}`,
      },
    ]);
  }
  // The legs' and the captures' namespaces: a void that took `hold:<id>:capture` would make that
  // hold's default capture a 409 for ever.
  for (const [prefix, reason] of [
    [TRANSFER_FINGERPRINT_PREFIX, RESERVED_TRANSFER_FINGERPRINT_REASON],
    [HOLD_FINGERPRINT_PREFIX, RESERVED_HOLD_FINGERPRINT_REASON],
  ] as const) {
    if (fingerprint.startsWith(prefix)) {
      throw new ValidationError('the request body is invalid', [{ name: 'fingerprint', reason }]);
    }
  }
  const original = await getTransaction(deps.db, walletId, originalId);
  if (original.voids) throw new NotVoidableError(original, 'it is itself a reversal');
  // A leg alone would break its transfer (money would appear or vanish): legs are never voided.
  if (original.transferId) throw new NotVoidableError(original, `it is a leg of transfer ${original.transferId}`);
  // Idempotent per original: a retry meets the reversal it made, whatever fingerprint it carries.
  const live = await findVoidOf(deps.db, originalId);
  if (live) throw new VoidExistsError(live);
  if (original.status === 'voided') throw new NotVoidableError(original, 'it is already voided');
  if (original.status !== 'applied') throw new NotVoidableError(original, `it is ${original.status}`);
  const ageMs = Date.now() - Date.parse(original.created);
  if (ageMs > deps.voidWindowMs) {
    throw new RuleViolationError(
      `transaction ${originalId} is older than the void window of ${Math.round(deps.voidWindowMs / 3_600_000)} h`,
      'void-window-expired',
    );
  }

  const reason = request.reason ?? null;
  const transaction: NewTransaction = {
    walletId,
    amount: unitsToDecimal(-decimalToUnits(original.amount)!),
    fingerprint,
    labels: reason ? { voids: originalId, reason } : { voids: originalId },
    description: `void of ${originalId}${reason ? `: ${reason}` : ''}`,
    voids: originalId,
    traceContext: currentTraceparent(),
  };
  let reversal;
  try {
    reversal = await insertPendingTransaction(deps.db, transaction);
  } catch (error) {
    if (error instanceof UniqueIntegrityConstraintViolationError && error.constraint === LIVE_VOID_INDEX) {
      // A racing void won; answer with its reversal, as a later retry would get.
      const winner = await findVoidOf(deps.db, originalId);
      if (winner) throw new VoidExistsError(winner);
      throw new NotVoidableError(original, 'a void of it is in progress');
    }
    throw error;
  }
  if (!reversal) {
    const existing = await findTransactionByFingerprint(deps.db, fingerprint);
    if (!existing) throw new Error(`fingerprint ${fingerprint} conflicted but is missing`);
    throw fingerprintConflict(existing, transaction);
  }
  return nudgeWorker(deps.queue, reversal);
}
