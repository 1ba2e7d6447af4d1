import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import type { RedisClient } from '../infra/redis.js';
import { findTransferStatuses, type TransferStatus } from '../transfers/transfer-repository.js';

/**
 * The event stream checked against the ledger, after the relay has caught up: every transaction
 * reserved has exactly one TransactionCreated, every decided one exactly one BalanceChanged (and
 * a TransactionVoid for an applied reversal) or TransactionRejected, no event id twice, and per
 * wallet the BalanceChanged events follow refno order, each after its TransactionCreated.
 * Every decided hold has exactly one HoldCreated (HoldRejected if it was rejected), and at most one
 * settlement event (HoldCaptured, HoldReleased or HoldExpired), exactly the one of its status once
 * settled, after its HoldCreated (checkHoldEvents). Every transfer has one TransferCreated and the
 * outcome events of its state (checkTransferEvents); transfers made before migration 010 are left
 * out (findTransferStatuses).
 * Transactions reserved before migration 005 (stored ids) and holds made before migration 009 are
 * left out: their events may predate the stream or were never written. The stream must not have
 * been trimmed past them (EVENT_STREAM_MAX_LENGTH).
 */
export interface EventViolation {
  rule: 'event-once' | 'event-order' | 'event-id-unique';
  walletId: number | null;
  transactionId: string | null;
  detail: string;
}

export interface StreamEvent {
  id: string;
  type: string;
  walletId: number;
  subject: string;
  refno: number | null;
}

const streamEventSchema = z.object({
  id: z.string(),
  type: z.string(),
  walletid: z.string(),
  data: z
    .object({
      id: z.union([z.string(), z.number()]).optional(),
      transactionId: z.string().optional(),
      reversalId: z.string().optional(),
      refno: z.number().optional(),
      holdId: z.string().optional(),
      transferId: z.string().optional(),
    })
    .passthrough(),
});

/** What an event is about, as the audit keys it: the id its data names for its type. */
function subjectOf({ type, data }: z.infer<typeof streamEventSchema>): string | number | undefined {
  if (type === 'TransactionCreated' || type === 'WalletCreated' || type === 'TransferCreated') return data.id;
  if (type === 'TransactionVoid') return data.reversalId;
  if (type.startsWith('Hold')) return data.holdId;
  if (type.startsWith('Transfer')) return data.transferId;
  return data.transactionId;
}

/** Every event in the stream, oldest first, read in pages. */
export async function readStream(redis: RedisClient, stream: string): Promise<StreamEvent[]> {
  const events: StreamEvent[] = [];
  let from = '-';
  for (;;) {
    const page = await redis.xrange(stream, from, '+', 'COUNT', 1000);
    for (const [, fields] of page) {
      const parsed = streamEventSchema.parse(JSON.parse(fields[fields.indexOf('event') + 1] ?? '{}'));
      events.push({
        id: parsed.id,
        type: parsed.type,
        walletId: Number(parsed.walletid),
        subject: String(subjectOf(parsed)),
        refno: parsed.data.refno ?? null,
      });
    }
    if (page.length < 1000) return events;
    from = `(${page.at(-1)![0]}`; // strictly after the last entry read
  }
}

const decidedSchema = z.object({
  id: z.string(),
  walletId: z.number(),
  status: z.string(),
  refno: z.number().nullable(),
  isReversal: z.boolean(),
});

