import { isCluster, type RedisClient } from '../infra/redis.js';
import { toCloudEvent, type OutboxEvent } from './cloud-events.js';

/**
 * Publishes outbox events to a Redis Stream, each at most once, a whole batch in one Lua call.
 * Every entry carries its outbox position (`pos`), and positions only grow (see outbox-repository):
 * the script adds an event only if its position is past both the relay's cursor in Postgres
 * (`floor`, which survives the loss of the stream) and the position of the stream's last entry.
 * So a relay that published and then died (or gave up waiting) before advancing its cursor
 * republishes nothing, even if its abandoned call reaches Redis after the next pass. Events of
 * the per-event outbox before migration 005 are also skipped when the old relay's set of
 * in-flight ids names them (it had published them but not yet marked them).
 *
 * Trimming never drops an entry a consumer group has not yet read and acknowledged: the stream
 * keeps `maxLength` newest entries (at least one, the tail that holds the position), or more
 * while a group is behind (`slowestGroupLag`).
 */
const PUBLISH_BATCH = `
local stream, legacyInflight = KEYS[1], KEYS[2]
local maxLength, trimCap, floor = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local tail = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
if #tail > 0 then
  local fields = tail[1][2]
  for j = 1, #fields, 2 do
    if fields[j] == 'pos' and fields[j + 1] > floor then floor = fields[j + 1] end
  end
end
local added = 0
for i = 4, #ARGV, 4 do
  local pos, legacyId = ARGV[i], ARGV[i + 3]
  if pos > floor and (legacyId == '' or redis.call('SISMEMBER', legacyInflight, legacyId) == 0) then
    redis.call('XADD', stream, '*', 'type', ARGV[i + 1], 'event', ARGV[i + 2], 'pos', pos)
    floor = pos
    added = added + 1
  end
end

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

/** Most entries one publish trims: bounds the work of a call after a slow group catches up. */
const TRIM_CAP = 1000;

export function eventStreamKey(prefix: string): string {
  return `${prefix}:events`;
}

export class EventStreamPublisher {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly maxLength = 100_000,
  ) {}

  /**
   * The pre-005 relay's set of ids published but not yet marked (read only; it expires by itself).
   * The script's two keys must share a slot on a cluster: there it is `{<prefix>:events}:inflight`,
   * which hashes as the stream's own name. No pre-005 relay ever ran on a cluster (the service
   * did not start on one before the queue shards), so that set is always empty there.
   */
  private get legacyInflightKey(): string {
    const stream = eventStreamKey(this.prefix);
    return isCluster(this.redis) ? `{${stream}}:inflight` : `${stream}:inflight`;
  }

  /**
   * Publishes in position order, in one atomic call, the events past `floor` (the position up to
   * which the relay's cursor says everything is published); returns how many were new to the stream.
   */
  async publish(events: readonly OutboxEvent[], floor: string): Promise<number> {
    if (events.length === 0) return 0;
    const args = events.flatMap((event) => [
      event.position,
      event.type,
      toCloudEvent(event),
      event.legacyId === null ? '' : String(event.legacyId),
    ]);
    const added = await this.redis.eval(
      PUBLISH_BATCH,
      2,
      eventStreamKey(this.prefix),
      this.legacyInflightKey,
      Math.max(1, this.maxLength),
      TRIM_CAP,
      floor,
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
