import { ConflictError } from '../domain/errors.js';
import type { TransactionRow } from './transaction-repository.js';

/** The fingerprint was reserved before: a retry, answered with the transaction it made. */
export class DuplicateFingerprintError extends ConflictError {
  constructor(readonly existing: TransactionRow) {
    super(`this fingerprint is already used by transaction ${existing.id} (${existing.status})`);
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
