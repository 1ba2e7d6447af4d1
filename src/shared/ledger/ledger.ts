/** ledger: exact money in units (money.ts), currencies (currency.ts) and the rule that applies or rejects each pending transaction; no I/O. */
import { MAX_BALANCE, type Units } from './money.js';

/** The rules for moving a wallet's balance, applied to its pending transactions in order. */

export type RejectionReason = 'insufficient_funds' | 'balance_limit_exceeded' | 'not_voidable';

export interface WalletLedgerState {
  balance: Units;
  lastRefno: number;
  /** The wallet's balance cap (money.ts maxBalance of its currency); MAX_BALANCE when left out. */
  maxBalance?: Units;
}

export interface PendingEntry {
  id: string;
  amount: Units;
  /** For a reversal: the transaction it voids, and whether that one is still applied. */
  voids?: { id: string; stillApplied: boolean };
  /**
   * The credit leg of a transfer whose debit was applied: it is never rejected, since the money
   * has left the source already (the balance cap does not hold it back; docs/design.md, Transfers).
   */
  transferCredit?: boolean;
}

/**
 * A decision. A rejection records what it was decided against (the balance it saw, and the refno
 * of the applied transaction it followed, 0 for none), so that replaying the wallet's applied
 * rows can prove that it was deserved.
 */
export type Outcome =
  | { id: string; status: 'applied'; refno: number; oldBalance: Units; newBalance: Units; voids?: string }
  | { id: string; status: 'rejected'; reason: RejectionReason; seenBalance: Units; afterRefno: number };

export interface LedgerResult {
  outcomes: Outcome[];
  state: WalletLedgerState;
}

/** Decides one transaction against the balance: applied with the next refno, or rejected. */
export function decide(state: WalletLedgerState, entry: PendingEntry): { outcome: Outcome; state: WalletLedgerState } {
  // The original may have been voided (or never applied) since the void was requested.
  const reject = (reason: RejectionReason) => ({
    outcome: {
      id: entry.id,
      status: 'rejected',
      reason,
      seenBalance: state.balance,
      afterRefno: state.lastRefno,
    } as const,
    state,
  });
  if (entry.voids && !entry.voids.stillApplied) return reject('not_voidable');
  const newBalance = state.balance + entry.amount;
  if (newBalance < 0n) return reject('insufficient_funds');
  if (newBalance > (state.maxBalance ?? MAX_BALANCE) && !entry.transferCredit) return reject('balance_limit_exceeded');
  const refno = state.lastRefno + 1;
  return {
    outcome: {
      id: entry.id,
      status: 'applied',
      refno,
      oldBalance: state.balance,
      newBalance,
      ...(entry.voids ? { voids: entry.voids.id } : {}),
    },
    state: { ...state, balance: newBalance, lastRefno: refno },
  };
}

/** Applies entries in the given order; rejected ones leave the balance and the refno sequence untouched. */
export function applyInOrder(initial: WalletLedgerState, entries: readonly PendingEntry[]): LedgerResult {
  let state = initial;
  const outcomes: Outcome[] = [];
  for (const entry of entries) {
    const decision = decide(state, entry);
    outcomes.push(decision.outcome);
    state = decision.state;
  }
  return { outcomes, state };
}
