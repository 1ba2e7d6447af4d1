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
