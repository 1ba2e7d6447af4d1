import { ConflictError } from '../domain/errors.js';
import type { TransactionRow } from './transaction-repository.js';

/** The fingerprint was reserved before: a retry, answered with the transaction it made. */
export class DuplicateFingerprintError extends ConflictError {
  constructor(readonly existing: TransactionRow) {
    super(`this fingerprint is already used by transaction ${existing.id} (${existing.status})`);
  }
}

/**
 * The fingerprint was reserved by a different request (another wallet, amount, labels or
 * description): the caller is not retrying, so it learns nothing about that transaction.
 */
export class FingerprintReusedError extends ConflictError {
  constructor() {
    super('this fingerprint is already used by a different request; choose another fingerprint');
  }
}

/** The original already has a live (pending or applied) reversal: voids are idempotent per original. */
export class VoidExistsError extends ConflictError {
  constructor(readonly reversal: TransactionRow) {
    super(`transaction ${reversal.voids} already has a ${reversal.status} void: transaction ${reversal.id}`);
  }
}

/** The transaction cannot be voided in its state: pending, rejected, already voided, or a reversal itself. */
export class NotVoidableError extends ConflictError {
  constructor(
    readonly transaction: TransactionRow,
    why: string,
  ) {
    super(`transaction ${transaction.id} cannot be voided: ${why}`);
  }
}
