import { describe, expect, it } from 'vitest';
import { checkTransferEvents, type AuditedTransfer, type StreamEvent } from '../../src/shared/audit/event-audit.js';

/** The stream audit's transfer rules (event-audit.ts checkTransferEvents), on hand-made streams. */
const transfer = (status: AuditedTransfer['status'], id = 't1'): AuditedTransfer => ({ id, from: 7, status });
const event = (type: string, subject = 't1'): StreamEvent => ({
  id: `${type}-${subject}-${Math.random()}`,
  type,
  walletId: 7,
  subject,
  refno: null,
});
const rulesBroken = (events: StreamEvent[], transfers: AuditedTransfer[]) =>
  checkTransferEvents(events, transfers).map((violation) => `${violation.rule}: ${violation.detail}`);

describe('checkTransferEvents', () => {
  it('When every transfer has its TransferCreated and the outcome events of its state, then nothing is reported', () => {
    const events = [
      event('TransferCreated', 'a'),
      event('TransferCreated', 'b'),
      event('TransferCreated', 'c'),
      event('TransferCreated', 'p'),
      event('TransferCompleted', 'a'),
      event('TransferRejected', 'b'),
      event('TransferCompleted', 'c'),
      event('TransferVoidRejected', 'c'),
      event('TransferVoid', 'c'),
    ];
    expect(
      rulesBroken(events, [
        transfer('completed', 'a'),
        transfer('rejected', 'b'),
        transfer('voided', 'c'),
        transfer('pending', 'p'),
      ]),
    ).toEqual([]);
  });

  it('When a TransferCreated is missing or doubled, then event-once is reported', () => {
    expect(rulesBroken([], [transfer('pending')])).toEqual([
      'event-once: transfer t1: 0 TransferCreated events (pending)',
    ]);
    expect(rulesBroken([event('TransferCreated'), event('TransferCreated')], [transfer('pending')])).toEqual([
      'event-once: transfer t1: 2 TransferCreated events (pending)',
    ]);
  });

  it('When the outcome is missing, doubled or of the other kind, or a void event comes without a void, then event-once is reported', () => {
    const created = event('TransferCreated');
    expect(rulesBroken([created], [transfer('completed')])).toHaveLength(1);
    expect(
      rulesBroken([created, event('TransferCompleted'), event('TransferCompleted')], [transfer('completed')]),
    ).toHaveLength(1);
    expect(rulesBroken([created, event('TransferCompleted')], [transfer('rejected')])).toHaveLength(1);
    expect(
      rulesBroken([created, event('TransferCompleted'), event('TransferVoid')], [transfer('completed')]),
    ).toHaveLength(1);
    expect(rulesBroken([created, event('TransferCompleted')], [transfer('voided')])).toHaveLength(1);
  });

  it('When an outcome comes before its TransferCreated, then event-order is reported', () => {
    expect(rulesBroken([event('TransferRejected'), event('TransferCreated')], [transfer('rejected')])).toEqual([
      'event-order: transfer t1: TransferRejected before its TransferCreated',
    ]);
  });
});
