/**
 * The Redis topologies the service runs on, for tests that run one body on each: one Redis (the
 * test default, TEST_REDIS_URL), and a Redis Cluster of three masters with the apply queue in
 * three shards. The cluster is started by the test run itself (test/support/redis-cluster-setup.ts,
 * ops/redis-cluster.sh) on 127.0.0.1:7101-7103, or given by TEST_REDIS_CLUSTER_URL.
 */
export interface RedisTopology {
  name: string;
  /** Settings on top of the test env's (createTestEnv overrides). */
  env: Record<string, string>;
}

export const REDIS_CLUSTER_URL =
  process.env.TEST_REDIS_CLUSTER_URL ?? 'redis+cluster://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103';

export const SINGLE_REDIS: RedisTopology = { name: 'single', env: {} };

export const REDIS_CLUSTER: RedisTopology = {
  name: 'cluster',
  env: { REDIS_URL: REDIS_CLUSTER_URL, QUEUE_SHARDS: '3' },
};
