import { isCluster, type RedisClient } from '../infra/redis.js';
import type { Logger } from '../infra/logger.js';
import { GroupCommitter, type ItemResult } from '../infra/group-commit.js';

/** Requests that arrive while a check is in flight share the next one (no added delay). */
const RATE_LIMIT_GROUPS = { maxSize: 256, maxDelayMs: 0, maxInFlight: 2, timeoutMs: 2_000 };

/**
 * A token bucket per caller, kept in Redis so every API process shares it: `perSecond` tokens
 * flow in each second up to `burst`; each request takes one. The whole step is one Lua script
 * (atomic), timed by Redis's own clock so API hosts with skewed clocks agree. One call takes the
 * tokens of several requests of the caller at once (ARGV[3], default 1) and answers how many it
 * granted, so a burst of concurrent requests costs one script run, not one each. ARGV[4], when
 * given, is the time in ms instead of Redis's (a test's clock).
 */
const TOKEN_BUCKET = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3]) or 1
local now = tonumber(ARGV[4])
if not now then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
local wait_ms = 0
if granted < want then
  wait_ms = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return { granted, math.floor(tokens), wait_ms }
`;

export interface RateLimitDecision {
  allowed: boolean;
  /** The bucket's size: the most requests that may arrive at once. */
  limit: number;
  remaining: number;
  /** When refused: whole seconds until a request would be let through (at least 1). */
  retryAfterSeconds: number;
}

export interface RateLimiterOptions {
  perSecond: number;
  burst: number;
  /** Namespace of the limiter's Redis keys, e.g. the service's QUEUE_PREFIX. */
  prefix: string;
  /** The buckets' clock in ms. Unset (the service): Redis's own. Tests pass a clock they move by hand. */
  now?: () => number;
}

/** A client that knows the script defined in the constructor. */
type TokenBucketCommand = {
  walletTokenBucket(key: string, rate: number, burst: number, want: number, ...now: number[]): Promise<unknown>;
};

/** A pipeline that knows the script defined in the constructor. */
type TokenBucketPipeline = ReturnType<RedisClient['pipeline']> & {
  walletTokenBucket(key: string, rate: number, burst: number, want: number, ...now: number[]): TokenBucketPipeline;
};

/**
 * Redis-backed rate limiter. It fails open: while Redis is unreachable every request is let
 * through (and that is logged, at most every 30 s), because refusing all traffic, or answering
 * 500, for want of a counter would be worse than briefly not limiting.
 */
export class RateLimiter {
  private readonly redis: RedisClient;
  private readonly groups: GroupCommitter<string, RateLimitDecision | null>;
  private lastWarning = 0;

  constructor(
    redis: RedisClient,
    private readonly options: RateLimiterOptions,
    private readonly logger: Logger,
  ) {
    if (!('walletTokenBucket' in redis)) {
      redis.defineCommand('walletTokenBucket', { numberOfKeys: 1, lua: TOKEN_BUCKET });
    }
    this.redis = redis;
    this.groups = new GroupCommitter((callers) => this.takeGroup(callers), RATE_LIMIT_GROUPS);
  }

  get enabled(): boolean {
    return this.options.perSecond > 0;
  }

  /** Takes one token for `caller`; null when there is no decision (limiting off, or Redis away). */
  async take(caller: string): Promise<RateLimitDecision | null> {
    if (!this.enabled) return null;
    if (this.redis.status !== 'ready') {
      this.warn(new Error(`redis connection is ${this.redis.status}`));
      return null;
    }
    return this.groups.submit(caller).catch((error: unknown) => {
      this.warn(error); // no answer in time: fail open, as when Redis is away
      return null;
    });
  }

  /**
   * The callers of concurrent requests, in one Redis round trip: one script run per distinct
   * caller for all of its requests; its first `granted` requests pass, the rest are refused.
   */
  private async takeGroup(callers: readonly string[]): Promise<ItemResult<RateLimitDecision | null>[]> {
    const wanted = new Map<string, number>();
    for (const caller of callers) wanted.set(caller, (wanted.get(caller) ?? 0) + 1);
    const args = [...wanted].map(([caller, want]): [string, number, number, number, ...number[]] => [
      `${this.options.prefix}:ratelimit:${caller}`,
      this.options.perSecond,
      this.options.burst,
      want,
      ...(this.options.now ? [this.options.now()] : []),
    ]);
    let replies: [Error | null, unknown][] | null;
    try {
      replies = await this.runScripts(args);
    } catch (error) {
      replies = null;
      this.warn(error);
    }
    const decisions = new Map<string, { granted: number; remaining: number; waitMs: number } | null>();
    [...wanted.keys()].forEach((caller, index) => {
      const [error, reply] = replies?.[index] ?? [new Error('no reply'), null];
      if (error) {
        if (replies) this.warn(error);
        decisions.set(caller, null);
        return;
      }
      const [granted, remaining, waitMs] = reply as [number, number, number];
      decisions.set(caller, { granted, remaining, waitMs });
    });
    return callers.map((caller) => {
      const decision = decisions.get(caller);
      if (!decision) return { ok: true, value: null };
      const allowed = decision.granted > 0;
      if (allowed) decision.granted -= 1;
      return {
        ok: true,
        value: {
          allowed,
          limit: this.options.burst,
          // What was left when this request took its token: the group's later ones count down.
          remaining: Math.max(0, decision.remaining + (allowed ? decision.granted : 0)),
          retryAfterSeconds: Math.max(1, Math.ceil(decision.waitMs / 1000)),
        },
      };
    });
  }

  /**
   * One script run per bucket. On one Redis, one pipeline; on a cluster, each bucket is a key of
   * its own slot (a pipeline must stay within one), so the runs go out side by side instead.
   */
  private async runScripts(
    runs: readonly [string, number, number, number, ...number[]][],
  ): Promise<[Error | null, unknown][] | null> {
    if (isCluster(this.redis)) {
      const cluster = this.redis as RedisClient & TokenBucketCommand;
      return Promise.all(
        runs.map((run) =>
          cluster.walletTokenBucket(...run).then(
            (reply): [Error | null, unknown] => [null, reply],
            (error: unknown): [Error | null, unknown] => [
              error instanceof Error ? error : new Error(String(error)),
              null,
            ],
          ),
        ),
      );
    }
    const pipeline = this.redis.pipeline() as TokenBucketPipeline;
    for (const run of runs) pipeline.walletTokenBucket(...run);
    return pipeline.exec();
  }

  private warn(error: unknown): void {
    const now = Date.now();
    if (now - this.lastWarning < 30_000) return;
    this.lastWarning = now;
    this.logger.warn({ err: error }, 'rate limiting skipped: redis unavailable (failing open)');
  }
}
