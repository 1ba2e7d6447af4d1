import { describe, expect, it } from 'vitest';
import { checkHoldEvents, type AuditedHold, type StreamEvent } from '../../src/shared/audit/event-audit.js';

/** The stream audit's hold rules (event-audit.ts checkHoldEvents), on hand-made streams. */
const hold = (status: AuditedHold['status'], id = 'h1'): AuditedHold => ({ id, walletId: 7, status });
const event = (type: string, subject = 'h1'): StreamEvent => ({
  id: `${type}-${subject}`,
  type,
  walletId: 7,
  subject,
  refno: null,
});
const rulesBroken = (events: StreamEvent[], holds: AuditedHold[]) =>
  checkHoldEvents(events, holds).map((violation) => `${violation.rule}: ${violation.detail}`);

describe('checkHoldEvents', () => {
  it('When every hold has its decision event and its one settlement, then nothing is reported', () => {
    const events = [
      event('HoldCreated', 'a'),
      event('HoldRejected', 'b'),
      event('HoldCreated', 'c'),
      event('HoldCaptured', 'a'),
      event('HoldExpired', 'c'),
    ];
    expect(rulesBroken(events, [hold('captured', 'a'), hold('rejected', 'b'), hold('expired', 'c')])).toEqual([]);
    expect(rulesBroken([], [hold('pending')])).toEqual([]);
  });

  it('When a decision event is missing, doubled or of the wrong kind, then event-once is reported', () => {
    expect(rulesBroken([], [hold('active')])).toEqual([
      'event-once: hold h1: 0 HoldCreated and 0 HoldRejected events (active)',
    ]);
    expect(rulesBroken([event('HoldCreated'), event('HoldCreated')], [hold('active')])).toHaveLength(1);
    expect(rulesBroken([event('HoldCreated')], [hold('rejected')])).toHaveLength(1);
    expect(rulesBroken([event('HoldCreated'), event('HoldRejected')], [hold('active')])).toHaveLength(1);
  });

  it('When a hold has two settlements, the wrong one, none once settled, or one while active, then event-once is reported', () => {
    const created = event('HoldCreated');
    expect(rulesBroken([created, event('HoldReleased'), event('HoldExpired')], [hold('released')])).toEqual([
      'event-once: hold h1: settlement events [HoldReleased, HoldExpired] (released)',
    ]);
    expect(rulesBroken([created, event('HoldExpired')], [hold('released')])).toHaveLength(1);
    expect(rulesBroken([created], [hold('captured')])).toHaveLength(1);
    expect(rulesBroken([created, event('HoldCaptured')], [hold('active')])).toEqual([
      'event-once: hold h1: a HoldCaptured event while it is active',
    ]);
  });

  it('When a settlement comes before its HoldCreated, then event-order is reported', () => {
    expect(rulesBroken([event('HoldReleased'), event('HoldCreated')], [hold('released')])).toEqual([
      'event-order: hold h1: HoldReleased before its HoldCreated',
    ]);
  });
});
