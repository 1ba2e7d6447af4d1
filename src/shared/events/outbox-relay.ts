import type { DatabasePool } from 'slonik';
import type { EventStreamPublisher } from './event-stream.js';
import {
  addWebhookDeliveries,
  advanceRelayCursor,
  findEventsAfter,
  readRelayCursor,
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
 * read the cursor and the events after it, publish them to the stream as one batch, then in one
 * short transaction queue their webhook deliveries and advance the cursor. No transaction is open
 * while Redis is called, and the call is abandoned after `publishTimeoutMs`, so an unreachable
 * Redis neither holds a snapshot (vacuum) nor keeps the connection for long.
 *
 * Exactly once per event: if the process dies (or gives up) after publishing and before the
 * cursor commits, the next pass reads the same events again and the stream, whose last entry
 * carries its position, turns them into no-ops, even if the abandoned call reaches Redis later.
 * The deliveries commit with the cursor. Nothing is published for a change that rolled back: its
 * outbox row never committed.
 */
export async function relayOutbox(
  pool: DatabasePool,
  publisher: Pick<EventStreamPublisher, 'publish'>,
  batchSize: number,
  publishTimeoutMs = 5000,
): Promise<RelayResult> {
  return pool.connect(async (connection) => {
    if (!(await tryTakeRelayLock(connection))) return NOTHING;
    try {
      const cursor = await readRelayCursor(connection);
      const events = await findEventsAfter(connection, cursor, batchSize);
      if (events.length === 0) return NOTHING;
      await within(
        publisher.publish(events, cursor.position),
        publishTimeoutMs,
        () => new PublishTimeoutError(`publishing to the event stream took over ${publishTimeoutMs} ms`),
      );
      const subscriptionsToNotify = await connection.transaction(async (tx) => {
        const subscriptions = await addWebhookDeliveries(tx, events);
        await advanceRelayCursor(tx, events.at(-1)!);
        return subscriptions;
      });
      return { relayed: events.length, subscriptionsToNotify };
    } finally {
      await releaseRelayLock(connection);
    }
  });
}
