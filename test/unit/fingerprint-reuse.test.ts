import { describe, expect, it } from 'vitest';
import { isReplayOf, type ReplayCandidate } from '../../src/shared/transactions/fingerprint-reuse.js';
import type { TransactionRow } from '../../src/shared/transactions/transaction-repository.js';

const existing: TransactionRow = {
  id: 'a3e863bf-14de-494a-bd39-d2bd5ac1ed2d',
  walletId: 1,
  amount: '10.00',
  fingerprint: 'TX123A001',
  labels: { couponId: '10004871', reason: 'prize' },
  description: null,
  status: 'applied',
  reason: null,
  refno: 1,
  oldbalance: '0.00',
  newbalance: '10.00',
  voids: null,
  voidedBy: null,
  transferId: null,
  created: '2026-11-25T09:08:13.315Z',
};
const same: ReplayCandidate = {
  walletId: 1,
  amount: '10.00',
  labels: { couponId: '10004871', reason: 'prize' },
  description: null,
};

describe('isReplayOf', () => {
  it('When the request repeats the transaction field for field, then it is a replay', () => {
    expect(isReplayOf(existing, same)).toBe(true);
  });

  it('When the amount is written differently but is the same number of cents, then it is a replay', () => {
    expect(isReplayOf({ ...existing, amount: '10.00' }, { ...same, amount: '10.0' })).toBe(true);
    expect(isReplayOf({ ...existing, amount: '10.00' }, { ...same, amount: '10' })).toBe(true);
  });

  it('When the labels come in another order, then it is a replay', () => {
    expect(isReplayOf(existing, { ...same, labels: { reason: 'prize', couponId: '10004871' } })).toBe(true);
  });

  it('When one side has no description and the other null, then it is a replay', () => {
    const withoutDescription: ReplayCandidate = { walletId: 1, amount: '10.00', labels: same.labels };
    expect(isReplayOf(existing, withoutDescription)).toBe(true);
  });

  it.each<[string, Partial<ReplayCandidate>]>([
    ['another wallet', { walletId: 2 }],
    ['another amount', { amount: '10.01' }],
    ['the opposite amount', { amount: '-10.00' }],
    ['a label more', { labels: { ...same.labels, extra: 'x' } }],
    ['a label less', { labels: { couponId: '10004871' } }],
    ['a label value changed', { labels: { couponId: '10004871', reason: 'refund' } }],
    ['no labels', { labels: {} }],
    ['a description', { description: 'won ticket' }],
    ['a reversal of something', { voids: 'b4e863bf-14de-494a-bd39-d2bd5ac1ed2d' }],
  ])('When the request has %s, then it is not a replay', (_, change) => {
    expect(isReplayOf(existing, { ...same, ...change })).toBe(false);
  });

  it('When the existing one is a reversal, then only a reversal of the same original replays it', () => {
    const reversal = { ...existing, amount: '-10.00', voids: 'b4e863bf-14de-494a-bd39-d2bd5ac1ed2d' };
    expect(isReplayOf(reversal, { ...same, amount: '-10.00', voids: reversal.voids })).toBe(true);
    expect(isReplayOf(reversal, { ...same, amount: '-10.00' })).toBe(false);
    expect(isReplayOf(reversal, { ...same, amount: '-10.00', voids: existing.id })).toBe(false);
  });

  it('When a label key is inherited rather than own, then it does not count as given', () => {
    expect(isReplayOf({ ...existing, labels: { constructor: 'x' } }, { ...same, labels: {} })).toBe(false);
  });
});
