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
 *
 * Trimming never drops an entry a consumer group has not yet read and acknowledged: the stream
 * keeps `maxLength` newest entries, or more while a group is behind (`slowestGroupLag`).
 */
const PUBLISH_BATCH = `
local stream, inflight = KEYS[1], KEYS[2]
local ttl, maxLength, trimCap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local added = 0
for i = 4, #ARGV, 3 do
  if redis.call('SADD', inflight, ARGV[i]) == 1 then
    redis.call('XADD', stream, '*', 'type', ARGV[i + 1], 'event', ARGV[i + 2])
    added = added + 1
  end
end
redis.call('EXPIRE', inflight, ttl)

-- Stream ids as {ms, seq}; ms fits a double exactly, seq of '*' ids stays small.
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return { tonumber(ms), tonumber(seq) }
end
local function before(a, b)
  return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2])
end

local excess = redis.call('XLEN', stream) - maxLength
if excess <= 0 then return added end
if excess > trimCap then excess = trimCap end
-- Cut by length: entries before the (excess+1)-th go...
local head = redis.call('XRANGE', stream, '-', '+', 'COUNT', excess + 1)
local cut = parse(head[#head][1])
-- ...but none a group still needs: its oldest pending entry, or the first after its last read.
for _, group in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
  local info = {}
  for j = 1, #group, 2 do info[group[j]] = group[j + 1] end
  local keep
  if tonumber(info['pending']) > 0 then
    keep = parse(redis.call('XPENDING', stream, info['name'])[2])
  else
    local last = parse(info['last-delivered-id'])
    keep = { last[1], last[2] + 1 }
  end
  if before(keep, cut) then cut = keep end
end
redis.call('XTRIM', stream, 'MINID', string.format('%.0f-%.0f', cut[1], cut[2]))
return added
`;

/** How long an id stays in the in-flight set without being forgotten (a relay that died mid-way). */
const INFLIGHT_TTL_S = 24 * 3600;
/** Most entries one publish trims: bounds the work of a call after a slow group catches up. */
const TRIM_CAP = 1000;

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
      TRIM_CAP,
      ...args,
    );
    return Number(added);
  }

  /**
   * Entries not yet delivered to the slowest consumer group (0 without groups): what trimming
   * must keep, and what grows without bound behind a group nobody reads any more.
   */
  async slowestGroupLag(): Promise<number> {
    const stream = eventStreamKey(this.prefix);
    const groups = (await this.redis.xinfo('GROUPS', stream).catch((error: Error) => {
      if (/no such key/i.test(error.message)) return [];
      throw error;
    })) as unknown[][];
    let slowest = 0;
    for (const group of groups) {
      const lag = group[group.indexOf('lag') + 1];
      // Redis cannot always tell (after XDEL); then the whole stream is the honest upper bound.
      slowest = Math.max(slowest, typeof lag === 'number' ? lag : await this.redis.xlen(stream));
    }
    return slowest;
  }
}