export async function auditEventStream(
  pool: DatabasePool,
  redis: RedisClient,
  stream: string,
): Promise<EventViolation[]> {
  const events = await readStream(redis, stream);
  const transactions = await pool.any(sql.type(decidedSchema)`
    SELECT transaction_id(wallet_id, seq)::text AS id, wallet_id AS "walletId", status, refno,
           voids IS NOT NULL AS "isReversal"
    FROM transactions WHERE id IS NULL
  `);
  const violations: EventViolation[] = [];
  const ids = new Map<string, number>();
  for (const event of events) ids.set(event.id, (ids.get(event.id) ?? 0) + 1);
  for (const [id, count] of ids) {
    if (count > 1)
      violations.push({
        rule: 'event-id-unique',
        walletId: null,
        transactionId: null,
        detail: `event id ${id} ${count} times`,
      });
  }
  const positions = new Map<string, number[]>();
  events.forEach((event, index) => {
    const key = `${event.type}:${event.subject}`;
    positions.set(key, [...(positions.get(key) ?? []), index]);
  });
  const once = (transaction: z.infer<typeof decidedSchema>, type: string): number | null => {
    const found = positions.get(`${type}:${transaction.id}`) ?? [];
    if (found.length !== 1) {
      violations.push({
        rule: 'event-once',
        walletId: transaction.walletId,
        transactionId: transaction.id,
        detail: `${found.length} ${type} events (${transaction.status})`,
      });
    }
    return found[0] ?? null;
  };
  for (const transaction of transactions) {
    const created = once(transaction, 'TransactionCreated');
    if (transaction.status === 'pending') continue;
    const decidedType = transaction.status === 'rejected' ? 'TransactionRejected' : 'BalanceChanged';
    const decided = once(transaction, decidedType);
    if (transaction.isReversal && transaction.status === 'applied') once(transaction, 'TransactionVoid');
    if (created !== null && decided !== null && decided < created) {
      violations.push({
        rule: 'event-order',
        walletId: transaction.walletId,
        transactionId: transaction.id,
        detail: `${decidedType} before its TransactionCreated`,
      });
    }
  }
  // Per wallet, BalanceChanged in refno order.
  const lastRefno = new Map<number, number>();
  for (const event of events) {
    if (event.type !== 'BalanceChanged' || event.refno === null) continue;
    const previous = lastRefno.get(event.walletId) ?? 0;
    if (event.refno <= previous) {
      violations.push({
        rule: 'event-order',
        walletId: event.walletId,
        transactionId: event.subject,
        detail: `BalanceChanged of refno ${event.refno} after refno ${previous}`,
      });
    }
    lastRefno.set(event.walletId, Math.max(previous, event.refno));
  }
  const holds = await pool.any(sql.type(auditedHoldSchema)`
    SELECT id, wallet_id AS "walletId", status FROM holds
    WHERE created >= coalesce((SELECT applied_at FROM schema_migrations WHERE name LIKE '009%'), '-infinity')
  `);
  violations.push(...checkHoldEvents(events, holds));
  violations.push(...checkTransferEvents(events, await findTransferStatuses(pool)));
  return violations;
}

export type AuditedTransfer = { id: string; from: number; status: TransferStatus };

/**
 * The transfer rules over the stream (oldest first): one TransferCreated per transfer; once its
 * debit is decided, one TransferRejected (rejected) or one TransferCompleted (completed, and any
 * void's state after it), never both; one TransferVoid once voided, none before; none of them
 * before its TransferCreated. (TransferVoidRejected may come once per refused void attempt.)
 */
export function checkTransferEvents(
  events: readonly StreamEvent[],
  transfers: readonly AuditedTransfer[],
): EventViolation[] {
  const byTransfer = new Map<string, { type: string; index: number }[]>();
  events.forEach((event, index) => {
    if (!event.type.startsWith('Transfer')) return;
    byTransfer.set(event.subject, [...(byTransfer.get(event.subject) ?? []), { type: event.type, index }]);
  });
  const violations: EventViolation[] = [];
  for (const transfer of transfers) {
    const found = byTransfer.get(transfer.id) ?? [];
    const count = (type: string) => found.filter((event) => event.type === type).length;
    const completed = ['completed', 'voiding', 'voided'].includes(transfer.status);
    const expected: Record<string, number> = {
      TransferCreated: 1,
      TransferCompleted: completed ? 1 : 0,
      TransferRejected: transfer.status === 'rejected' ? 1 : 0,
      TransferVoid: transfer.status === 'voided' ? 1 : 0,
    };
    const wrong = Object.entries(expected).filter(([type, n]) => count(type) !== n);
    const violation = (rule: EventViolation['rule'], detail: string) =>
      violations.push({
        rule,
        walletId: transfer.from,
        transactionId: null,
        detail: `transfer ${transfer.id}: ${detail}`,
      });
    if (wrong.length > 0) {
      violation(
        'event-once',
        `${wrong.map(([type]) => `${count(type)} ${type}`).join(', ')} events (${transfer.status})`,
      );
    }
    const created = found.find((event) => event.type === 'TransferCreated');
    for (const event of found) {
      if (event.type !== 'TransferCreated' && (created === undefined || event.index < created.index)) {
        violation('event-order', `${event.type} before its TransferCreated`);
      }
    }
  }
  return violations;
}

