import type { Redis } from '../infra/redis.js';
import { toCloudEvent, type OutboxEvent } from './cloud-events.js';

/**
 * Publishes outbox events to a Redis Stream, at most once per event: a marker key per event id
 * is set in the same Lua call as the XADD, so a relay that published and then died before it
 * could mark the rows republishes nothing. Once the rows are marked published the markers are
 * deleted (`forget`); the expiry only cleans up after a relay that died in between.
 * Consumers read with consumer groups.
 */
const PUBLISH_ONCE = `
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', tonumber(ARGV[3])) then
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', tonumber(ARGV[4]), '*', 'type', ARGV[2], 'event', ARGV[1])
end
return false
`;

const MARKER_TTL_S = 24 * 3600;

export function eventStreamKey(prefix: string): string {
  return `${prefix}:events`;
}

export class EventStreamPublisher {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly maxLength = 100_000,
  ) {}

  private markerKey(event: OutboxEvent): string {
    return `${this.prefix}:events:published:${event.eventId}`;
  }

  /** Drops the markers of events whose rows are now marked published: they cannot be relayed again. */
  async forget(events: readonly OutboxEvent[]): Promise<void> {
    if (events.length > 0) await this.redis.unlink(...events.map((event) => this.markerKey(event)));
  }

  /** Publishes in order; returns how many were new to the stream. */
  async publish(events: readonly OutboxEvent[]): Promise<number> {
    if (events.length === 0) return 0;
    const pipeline = this.redis.pipeline();
    for (const event of events) {
      pipeline.eval(
        PUBLISH_ONCE,
        2,
        eventStreamKey(this.prefix),
        this.markerKey(event),
        toCloudEvent(event),
        event.type,
        MARKER_TTL_S,
        this.maxLength,
      );
    }
    const results = (await pipeline.exec()) ?? [];
    let added = 0;
    for (const [error, id] of results) {
      if (error) throw error;
      if (id) added += 1;
    }
    return added;
  }
}
