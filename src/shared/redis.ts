import { Redis } from 'ioredis';
import type { Config } from './config.js';

export { Redis };

/** A Redis connection as BullMQ needs it: commands wait through reconnects instead of failing. */
export function createRedis(config: Pick<Config, 'REDIS_URL'>, connectionName: string): Redis {
  return new Redis(config.REDIS_URL, { maxRetriesPerRequest: null, connectionName });
}
