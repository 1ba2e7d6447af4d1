import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import type { RedisClient } from '../infra/redis.js';

/**
 * The event stream checked against the ledger, after the relay has caught up: every transaction
 * reserved has exactly one TransactionCreated, every decided one exactly one BalanceChanged (and
 * a TransactionVoid for an applied reversal) or TransactionRejected, no event id twice, and per
 * wallet the BalanceChanged events follow refno order, each after its TransactionCreated.
 * Transactions reserved before migration 005 (stored ids) are left out: their events may predate
 * the stream. The stream must not have been trimmed past them (EVENT_STREAM_MAX_LENGTH).
 */
export interface EventViolation {
  rule: 'event-once' | 'event-order' | 'event-id-unique';
  walletId: number | null;
  transactionId: string | null;
  detail: string;
}

interface StreamEvent {
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
    })
    .passthrough(),
});

/** Every event in the stream, oldest first, read in pages. */
export async function readStream(redis: RedisClient, stream: string): Promise<StreamEvent[]> {
  const events: StreamEvent[] = [];
  let from = '-';
  for (;;) {
    const page = await redis.xrange(stream, from, '+', 'COUNT', 1000);
    for (const [, fields] of page) {
      const parsed = streamEventSchema.parse(JSON.parse(fields[fields.indexOf('event') + 1] ?? '{}'));
      const subject =
        parsed.type === 'TransactionCreated'
          ? parsed.data.id
          : parsed.type === 'TransactionVoid'
            ? parsed.data.reversalId
            : parsed.type === 'WalletCreated'
              ? parsed.data.id
              : parsed.data.transactionId;
      events.push({
        id: parsed.id,
        type: parsed.type,
        walletId: Number(parsed.walletid),
        subject: String(subject),
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
