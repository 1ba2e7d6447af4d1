import { describe, expect, it } from 'vitest';
import { eventsOf, type OutboxItem } from '../../src/shared/events/outbox-events.js';

const transfer = {
  id: 'a7f1a1e2-0000-4000-8000-000000000001',
  from: 19,
  to: 40,
  amount: '72.54',
  currency: 'EUR',
  fingerprint: 'prize-1',
  created: '2026-12-02T06:19:00.000Z',
};

/** One decided transaction of a transactions_decided row. */
function decided(
  ordinal: number,
  transaction: Partial<NonNullable<OutboxItem['transaction']>> & { id: string; walletId: number },
): OutboxItem {
  return {
    kind: 'transactions_decided',
    xid: '476958',
    row: 1406,
    ordinal,
    rowCreated: '2026-12-02T06:19:39.747Z',
    debitSlotsPaired: true,
    wallet: null,
    hold: null,
    legacy: null,
    transaction: {
      amount: '10.00',
      fingerprint: `fp-${ordinal}`,
      labels: {},
      description: null,
      status: 'applied',
      voids: null,
      created: '2026-12-02T06:19:39.000Z',
      refno: ordinal,
      oldbalance: '0',
      newbalance: '10.00',
      reason: null,
      finalized: '2026-12-02T06:19:39.747Z',
      transfer: null,
      ...transaction,
    },
  };
}

describe('events of a decision row', () => {
  it("When a transfer's debit reversal is decided before other transactions of its row, then its TransferVoid comes after all of them and every position grows", () => {
    const events = eventsOf([
      // The last step of a void: the reversal of the debit leg, back to `from`.
      decided(1, {
        id: '00000000-0779-8001-8000-000000000013',
        walletId: transfer.from,
        amount: '72.54',
        voids: '00000000-0586-8001-8000-000000000013',
        transfer,
      }),
      decided(2, { id: '00000000-077b-8001-8000-000000000013', walletId: 19 }),
      decided(3, { id: '00000000-0765-8001-8000-000000000023', walletId: 35 }),
    ]);
    expect(events.map((event) => event.type)).toEqual([
      'BalanceChanged',
      'TransactionVoid',
      'BalanceChanged',
      'BalanceChanged',
      'TransferVoid',
    ]);
    const positions = events.map((event) => event.position);
    // The relay publishes in this order and skips any position at or below the last published one.
    expect(positions).toEqual([...positions].sort());
    expect(new Set(positions).size).toBe(positions.length);
  });
});

/** One reserved transaction of a transactions_reserved row. */
function reserved(ordinal: number, transaction: Parameters<typeof decided>[1]): OutboxItem {
  const item = decided(ordinal, transaction);
  return {
    ...item,
    kind: 'transactions_reserved',
    transaction: { ...item.transaction!, status: 'pending', refno: null, finalized: null },
  };
}

describe('events of a reservation row', () => {
  it('When a group of transfers is reserved in one row, then each gets its TransferCreated right before its debit leg, every position once and growing', () => {
    const transfers = [1, 2, 3].map((n) => ({ ...transfer, id: `a7f1a1e2-0000-4000-8000-00000000000${n}` }));
    const events = eventsOf(
      transfers.map((tr, index) =>
        reserved(index + 1, {
          id: `00000000-0779-8001-8000-00000000001${index}`,
          walletId: tr.from,
          amount: `-${tr.amount}`,
          transfer: tr,
        }),
      ),
    );
    expect(events.map((event) => [event.type, event.subject])).toEqual(
      transfers.flatMap((tr, index) => [
        ['TransferCreated', tr.id],
        ['TransactionCreated', `00000000-0779-8001-8000-00000000001${index}`],
      ]),
    );
    const positions = events.map((event) => event.position);
    expect(positions).toEqual([...positions].sort());
    expect(new Set(positions).size).toBe(positions.length);
  });

  it('When a row of debit legs was written before migration 010, then its events keep the slots they were published under', () => {
    const item = reserved(1, {
      id: '00000000-0779-8001-8000-000000000031',
      walletId: transfer.from,
      amount: '-1',
      transfer,
    });
    expect(eventsOf([{ ...item, debitSlotsPaired: false }]).map((event) => [event.type, event.ordinal])).toEqual([
      ['TransferCreated', 0],
      ['TransactionCreated', 1],
    ]);
  });

  it('When plain transactions are reserved, then their TransactionCreated keep one slot each (positions as before)', () => {
    const events = eventsOf(
      [1, 2].map((n) => reserved(n, { id: `00000000-0779-8001-8000-00000000002${n}`, walletId: 7 })),
    );
    expect(events.map((event) => event.ordinal)).toEqual([1, 2]);
  });
});
