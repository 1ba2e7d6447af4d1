import type { DatabasePool } from 'slonik';
import type { OutboxEvent } from './cloud-events.js';
import type { EventStreamPublisher } from './event-stream.js';
import {
  addWebhookDeliveries,
  findUnpublishedEvents,
  markPublished,
  releaseRelayLock,
  tryTakeRelayLock,
} from './outbox-repository.js';
import { within } from '../infra/time-limit.js';

export interface RelayResult {
  /** Events this pass handed on (0 when another relay held the lock or nothing was waiting). */
  relayed: number;
  /** Webhook subscriptions that got new deliveries: each needs a delivery job. */
  subscriptionsToNotify: readonly number[];
}

/** Publishing gave up: Redis did not answer within the relay's bound. */
export class PublishTimeoutError extends Error {}

const NOTHING: RelayResult = { relayed: 0, subscriptionsToNotify: [] };

/**
 * One pass of the outbox relay, holding a session advisory lock that makes it the only relay:
 * read the oldest unpublished events, publish them to the stream as one batch, then in one short
 * transaction queue their webhook deliveries and mark them published. No transaction is open
 * while Redis is called, and the call is abandoned after `publishTimeoutMs`, so an unreachable
 * Redis neither holds a snapshot (vacuum) nor keeps the connection for long.
 *
 * Exactly once per event: if the process dies (or gives up) after publishing and before the
 * marks commit, the next pass reads the same rows again and the stream's in-flight set turns them
 * into no-ops, even if the abandoned call reaches Redis later. The deliveries commit with the
 * marks. Nothing is published for a change that rolled back: its event row never committed.
 */
export async function relayOutbox(
  pool: DatabasePool,
  publisher: Pick<EventStreamPublisher, 'publish' | 'forget'>,
  batchSize: number,
  publishTimeoutMs = 5000,
): Promise<RelayResult> {
  let published: readonly OutboxEvent[] = [];
  const result = await pool.connect(async (connection) => {
    if (!(await tryTakeRelayLock(connection))) return NOTHING;
    try {
      const events = await findUnpublishedEvents(connection, batchSize);
      if (events.length === 0) return NOTHING;
      await within(
        publisher.publish(events),
        publishTimeoutMs,
        () => new PublishTimeoutError(`publishing to the event stream took over ${publishTimeoutMs} ms`),
      );
      const ids = events.map((event) => event.id);
      const subscriptionsToNotify = await connection.transaction(async (tx) => {
        const subscriptions = await addWebhookDeliveries(tx, ids);
        await markPublished(tx, ids);
        return subscriptions;
      });
      published = events;
      return { relayed: events.length, subscriptionsToNotify };
    } finally {
      await releaseRelayLock(connection);
    }
  });
  // Committed: these rows will never be read again, so their in-flight ids are not needed. Should
  // Redis fail right now, the ids only linger until the set expires: the pass itself succeeded.
  await publisher.forget(published).catch(() => undefined);
  return result;
}
