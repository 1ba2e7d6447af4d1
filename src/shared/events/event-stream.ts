import type { Redis } from '../infra/redis.js';
import { toCloudEvent, type OutboxEvent } from './cloud-events.js';

/**
 * Publishes outbox events to a Redis Stream, at most once per event, a whole batch in one Lua
 * call. A set holds the outbox ids published but not yet known to be marked in Postgres: the
 * script adds an event only if SADD says its id is new, in the same atomic call as its XADD. A
 * relay that published and then died (or gave up waiting) before marking the rows republishes
 * nothing; once the rows are marked their ids leave the set (`forget`). The set, not a high-water
 * mark, because outbox ids are taken at insert and committed out of order: an event with a lower
 * id can become visible after higher ones were published, and must still go out.
 */
const PUBLISH_BATCH = `
local stream, inflight = KEYS[1], KEYS[2]
local ttl, maxLength = tonumber(ARGV[1]), tonumber(ARGV[2])
local added = 0
for i = 3, #ARGV, 3 do
  if redis.call('SADD', inflight, ARGV[i]) == 1 then
    redis.call('XADD', stream, 'MAXLEN', '~', maxLength, '*', 'type', ARGV[i + 1], 'event', ARGV[i + 2])
    added = added + 1
  end
end
redis.call('EXPIRE', inflight, ttl)
return added
`;

/** How long an id stays in the in-flight set without being forgotten (a relay that died mid-way). */
const INFLIGHT_TTL_S = 24 * 3600;

export function eventStreamKey(prefix: string): string {
  return `${prefix}:events`;
}

export class EventStreamPublisher {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly maxLength = 100_000,
  ) {}

  private get inflightKey(): string {
    return `${this.prefix}:events:inflight`;
  }

  /** Drops the ids of events whose rows are now marked published: they cannot be relayed again. */
  async forget(events: readonly OutboxEvent[]): Promise<void> {
    if (events.length > 0) await this.redis.srem(this.inflightKey, ...events.map((event) => String(event.id)));
  }

  /** Publishes in order, in one atomic call; returns how many were new to the stream. */
  async publish(events: readonly OutboxEvent[]): Promise<number> {
    if (events.length === 0) return 0;
    const args = events.flatMap((event) => [String(event.id), event.type, toCloudEvent(event)]);
    const added = await this.redis.eval(
      PUBLISH_BATCH,
      2,
      eventStreamKey(this.prefix),
      this.inflightKey,
      INFLIGHT_TTL_S,
      this.maxLength,
      ...args,
    );
    return Number(added);
  }
}
