import { describe, expect, it } from 'vitest';
import { availableOf, decide, decideHold } from '../../src/shared/ledger/ledger.js';

/** The ledger rules of holds: debits and new holds are decided against balance minus held. */
describe('holds in the ledger', () => {
  it('decides a hold active when the available balance covers it, and adds it to held', () => {
    const { outcome, state } = decideHold(
      { balance: 1000n, lastRefno: 3, held: 200n },
      { id: 'h', kind: 'hold', amount: 800n },
    );
    expect(outcome).toEqual({ id: 'h', status: 'active', seenAvailable: 800n });
    expect(state).toEqual({ balance: 1000n, lastRefno: 3, held: 1000n });
    expect(availableOf(state)).toBe(0n);
  });

  it('rejects a hold over the available balance, leaving held and the refno alone', () => {
    const start = { balance: 1000n, lastRefno: 3, held: 200n };
    const { outcome, state } = decideHold(start, { id: 'h', kind: 'hold', amount: 801n });
    expect(outcome).toEqual({ id: 'h', status: 'rejected', reason: 'insufficient_funds', seenAvailable: 800n });
    expect(state).toBe(start);
  });

  it('rejects a withdrawal that the balance covers but the available balance does not, recording the held it saw', () => {
    const { outcome, state } = decide({ balance: 1000n, lastRefno: 3, held: 600n }, { id: 'w', amount: -401n });
    expect(outcome).toEqual({
      id: 'w',
      status: 'rejected',
      reason: 'insufficient_funds',
      seenBalance: 1000n,
      afterRefno: 3,
      seenHeld: 600n,
    });
    expect(state.balance).toBe(1000n);
    const fits = decide({ balance: 1000n, lastRefno: 3, held: 600n }, { id: 'w', amount: -400n });
    expect(fits.outcome).toMatchObject({ status: 'applied', refno: 4, newBalance: 600n });
    expect(fits.state.held).toBe(600n);
  });

  it('applies a deposit whatever is held', () => {
    const { outcome } = decide({ balance: 0n, lastRefno: 0, held: 0n }, { id: 'd', amount: 100n });
    expect(outcome).toMatchObject({ status: 'applied', refno: 1 });
  });

  it('applies a capture against its own hold: the whole hold leaves held, the captured amount the balance', () => {
    // Balance 1000, two holds of 600 and 400 (available 0): capturing 250 of the 600 hold.
    const { outcome, state } = decide(
      { balance: 1000n, lastRefno: 5, held: 1000n },
      { id: 'c', amount: -250n, capturesHold: 600n },
    );
    expect(outcome).toEqual({ id: 'c', status: 'applied', refno: 6, oldBalance: 1000n, newBalance: 750n });
    expect(state).toEqual({ balance: 750n, lastRefno: 6, held: 400n });
    expect(availableOf(state)).toBe(350n);
  });

  it('takes a released hold out of held, and refuses to release more than is held', () => {
    const { outcome, state } = decideHold(
      { balance: 50n, lastRefno: 1, held: 30n },
      { id: 'r', kind: 'hold_release', amount: 30n },
    );
    expect(outcome).toEqual({ id: 'r', status: 'settled' });
    expect(state.held).toBe(0n);
    expect(() => decideHold(state, { id: 'r', kind: 'hold_release', amount: 1n })).toThrow(
      /more than the wallet holds/,
    );
  });
});
