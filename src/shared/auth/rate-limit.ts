import type { Redis } from '../infra/redis.js';
import type { Logger } from '../infra/logger.js';

/**
 * A token bucket per caller, kept in Redis so every API process shares it: `perSecond` tokens
 * flow in each second up to `burst`; each request takes one. The whole step is one Lua script
 * (atomic), timed by Redis's own clock so API hosts with skewed clocks agree.
 */
const TOKEN_BUCKET = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local allowed = 0
local wait_ms = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait_ms = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return { allowed, math.floor(tokens), wait_ms }
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
}

type WithScript = Redis & {
  walletTokenBucket(key: string, rate: number, burst: number): Promise<[number, number, number]>;
};

/**
 * Redis-backed rate limiter. It fails open: while Redis is unreachable every request is let
 * through (and that is logged, at most every 30 s), because refusing all traffic, or answering
 * 500, for want of a counter would be worse than briefly not limiting.
 */
export class RateLimiter {
  private readonly redis: WithScript;
  private lastWarning = 0;

  constructor(
    redis: Redis,
    private readonly options: RateLimiterOptions,
    private readonly logger: Logger,
  ) {
    if (!('walletTokenBucket' in redis)) {
      redis.defineCommand('walletTokenBucket', { numberOfKeys: 1, lua: TOKEN_BUCKET });
    }
    this.redis = redis as WithScript;
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
    try {
      const [allowed, remaining, waitMs] = await this.redis.walletTokenBucket(
        `${this.options.prefix}:ratelimit:${caller}`,
        this.options.perSecond,
        this.options.burst,
      );
      return {
        allowed: allowed === 1,
        limit: this.options.burst,
        remaining: Math.max(0, remaining),
        retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)),
      };
    } catch (error) {
      this.warn(error);
      return null;
    }
  }

  private warn(error: unknown): void {
    const now = Date.now();
    if (now - this.lastWarning < 30_000) return;
    this.lastWarning = now;
    this.logger.warn({ err: error }, 'rate limiting skipped: redis unavailable (failing open)');
  }
}
