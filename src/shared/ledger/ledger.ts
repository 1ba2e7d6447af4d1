/** ledger: exact money in units (money.ts), currencies (currency.ts) and the rule that applies or rejects each pending transaction; no I/O. */
import { MAX_BALANCE, type Units } from './money.js';

/** The rules for moving a wallet's balance, applied to its pending transactions in order. */

export type RejectionReason = 'insufficient_funds' | 'balance_limit_exceeded' | 'not_voidable';

export interface WalletLedgerState {
  balance: Units;
  lastRefno: number;
  /** The wallet's balance cap (money.ts maxBalance of its currency); MAX_BALANCE when left out. */
  maxBalance?: Units;
  /** The sum of the wallet's live holds (0 when left out): `available` is balance minus held. */
  held?: Units;
}

/** What the wallet can still spend: its balance minus its live holds. */
export function availableOf(state: WalletLedgerState): Units {
  return state.balance - (state.held ?? 0n);
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
  /** The debit that captures a hold of this amount: the hold's amount leaves `held` as it applies. */
  capturesHold?: Units;
}

/** A new hold of `amount` (positive): active when the available balance covers it. */
export interface HoldEntry {
  id: string;
  kind: 'hold';
  amount: Units;
}

/** A released or expired hold of `amount`: its amount leaves `held`. */
export interface HoldReleaseEntry {
  id: string;
  kind: 'hold_release';
  amount: Units;
}

export type HoldOutcome =
  | { id: string; status: 'active'; seenAvailable: Units }
  | { id: string; status: 'rejected'; reason: 'insufficient_funds'; seenAvailable: Units }
  | { id: string; status: 'settled' };

/** Decides a new hold against the available balance, or takes a released hold out of `held`. */
export function decideHold(
  state: WalletLedgerState,
  entry: HoldEntry | HoldReleaseEntry,
): { outcome: HoldOutcome; state: WalletLedgerState } {
  const held = state.held ?? 0n;
  if (entry.kind === 'hold_release') {
    if (entry.amount > held) throw new Error(`hold ${entry.id} releases more than the wallet holds`);
    return { outcome: { id: entry.id, status: 'settled' }, state: { ...state, held: held - entry.amount } };
  }
  const seenAvailable = availableOf(state);
  if (entry.amount <= 0n || seenAvailable - entry.amount < 0n) {
    return { outcome: { id: entry.id, status: 'rejected', reason: 'insufficient_funds', seenAvailable }, state };
  }
  return { outcome: { id: entry.id, status: 'active', seenAvailable }, state: { ...state, held: held + entry.amount } };
}

/**
 * A decision. A rejection records what it was decided against (the balance it saw, and the refno
 * of the applied transaction it followed, 0 for none), so that replaying the wallet's applied
 * rows can prove that it was deserved.
 */
export type Outcome =
  | { id: string; status: 'applied'; refno: number; oldBalance: Units; newBalance: Units; voids?: string }
  | {
      id: string;
      status: 'rejected';
      reason: RejectionReason;
      seenBalance: Units;
      afterRefno: number;
      /** The sum of live holds it saw (the available balance was seenBalance - seenHeld). */
      seenHeld?: Units;
    };

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
      ...(state.held ? { seenHeld: state.held } : {}),
    } as const,
    state,
  });
  if (entry.voids && !entry.voids.stillApplied) return reject('not_voidable');
  const newBalance = state.balance + entry.amount;
  // A capture spends its own hold: that amount leaves `held` with the debit.
  const held = (state.held ?? 0n) - (entry.capturesHold ?? 0n);
  if (held < 0n) throw new Error(`transaction ${entry.id} captures more than the wallet holds`);
  // Debits are decided against the available balance (balance minus live holds); a credit only
  // adds to it.
  if (newBalance < 0n || (entry.amount < 0n && newBalance - held < 0n)) return reject('insufficient_funds');
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
    state: {
      ...state,
      balance: newBalance,
      lastRefno: refno,
      ...(state.held !== undefined || entry.capturesHold ? { held } : {}),
    },
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
