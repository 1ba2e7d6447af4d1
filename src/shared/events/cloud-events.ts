/** events: the outbox, its relay to the Redis event stream, and signed webhook deliveries, all as CloudEvents. */

/** The outbox's event types, as published (CloudEvents `type`). */
export const EVENT_TYPES = [
  'WalletCreated',
  'TransactionCreated',
  'BalanceChanged',
  'TransactionRejected',
  'TransactionVoid',
  'TransferCreated',
  'TransferCompleted',
  'TransferRejected',
  'TransferVoid',
  'TransferVoidRejected',
  'HoldCreated',
  'HoldRejected',
  'HoldCaptured',
  'HoldReleased',
  'HoldExpired',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/**
 * An event as the relay builds it from an outbox row. Its position (the writing database
 * transaction's xid8, the outbox row, the event's place in the row) orders every event; `position`
 * spells it as fixed-width digits, so it also compares as text (in Redis Lua, for instance).
 */
export interface OutboxEvent {
  position: string;
  xid: string;
  row: number;
  ordinal: number;
  eventId: string;
  walletId: number;
  type: string;
  subject: string | null;
  /** The event's data as JSON text, exactly as Postgres wrote it (NUMERIC amounts stay exact). */
  data: string;
  created: string;
  /** Events of the per-event outbox before migration 005 carry their old id (see event-stream.ts). */
  legacyId: number | null;
}

/**
 * The event as a CloudEvents 1.0 JSON document (structured mode). `walletid` (to partition by)
 * and `sequence` (the outbox position, increasing in publish order and comparable as text) are
 * extension attributes.
 */
export function toCloudEvent(event: OutboxEvent): string {
  const envelope = {
    specversion: '1.0',
    id: event.eventId,
    source: `/wallets/${event.walletId}`,
    type: event.type,
    ...(event.subject === null ? {} : { subject: event.subject }),
    time: event.created,
    datacontenttype: 'application/json',
    walletid: String(event.walletId),
    sequence: event.position,
  };
  // Spliced in as text so that amounts are never re-read as JS floats.
  return `${JSON.stringify(envelope).slice(0, -1)},"data":${event.data}}`;
}