const auditedHoldSchema = z.object({
  id: z.string(),
  walletId: z.number(),
  status: z.enum(['pending', 'active', 'rejected', 'captured', 'released', 'expired']),
});
export type AuditedHold = z.infer<typeof auditedHoldSchema>;

const SETTLEMENT_TYPES = { captured: 'HoldCaptured', released: 'HoldReleased', expired: 'HoldExpired' } as const;

/**
 * The hold rules over the stream (oldest first): one decision event per decided hold (HoldCreated,
 * or HoldRejected when rejected), none for a pending one; at most one settlement event per hold,
 * of its status's type once it is captured, released or expired, and none before its HoldCreated.
 */
export function checkHoldEvents(events: readonly StreamEvent[], holds: readonly AuditedHold[]): EventViolation[] {
  const byHold = new Map<string, { type: string; index: number }[]>();
  events.forEach((event, index) => {
    if (!event.type.startsWith('Hold')) return;
    byHold.set(event.subject, [...(byHold.get(event.subject) ?? []), { type: event.type, index }]);
  });
  const violations: EventViolation[] = [];
  const violation = (rule: EventViolation['rule'], hold: AuditedHold, detail: string) =>
    violations.push({ rule, walletId: hold.walletId, transactionId: null, detail: `hold ${hold.id}: ${detail}` });
  for (const hold of holds) {
    const found = byHold.get(hold.id) ?? [];
    const count = (type: string) => found.filter((event) => event.type === type).length;
    const decidedType = hold.status === 'rejected' ? 'HoldRejected' : 'HoldCreated';
    const otherDecision = hold.status === 'rejected' ? 'HoldCreated' : 'HoldRejected';
    const expected = hold.status === 'pending' ? 0 : 1;
    if (count(decidedType) !== expected || count(otherDecision) !== 0) {
      violation(
        'event-once',
        hold,
        `${count('HoldCreated')} HoldCreated and ${count('HoldRejected')} HoldRejected events (${hold.status})`,
      );
    }
    const settlements = found.filter((event) => Object.values<string>(SETTLEMENT_TYPES).includes(event.type));
    const settledType =
      hold.status in SETTLEMENT_TYPES ? SETTLEMENT_TYPES[hold.status as keyof typeof SETTLEMENT_TYPES] : null;
    if (
      settlements.length > 1 ||
      (settledType !== null && (settlements.length !== 1 || settlements[0]!.type !== settledType))
    ) {
      violation(
        'event-once',
        hold,
        `settlement events [${settlements.map((event) => event.type).join(', ')}] (${hold.status})`,
      );
    } else if (settledType === null && settlements.length > 0) {
      violation('event-once', hold, `a ${settlements[0]!.type} event while it is ${hold.status}`);
    }
    const created = found.find((event) => event.type === 'HoldCreated');
    for (const settlement of settlements) {
      if (created === undefined || settlement.index < created.index) {
        violation('event-order', hold, `${settlement.type} before its HoldCreated`);
      }
    }
  }
  return violations;
}

export function describeEventViolation(violation: EventViolation): string {
  const where = [
    violation.walletId === null ? null : `wallet ${violation.walletId}`,
    violation.transactionId === null ? null : `transaction ${violation.transactionId}`,
  ]
    .filter(Boolean)
    .join(', ');
  return `${violation.rule}: ${where ? `${where}: ` : ''}${violation.detail}`;
}
