import { describe, expect, it } from 'vitest';
import { applyInOrder } from '../../src/shared/ledger/ledger.js';
import { MAX_BALANCE, maxBalance } from '../../src/shared/ledger/money.js';

const entry = (id: string, amount: bigint) => ({ id, amount });

describe('applyInOrder', () => {
  it('applies deposits and withdrawals in order with contiguous refnos and chained balances', () => {
    const result = applyInOrder({ balance: 0n, lastRefno: 0 }, [entry('a', 1000n), entry('b', -300n), entry('c', 50n)]);
    expect(result.outcomes).toEqual([
      { id: 'a', status: 'applied', refno: 1, oldBalance: 0n, newBalance: 1000n },
      { id: 'b', status: 'applied', refno: 2, oldBalance: 1000n, newBalance: 700n },
      { id: 'c', status: 'applied', refno: 3, oldBalance: 700n, newBalance: 750n },
    ]);
    expect(result.state).toEqual({ balance: 750n, lastRefno: 3 });
  });

  it('rejects a withdrawal that would overdraw, keeping the balance and consuming no refno, and records what it saw', () => {
    const result = applyInOrder({ balance: 500n, lastRefno: 7 }, [entry('a', -501n), entry('b', -500n)]);
    expect(result.outcomes).toEqual([
      { id: 'a', status: 'rejected', reason: 'insufficient_funds', seenBalance: 500n, afterRefno: 7 },
      { id: 'b', status: 'applied', refno: 8, oldBalance: 500n, newBalance: 0n },
    ]);
    expect(result.state).toEqual({ balance: 0n, lastRefno: 8 });
  });

  it('lets a withdrawal succeed when an earlier deposit in the same batch covers it', () => {
    const result = applyInOrder({ balance: 0n, lastRefno: 0 }, [
      entry('a', -100n),
      entry('b', 100n),
      entry('c', -100n),
    ]);
    expect(result.outcomes.map((outcome) => outcome.status)).toEqual(['rejected', 'applied', 'applied']);
    // The rejection saw the balance before the deposit that followed it, after no applied transaction.
    expect(result.outcomes[0]).toMatchObject({ seenBalance: 0n, afterRefno: 0 });
    expect(result.state.balance).toBe(0n);
  });

  it("holds each wallet to its own currency's cap", () => {
    const cap = maxBalance(3);
    const result = applyInOrder({ balance: cap - 1000n, lastRefno: 0, maxBalance: cap }, [
      entry('a', 1001n),
      entry('b', 1000n),
    ]);
    expect(result.outcomes.map((outcome) => outcome.status)).toEqual(['rejected', 'applied']);
    expect(result.state).toEqual({ balance: cap, lastRefno: 1, maxBalance: cap });
  });

  it("never rejects a transfer's credit leg: its debit was applied already", () => {
    const result = applyInOrder({ balance: MAX_BALANCE, lastRefno: 1 }, [
      { id: 'credit', amount: 1000n, transferCredit: true },
    ]);
    expect(result.outcomes).toEqual([
      { id: 'credit', status: 'applied', refno: 2, oldBalance: MAX_BALANCE, newBalance: MAX_BALANCE + 1000n },
    ]);
  });

  it('rejects a deposit past the largest balance the ledger can hold', () => {
    const result = applyInOrder({ balance: MAX_BALANCE - 1000n, lastRefno: 1 }, [entry('a', 1001n), entry('b', 1000n)]);
    expect(result.outcomes).toEqual([
      {
        id: 'a',
        status: 'rejected',
        reason: 'balance_limit_exceeded',
        seenBalance: MAX_BALANCE - 1000n,
        afterRefno: 1,
      },
      { id: 'b', status: 'applied', refno: 2, oldBalance: MAX_BALANCE - 1000n, newBalance: MAX_BALANCE },
    ]);
  });

  it('changes nothing for an empty batch', () => {
    expect(applyInOrder({ balance: 5n, lastRefno: 2 }, [])).toEqual({
      outcomes: [],
      state: { balance: 5n, lastRefno: 2 },
    });
  });
});

describe('reversals (voids)', () => {
  it('applies a reversal like any transaction and says which transaction it voids', () => {
    const result = applyInOrder({ balance: 1000n, lastRefno: 4 }, [
      { id: 'r', amount: -400n, voids: { id: 'orig', stillApplied: true } },
    ]);
    expect(result.outcomes).toEqual([
      { id: 'r', status: 'applied', refno: 5, oldBalance: 1000n, newBalance: 600n, voids: 'orig' },
    ]);
  });

  it('rejects a reversal that would overdraw, so the original stays applied', () => {
    const result = applyInOrder({ balance: 300n, lastRefno: 4 }, [
      { id: 'r', amount: -400n, voids: { id: 'orig', stillApplied: true } },
    ]);
    expect(result.outcomes).toEqual([
      { id: 'r', status: 'rejected', reason: 'insufficient_funds', seenBalance: 300n, afterRefno: 4 },
    ]);
    expect(result.state).toEqual({ balance: 300n, lastRefno: 4 });
  });

  it('rejects a reversal whose original is no longer applied', () => {
    const result = applyInOrder({ balance: 1000n, lastRefno: 4 }, [
      { id: 'r', amount: 400n, voids: { id: 'orig', stillApplied: false } },
    ]);
    expect(result.outcomes).toEqual([
      { id: 'r', status: 'rejected', reason: 'not_voidable', seenBalance: 1000n, afterRefno: 4 },
    ]);
  });
});
