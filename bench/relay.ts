/**
 * Relay throughput: fills a fresh database's outbox the way the service does (wallets created,
 * transactions reserved in groups of 500 and applied by the worker's own function), then times
 * `relayOutbox` passes (batches of 500 events, as the worker runs them) until none is left, and
 * checks that the stream holds every event once.
 *
 *   npx tsx bench/relay.ts [transactions=20000]
 *
 * Uses its own database (wallet_bench_relay) and Redis prefix (bench-relay-<epoch ms>), both removed at the end.
 */
import { Redis } from 'ioredis';
import { sql } from 'slonik';
import { z } from 'zod';
import { applyWalletBatches } from '../src/shared/apply/apply-pending-transactions.js';
import { EventStreamPublisher, eventStreamKey } from '../src/shared/events/event-stream.js';
import { relayOutbox } from '../src/shared/events/outbox-relay.js';
import { listOutboxEvents } from '../src/shared/events/outbox-repository.js';
import { createDatabasePool } from '../src/shared/infra/db.js';
import { dropDatabase } from '../src/shared/infra/migrate.js';
import { deleteKeysWithPrefix } from '../src/shared/infra/redis.js';
import { insertPendingTransactions } from '../src/shared/transactions/transaction-repository.js';
import { freshDatabase } from './database.js';

const TRANSACTIONS = Number(process.argv[2] ?? 20_000);
const WALLETS = 1000;
const GROUP = 500;
const BATCH_SIZE = 500;
const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/wallet_bench_relay';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const PREFIX = `bench-relay-${Date.now()}`;

await freshDatabase(DATABASE_URL);
const pool = await createDatabasePool({ DATABASE_URL, DB_POOL_SIZE: 2 });
const redis = new Redis(REDIS_URL);
try {
  const walletIds = await pool.anyFirst(sql.type(z.object({ id: z.number() }))`
    WITH created AS (
      INSERT INTO wallets (external_id) SELECT 'relay-' || i FROM generate_series(1, ${WALLETS}) AS i RETURNING id
    ), announced AS (
      INSERT INTO outbox (kind, wallet_id) SELECT 'wallet_created', id FROM created ORDER BY id
    )
    SELECT id FROM created ORDER BY id
  `);
  for (let start = 0; start < TRANSACTIONS; start += GROUP) {
    const group = Array.from({ length: Math.min(GROUP, TRANSACTIONS - start) }, (_, offset) => {
      const n = start + offset;
      const labels: Record<string, string> = n % 4 === 0 ? { kind: 'payout' } : {};
      // Mostly deposits; one in ten a withdrawal that an empty wallet rejects at first.
      return {
        walletId: walletIds[n % WALLETS]!,
        amount: n % 10 === 9 ? '-5.00' : '12.34',
        fingerprint: `relay-${n}`,
        labels,
        description: null,
        traceContext: null,
      };
    });
    await insertPendingTransactions(pool, group);
  }
  for (let start = 0; start < WALLETS; start += 100) {
    await applyWalletBatches(pool, walletIds.slice(start, start + 100), 1000);
  }
  const expected = (await listOutboxEvents(pool)).length;
  await pool.query(sql.unsafe`VACUUM ANALYZE outbox`);

  const publisher = new EventStreamPublisher(redis, PREFIX, 1_000_000);
  const started = performance.now();
  let passes = 0;
  let relayed = 0;
  for (;;) {
    const pass = await relayOutbox(pool, publisher, BATCH_SIZE);
    passes += 1;
    relayed += pass.relayed;
    if (pass.relayed < BATCH_SIZE) break;
  }
  const seconds = (performance.now() - started) / 1000;
  const streamLength = await redis.xlen(eventStreamKey(PREFIX));
  console.log(
    JSON.stringify({
      transactions: TRANSACTIONS,
      events: expected,
      batchSize: BATCH_SIZE,
      passes,
      seconds: Number(seconds.toFixed(2)),
      eventsPerSecond: Math.round(relayed / seconds),
      relayed,
      streamLength,
    }),
  );
  if (relayed !== expected || streamLength !== expected) {
    console.error(`expected ${expected} events relayed and in the stream`);
    process.exitCode = 2;
  }
} finally {
  await deleteKeysWithPrefix(redis, PREFIX);
  redis.disconnect();
  await pool.end();
  await dropDatabase(DATABASE_URL);
}
