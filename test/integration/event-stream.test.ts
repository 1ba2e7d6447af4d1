import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { EventStreamPublisher, eventStreamKey } from '../../src/shared/events/event-stream.js';
import { relayOutbox } from '../../src/shared/events/outbox-relay.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import { createTestEnv, waitUntil, type TestEnv } from '../support/test-env.js';

let env: TestEnv;
let redis: Redis;

beforeAll(async () => {
  env = await createTestEnv('event_stream');
  redis = new Redis(env.config.REDIS_URL);
});

afterAll(async () => {
  redis?.disconnect();
  await env?.destroy();
});

const count = (query: ReturnType<typeof sql.unsafe>) =>
  env.pool.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM (${query}) AS q`);

describe('the relay while Redis is unreachable', () => {
  it('When Redis does not answer, then the relay gives up within its bound, holds no transaction open meanwhile, and publishes each event once when Redis is back', async () => {
    await env.pool.query(sql.unsafe`
      INSERT INTO outbox_events (wallet_id, type, data)
      SELECT i, 'WalletCreated', jsonb_build_object('walletId', i) FROM generate_series(1, 20) AS i
    `);
    const proxy = await new TcpProxy('127.0.0.1', 6379).start();
    // A client that waits through outages, the worst case: only the relay's own bound can end the pass.
    const viaProxy = new Redis(`redis://127.0.0.1:${proxy.port}`, { maxRetriesPerRequest: null });
    viaProxy.on('error', () => undefined);
    try {
      await viaProxy.ping();
      await proxy.stop();
      const publisher = new EventStreamPublisher(viaProxy, env.config.QUEUE_PREFIX);

      const started = Date.now();
      const pass = relayOutbox(env.pool, publisher, 500, 1000).then(
        () => 'returned',
        (error: Error) => error.message,
      );
      await sleep(500);
      const idleInTransaction = await count(sql.unsafe`
        SELECT 1 FROM pg_stat_activity
        WHERE datname = current_database() AND state LIKE 'idle in transaction%'
      `);
      const outcome = await Promise.race([pass, sleep(5000).then(() => 'still waiting after 5 s')]);

      expect(idleInTransaction).toBe(0);
      expect(outcome).toMatch(/took over 1000 ms/);
      expect(Date.now() - started).toBeLessThan(2500);
      expect(await count(sql.unsafe`SELECT 1 FROM outbox_events WHERE published_at IS NULL`)).toBe(20);

      // Redis is back: the abandoned call lands late; the next pass must not add those events again.
      await proxy.restart();
      const stream = eventStreamKey(env.config.QUEUE_PREFIX);
      await waitUntil('the abandoned batch reached Redis', async () => (await redis.xlen(stream)) === 20, 10_000);
      const { relayed } = await relayOutbox(env.pool, new EventStreamPublisher(redis, env.config.QUEUE_PREFIX), 500);
      expect(relayed).toBe(20);
      expect(await count(sql.unsafe`SELECT 1 FROM outbox_events WHERE published_at IS NULL`)).toBe(0);
      const sequences = (await redis.xrange(stream, '-', '+')).map(
        ([, fields]) => JSON.parse(fields[fields.indexOf('event') + 1]!).sequence,
      );
      expect(sequences).toHaveLength(20);
      expect(new Set(sequences).size).toBe(20);
    } finally {
      viaProxy.disconnect();
      await proxy.stop();
    }
  }, 30_000);
});
