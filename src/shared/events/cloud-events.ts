/** events: the outbox, its relay to the Redis event stream, and signed webhook deliveries, all as CloudEvents. */

/** The outbox's event types, as published (CloudEvents `type`). */
export const EVENT_TYPES = [
  'WalletCreated',
  'TransactionCreated',
  'BalanceChanged',
  'TransactionRejected',
  'TransactionVoid',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface OutboxEvent {
  /** Position in the outbox; increases in the order events were written. */
  id: number;
  eventId: string;
  walletId: number;
  type: string;
  subject: string | null;
  /** The event's data as JSON text, exactly as stored (NUMERIC amounts stay exact). */
  data: string;
  created: string;
}

/**
 * The event as a CloudEvents 1.0 JSON document (structured mode). `walletid` (to partition by)
 * and `sequence` (the outbox position) are extension attributes. `sequence` is assigned when the
 * change is written, not when it commits, so it can go backwards between two events of one wallet
 * written by concurrent transactions: consumers follow the stream's (or the webhook's) order.
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
    sequence: String(event.id),
  };
  // Spliced in as text so that amounts are never re-read as JS floats.
  return `${JSON.stringify(envelope).slice(0, -1)},"data":${event.data}}`;
}
