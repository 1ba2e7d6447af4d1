import { decimalToUnits } from '../ledger/money.js';
import type { NewTransaction, TransactionRow } from './transaction-repository.js';

/** What a request asked to reserve: the fields that make it the same request, not a new one. */
export type ReplayCandidate = Pick<NewTransaction, 'walletId' | 'amount' | 'labels' | 'voids'> & {
  description?: string | null;
};

/**
 * Whether a request whose fingerprint is taken is a replay of the transaction that took it: same
 * wallet, same amount (exact cents, so `10`, `10.0` and `10.00` agree), same labels (as key/value
 * sets, in any order), same description (null and missing alike) and, for reversals, the same
 * original. Only a replay may see the existing transaction; anything else is another request
 * reusing the fingerprint and learns nothing about it.
 */
export function isReplayOf(existing: TransactionRow, request: ReplayCandidate): boolean {
  return (
    existing.walletId === request.walletId &&
    sameAmount(existing.amount, request.amount) &&
    sameLabels(existing.labels, request.labels) &&
    (existing.description ?? null) === (request.description ?? null) &&
    (existing.voids ?? null) === (request.voids ?? null)
  );
}

function sameAmount(a: string, b: string): boolean {
  const cents = decimalToUnits(a);
  return cents !== null && cents === decimalToUnits(b);
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => Object.hasOwn(b, key) && a[key] === b[key]);
}
