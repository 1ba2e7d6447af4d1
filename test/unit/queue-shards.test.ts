import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, redisTarget, servedShards } from '../../src/shared/infra/config.js';
import { maskUrl } from '../../src/shared/infra/dependencies.js';
import { applyShardName, queueLayout, shardOfWallet, webhookQueueName } from '../../src/shared/infra/queue.js';

describe('Redis topology settings', () => {
  it('reads one Redis from REDIS_URL by default, as before', () => {
    expect(redisTarget(loadConfig({}))).toEqual({ kind: 'single', url: 'redis://127.0.0.1:6379' });
    expect(redisTarget(loadConfig({ REDIS_URL: 'rediss://:pw@cache:6380/2' }))).toEqual({
      kind: 'single',
      url: 'rediss://:pw@cache:6380/2',
    });
  });

  it('reads a cluster from a redis+cluster:// URL, with its credentials and every node', () => {
    const config = loadConfig({ REDIS_URL: 'redis+cluster://app:s%40cret@10.0.0.1:7000,[::1]:7001,node-3:7002' });
    expect(redisTarget(config)).toEqual({
      kind: 'cluster',
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: '::1', port: 7001 },
        { host: 'node-3', port: 7002 },
      ],
      username: 'app',
      password: 's@cret',
      tls: false,
    });
    expect(maskUrl(config.REDIS_URL)).toBe('redis+cluster://app:***@10.0.0.1:7000,[::1]:7001,node-3:7002');
  });

  it('reads a cluster from REDIS_CLUSTER_NODES, keeping the password of REDIS_URL', () => {
    const config = loadConfig({ REDIS_URL: 'redis://:pw@ignored:6379', REDIS_CLUSTER_NODES: 'a:7101, b:7102' });
    expect(redisTarget(config)).toEqual({
      kind: 'cluster',
      nodes: [
        { host: 'a', port: 7101 },
        { host: 'b', port: 7102 },
      ],
      password: 'pw',
      tls: false,
    });
  });

  it('refuses malformed Redis settings, naming the setting', () => {
    expect(() => loadConfig({ REDIS_URL: 'http://127.0.0.1:6379' })).toThrow(/REDIS_URL/);
    expect(() => loadConfig({ REDIS_URL: 'redis+cluster://a:1,b' })).toThrow(/REDIS_URL/);
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'a:1,b:99999' })).toThrow(/REDIS_CLUSTER_NODES/);
    // The service places its own hash tags; a tag in the prefix would pull every shard into one slot.
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'a:1', QUEUE_PREFIX: '{wallet}' })).toThrow(/QUEUE_PREFIX/);
    expect(loadConfig({ QUEUE_PREFIX: '{wallet}' }).QUEUE_PREFIX).toBe('{wallet}'); // one Redis: as before
  });
});

describe('queue shard settings', () => {
  it('defaults to one shard, served whole', () => {
    const config = loadConfig({});
    expect(config.QUEUE_SHARDS).toBe(1);
    expect(servedShards(config)).toEqual([0]);
  });

  it('serves every shard, or the listed ones', () => {
    expect(servedShards(loadConfig({ QUEUE_SHARDS: '4' }))).toEqual([0, 1, 2, 3]);
    expect(servedShards(loadConfig({ QUEUE_SHARDS: '4', QUEUE_SHARDS_SERVED: ' 3, 1,1' }))).toEqual([1, 3]);
  });

  it('refuses shards that do not exist, and nonsense', () => {
    expect(() => loadConfig({ QUEUE_SHARDS: '2', QUEUE_SHARDS_SERVED: '0,2' })).toThrow(ConfigError);
    expect(() => loadConfig({ QUEUE_SHARDS: '2', QUEUE_SHARDS_SERVED: '0,2' })).toThrow(/QUEUE_SHARDS_SERVED.*2/);
    expect(() => loadConfig({ QUEUE_SHARDS: '0' })).toThrow(/QUEUE_SHARDS/);
    expect(() => loadConfig({ QUEUE_SHARDS_SERVED: 'all' })).toThrow(/QUEUE_SHARDS_SERVED/);
  });
});

describe('which queue holds a wallet', () => {
  it('is shard W mod N, stable', () => {
    expect([1, 2, 3, 4, 5, 6].map((walletId) => shardOfWallet(walletId, 3))).toEqual([1, 2, 0, 1, 2, 0]);
    expect(shardOfWallet(123_456_789, 1)).toBe(0);
  });

  it('keeps the unsharded name on one Redis with one shard, so existing jobs stay where workers look', () => {
    const layout = queueLayout(loadConfig({}));
    expect(layout).toEqual({ shards: 1, cluster: false });
    expect(applyShardName(0, layout)).toBe('wallet-apply');
    expect(webhookQueueName(layout)).toBe('webhook-delivery');
  });

  it('puts each shard under a hash tag of its own otherwise (one cluster slot per shard)', () => {
    const sharded = queueLayout(loadConfig({ QUEUE_SHARDS: '3' }));
    expect([0, 1, 2].map((shard) => applyShardName(shard, sharded))).toEqual([
      '{wallet-apply-0}',
      '{wallet-apply-1}',
      '{wallet-apply-2}',
    ]);
    const cluster = queueLayout(loadConfig({ REDIS_URL: 'redis+cluster://a:1' }));
    expect(applyShardName(0, cluster)).toBe('{wallet-apply-0}');
    expect(webhookQueueName(cluster)).toBe('{webhook-delivery}');
  });
});
