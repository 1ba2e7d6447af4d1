import type { DatabasePool } from 'slonik';
import type { OutboxEvent } from './cloud-events.js';
import type { EventStreamPublisher } from './event-stream.js';
import { addWebhookDeliveries, findUnpublishedEvents, markPublished, tryTakeRelayLock } from './outbox-repository.js';

export interface RelayResult {
  /** Events this pass handed on (0 when another relay held the lock or nothing was waiting). */
  relayed: number;
  /** Webhook subscriptions that got new deliveries: each needs a delivery job. */
  subscriptionsToNotify: readonly number[];
}

/**
 * One pass of the outbox relay. In one database transaction, holding a lock that makes it the
 * only relay: read the oldest unpublished events, publish them to the stream, queue their webhook
 * deliveries, mark them published. If the process dies after publishing and before the commit,
 * the next pass publishes them again and the stream's per-event marker drops the repeats; the
 * deliveries were rolled back with the marks and are queued again. Nothing is published for a
 * change that rolled back, because its event row never committed.
 */
export async function relayOutbox(
  pool: DatabasePool,
  publisher: Pick<EventStreamPublisher, 'publish' | 'forget'>,
  batchSize: number,
): Promise<RelayResult> {
  let published: readonly OutboxEvent[] = [];
  const result = await pool.transaction(async (tx) => {
    if (!(await tryTakeRelayLock(tx))) return { relayed: 0, subscriptionsToNotify: [] };
    const events = await findUnpublishedEvents(tx, batchSize);
    if (events.length === 0) return { relayed: 0, subscriptionsToNotify: [] };
    await publisher.publish(events);
    const ids = events.map((event) => event.id);
    const subscriptionsToNotify = await addWebhookDeliveries(tx, ids);
    await markPublished(tx, ids);
    published = events;
    return { relayed: events.length, subscriptionsToNotify };
  });
  // Committed: these rows will never be read again, so their stream markers are not needed.
  await publisher.forget(published);
  return result;
}
