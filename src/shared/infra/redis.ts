import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { redisTarget, type Config } from './config.js';
import type { Logger } from './logger.js';

export { Cluster, Redis };

/** A connection to one Redis or to a Redis Cluster (REDIS_URL `redis+cluster://...` or REDIS_CLUSTER_NODES). */
export type RedisClient = Redis | Cluster;

type RedisConfig = Pick<Config, 'REDIS_URL' | 'REDIS_CLUSTER_NODES'>;

/**
 * A client for `config`'s Redis, one server or a cluster, with `options` for each connection.
 * On a cluster, `options` apply to every node's connection; `cluster` adds cluster-wide ones.
 */
export function connectRedis(config: RedisConfig, options: RedisOptions, cluster: ClusterOptions = {}): RedisClient {
  const target = redisTarget(config);
  if (target.kind === 'single') return new Redis(target.url, options);
  const credentials = {
    ...(target.username ? { username: target.username } : {}),
    ...(target.password ? { password: target.password } : {}),
    ...(target.tls ? { tls: {} } : {}),
  };
  return new Cluster(target.nodes, {
    ...cluster,
    redisOptions: { ...options, ...credentials },
    // As a single connection does: a command sent while the cluster is (re)connecting waits for it.
    enableOfflineQueue: options.enableOfflineQueue ?? true,
    ...(options.lazyConnect ? { lazyConnect: true } : {}),
  });
}

/** True for a client of a Redis Cluster: keys of one command or script must then share a slot. */
export function isCluster(redis: RedisClient): redis is Cluster {
  return redis.isCluster;
}

/** The connection's name (CLIENT SETNAME) as the logs show it. */
function nameOf(redis: RedisClient): string | undefined {
  return isCluster(redis) ? redis.options.redisOptions?.connectionName : redis.options.connectionName;
}

/** A Redis connection as BullMQ workers need it: commands wait through reconnects instead of failing. */
export function createRedis(config: RedisConfig, connectionName: string, logger: Logger): RedisClient {
  return reportingErrors(connectRedis(config, { maxRetriesPerRequest: null, connectionName }), logger);
}

/**
 * A connection for request handlers: while Redis is away a command fails within about a second
 * instead of holding the client's request open.
 */
export function createFailFastRedis(config: RedisConfig, connectionName: string, logger: Logger): RedisClient {
  return reportingErrors(
    connectRedis(
      config,
      { maxRetriesPerRequest: 1, commandTimeout: 1000, connectionName },
      // A cluster that lost its nodes fails commands instead of queueing them for its reconnect.
      { retryDelayOnClusterDown: 100, maxRedirections: 4 },
    ),
    logger,
  );
}

/** ioredis reconnects by itself; its errors only need to reach the log. */
function reportingErrors<T extends RedisClient>(redis: T, logger: Logger): T {
  const name = nameOf(redis);
  redis.on('error', (error: Error) => logger.warn({ err: error, connection: name }, 'redis connection error'));
  return redis;
}

/**
 * Deletes every key under `prefix:` (a deployment's or a test's whole queue state); returns how
 * many. SCAN, not KEYS, so a large Redis is not blocked; on a cluster, SCAN of every master, and
 * one DEL per key (keys of one DEL must share a slot).
 */
export async function deleteKeysWithPrefix(redis: RedisClient, prefix: string): Promise<number> {
  const servers = isCluster(redis) ? redis.nodes('master') : [redis];
  let deleted = 0;
  for (const server of servers) {
    let cursor = '0';
    do {
      const [next, keys] = await server.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      if (keys.length > 0) {
        if (isCluster(redis)) {
          const pipeline = server.pipeline();
          for (const key of keys) pipeline.del(key);
          for (const [, count] of (await pipeline.exec()) ?? []) deleted += Number(count ?? 0);
        } else {
          deleted += await server.del(...keys);
        }
      }
      cursor = next;
    } while (cursor !== '0');
  }
  return deleted;
}
