/** apply: frees a wallet whose deduplication key points at a job that will never run. */
import { walletDeduplicationId, type ApplyQueue } from '../infra/queue.js';
import type { RedisClient } from '../infra/redis.js';

/**
 * BullMQ drops every add of a wallet while the wallet's deduplication key (`de:wallet:W`, no
 * expiry under keepLastIfActive) names another job, and clears that key only when the job
 * finishes or its hash is gone. After a partial loss of Redis keys (failover that drops the last
 * writes, eviction, an operator's SCAN | DEL) the key can name a job whose hash survived but that
 * sits in no list: nothing will ever run or finish it, so the wallet is stuck for good.
 *
 * The check and the delete run in one script, so a key that names a job that is waiting, delayed,
 * prioritized, paused, waiting for children, or active under a lock is never removed, even if it
 * became valid a moment ago. An active job without a lock is taken as stuck too: its worker is gone
 * (or lost its lock), and the ledger's optimistic version check makes a second applier harmless.
 * The `dn:` hash (the add stored while the job was active) goes too, as in BullMQ's own recovery
 * of a key whose job hash is missing: the add that follows the release replaces it.
 *
 * KEYS: dedup key, dedup-next key, wait, paused, active, delayed, prioritized, waiting-children.
 * ARGV: the queue's key prefix (`<prefix>:<queue>:`), to which a job id is appended.
 * Returns 1 when it removed the key, 0 when there was none or it named a job that can still run.
 */
const RELEASE_IF_STUCK = `
local jobId = redis.call('GET', KEYS[1])
if not jobId then return 0 end
local jobKey = ARGV[1] .. jobId
if redis.call('EXISTS', jobKey) == 1 then
  if redis.call('LPOS', KEYS[3], jobId) or redis.call('LPOS', KEYS[4], jobId)
    or redis.call('ZSCORE', KEYS[6], jobId) or redis.call('ZSCORE', KEYS[7], jobId)
    or redis.call('ZSCORE', KEYS[8], jobId) then
    return 0
  end
  if redis.call('LPOS', KEYS[5], jobId) and redis.call('EXISTS', jobKey .. ':lock') == 1 then
    return 0
  end
end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
`;

/**
 * Removes the wallet's deduplication key if the job it names cannot move any more, so that the
 * next enqueue creates a fresh job. `redis` is a connection to the queue's Redis (the queue only
 * names the keys; the wallet's shard holds them). Returns whether it removed one.
 */
export async function releaseStuckWallet(redis: RedisClient, queue: ApplyQueue, walletId: number): Promise<boolean> {
  const deduplicationId = walletDeduplicationId(walletId);
  // The wallet's own shard: every key below shares its hash tag (one cluster slot).
  const shard = queue.forWallet(walletId);
  const removed = await redis.eval(
    RELEASE_IF_STUCK,
    8,
    shard.toKey(`de:${deduplicationId}`),
    shard.toKey(`dn:${deduplicationId}`),
    shard.toKey('wait'),
    shard.toKey('paused'),
    shard.toKey('active'),
    shard.toKey('delayed'),
    shard.toKey('prioritized'),
    shard.toKey('waiting-children'),
    shard.toKey(''),
  );
  return removed === 1;
}
