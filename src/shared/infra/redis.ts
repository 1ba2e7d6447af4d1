import { Redis } from 'ioredis';
import type { Config } from './config.js';
import type { Logger } from './logger.js';

export { Redis };

/** A Redis connection as BullMQ workers need it: commands wait through reconnects instead of failing. */
export function createRedis(config: Pick<Config, 'REDIS_URL'>, connectionName: string, logger: Logger): Redis {
  return reportingErrors(new Redis(config.REDIS_URL, { maxRetriesPerRequest: null, connectionName }), logger);
}

/**
 * A connection for request handlers: while Redis is away a command fails within about a second
 * instead of holding the client's request open.
 */
export function createFailFastRedis(config: Pick<Config, 'REDIS_URL'>, connectionName: string, logger: Logger): Redis {
  return reportingErrors(
    new Redis(config.REDIS_URL, { maxRetriesPerRequest: 1, commandTimeout: 1000, connectionName }),
    logger,
  );
}

/** ioredis reconnects by itself; its errors only need to reach the log. */
function reportingErrors(redis: Redis, logger: Logger): Redis {
  const name = redis.options.connectionName;
  redis.on('error', (error: Error) => logger.warn({ err: error, connection: name }, 'redis connection error'));
  return redis;
}

/**
 * Deletes every key under `prefix:` (a deployment's or a test's whole queue state); returns how
 * many. SCAN, not KEYS, so a large Redis is not blocked.
 */
export async function deleteKeysWithPrefix(redis: Redis, prefix: string): Promise<number> {
  let deleted = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    if (keys.length > 0) deleted += await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
  return deleted;
}
