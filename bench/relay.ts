/**
 * Relay throughput: fills a fresh database's outbox with N events, then times `relayOutbox`
 * passes (batches of 500, as the worker runs them) until none is left unpublished.
 *
 *   npx tsx bench/relay.ts [events=20000]
 *
 * Uses its own database (wallet_bench_relay) and Redis prefix (bench-relay-<epoch ms>), both removed at the end.
 */
import { Redis } from 'ioredis';
import { sql } from 'slonik';
import { z } from 'zod';
import { EventStreamPublisher } from '../src/shared/events/event-stream.js';
import { relayOutbox } from '../src/shared/events/outbox-relay.js';
import { createDatabasePool } from '../src/shared/infra/db.js';
import { dropDatabase } from '../src/shared/infra/migrate.js';
import { deleteKeysWithPrefix } from '../src/shared/infra/redis.js';
import { freshDatabase } from './database.js';

const EVENTS = Number(process.argv[2] ?? 20_000);
const BATCH_SIZE = 500;
const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/wallet_bench_relay';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const PREFIX = `bench-relay-${Date.now()}`;

await freshDatabase(DATABASE_URL);
const pool = await createDatabasePool({ DATABASE_URL, DB_POOL_SIZE: 2 });
const redis = new Redis(REDIS_URL);
try {
  await pool.query(sql.unsafe`
    INSERT INTO outbox_events (wallet_id, type, subject, data)
    SELECT 1 + i % 1000, 'BalanceChanged', gen_random_uuid()::text,
           jsonb_build_object('walletId', 1 + i % 1000, 'amount', 12.34, 'refno', i, 'oldbalance', 100.00, 'newbalance', 112.34)
    FROM generate_series(1, ${EVENTS}) AS i
  `);
  await pool.query(sql.unsafe`VACUUM ANALYZE outbox_events`);
  const publisher = new EventStreamPublisher(redis, PREFIX, 1_000_000);
  const started = performance.now();
  let passes = 0;
  for (;;) {
    const { relayed } = await relayOutbox(pool, publisher, BATCH_SIZE);
    passes += 1;
    if (relayed < BATCH_SIZE) break;
  }
  const seconds = (performance.now() - started) / 1000;
  const left = await pool.oneFirst(
    sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM outbox_events WHERE published_at IS NULL`,
  );
  const streamLength = await redis.xlen(`${PREFIX}:events`);
  console.log(
    JSON.stringify({
      events: EVENTS,
      batchSize: BATCH_SIZE,
      passes,
      seconds: Number(seconds.toFixed(2)),
      eventsPerSecond: Math.round(EVENTS / seconds),
      unpublishedLeft: left,
      streamLength,
    }),
  );
} finally {
  await deleteKeysWithPrefix(redis, PREFIX);
  redis.disconnect();
  await pool.end();
  await dropDatabase(DATABASE_URL);
}
