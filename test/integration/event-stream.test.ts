import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import pg from 'pg';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { OutboxEvent } from '../../src/shared/events/cloud-events.js';
import { EventStreamPublisher, eventStreamKey } from '../../src/shared/events/event-stream.js';
import { relayOutbox } from '../../src/shared/events/outbox-relay.js';
import { findEventsAfter, readRelayCursor } from '../../src/shared/events/outbox-repository.js';
import * as metrics from '../../src/shared/telemetry/metrics.js';
import { insertPendingTransactions } from '../../src/shared/transactions/transaction-repository.js';
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
      WITH created AS (
        INSERT INTO wallets (external_id) SELECT 'stream-' || i FROM generate_series(1, 20) AS i RETURNING id
      )
      INSERT INTO outbox (kind, wallet_id) SELECT 'wallet_created', id FROM created ORDER BY id
    `);
    const unpublished = async () => (await findEventsAfter(env.pool, await readRelayCursor(env.pool), 1000)).length;
    // The relay publishes only below the oldest transaction of this database still running.
    await waitUntil('the 20 events can be published', async () => (await unpublished()) === 20, 20_000);
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
      expect(await unpublished()).toBe(20);

      // Redis is back: the abandoned call lands late; the next pass must not add those events again.
      await proxy.restart();
      const stream = eventStreamKey(env.config.QUEUE_PREFIX);
      await waitUntil('the abandoned batch reached Redis', async () => (await redis.xlen(stream)) === 20, 10_000);
      const { relayed } = await relayOutbox(env.pool, new EventStreamPublisher(redis, env.config.QUEUE_PREFIX), 500);
      expect(relayed).toBe(20);
      expect(await unpublished()).toBe(0);
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

describe('trimming the stream', () => {
  const prefix = () => `${env.config.QUEUE_PREFIX}:trim`;
  const stream = () => eventStreamKey(prefix());
  let nextId = 1;
  const batch = (size: number): OutboxEvent[] =>
    Array.from({ length: size }, () => {
      const id = nextId++;
      const position = String(id).padStart(10, '0');
      return {
        position,
        xid: '1',
        row: id,
        ordinal: 0,
        eventId: `e-${id}`,
        walletId: 1,
        type: 'WalletCreated',
        subject: null,
        data: '{}',
        created: 'now',
        legacyId: null,
      };
    });
  const sequencesInStream = async () =>
    (await redis.xrange(stream(), '-', '+')).map(([, fields]) =>
      Number(JSON.parse(fields[fields.indexOf('event') + 1]!).sequence),
    );
  /** Reads up to `count` new entries for a group; acknowledges the first `ack` of them. */
  async function read(group: string, count: number, ack = count): Promise<number> {
    const reply = (await redis.xreadgroup('GROUP', group, 'c', 'COUNT', count, 'STREAMS', stream(), '>')) as
      [string, [string, string[]][]][] | null;
    const ids = (reply?.[0]?.[1] ?? []).map(([id]) => id);
    if (ack > 0 && ids.length > 0) await redis.xack(stream(), group, ...ids.slice(0, ack));
    return ids.length;
  }

  it('When a consumer group lags, then the stream keeps everything it has not read, reports the lag, and trims to the length once it caught up', async () => {
    const publisher = new EventStreamPublisher(redis, prefix(), 100);
    await redis.xgroup('CREATE', stream(), 'slow', '0', 'MKSTREAM');
    await redis.xgroup('CREATE', stream(), 'fast', '0');
    const unregister = metrics.registerEventStreamLag(() => publisher.slowestGroupLag());
    try {
      for (let i = 0; i < 5; i += 1) {
        await publisher.publish(batch(100), '');
        while ((await read('fast', 1000)) > 0);
      }
      // 5 × the length, none of it read by "slow": nothing may go.
      expect(await redis.xlen(stream())).toBe(500);
      expect(await publisher.slowestGroupLag()).toBe(500);
      expect(await metrics.renderMetrics()).toMatch(/^wallet_event_stream_lag_entries 500$/m);

      // "slow" has read 300 and acknowledged 250: the 251st is the oldest it still needs.
      expect(await read('slow', 300, 250)).toBe(300);
      await publisher.publish(batch(10), '');
      while ((await read('fast', 1000)) > 0);
      expect((await sequencesInStream())[0]).toBe(251);
      expect(await redis.xlen(stream())).toBe(260);
      expect(await publisher.slowestGroupLag()).toBe(210);

      // Caught up and acknowledged: trimmed to the length, newest kept, each event once.
      await redis.xack(stream(), 'slow', ...(await redis.xrange(stream(), '-', '+')).map(([id]) => id));
      while ((await read('slow', 1000)) > 0);
      await publisher.publish(batch(10), '');
      const kept = await sequencesInStream();
      expect(kept).toEqual(Array.from({ length: 100 }, (_, i) => 421 + i));
      expect(await publisher.slowestGroupLag()).toBe(10);
    } finally {
      unregister();
    }
  });

  it('When no consumer group exists, then the stream keeps the newest `maxLength` entries', async () => {
    const publisher = new EventStreamPublisher(redis, `${prefix()}:nogroups`, 100);
    for (let i = 0; i < 3; i += 1) await publisher.publish(batch(100), '');
    expect(await redis.xlen(eventStreamKey(`${prefix()}:nogroups`))).toBe(100);
    expect(await publisher.slowestGroupLag()).toBe(0);
  });
});

describe('the horizon the relay publishes below', () => {
  const createWallets = (db: { query: (q: ReturnType<typeof sql.unsafe>) => Promise<unknown> }, prefix: string) =>
    db.query(sql.unsafe`
      WITH created AS (
        INSERT INTO wallets (external_id) SELECT ${prefix} || i FROM generate_series(1, 3) AS i RETURNING id
      )
      INSERT INTO outbox (kind, wallet_id) SELECT 'wallet_created', id FROM created ORDER BY id
    `);
  const unpublishedWallets = async () =>
    (await findEventsAfter(env.pool, await readRelayCursor(env.pool), 1000)).map((event) => event.walletId);

  it('When another database on the server holds a transaction open, then the events are still published; when this database does, then the rows after it wait for it, and none is skipped', async () => {
    const otherDatabaseUrl = new URL(env.config.DATABASE_URL);
    otherDatabaseUrl.pathname = '/postgres';
    const elsewhere = new pg.Client({ connectionString: otherDatabaseUrl.toString() });
    await elsewhere.connect();
    await elsewhere.query('BEGIN');
    const heldXid = (await elsewhere.query<{ xid: string }>('SELECT pg_current_xact_id()::text AS xid')).rows[0]!.xid;
    try {
      const before = await unpublishedWallets();
      await createWallets(env.pool, 'horizon-a-');
      // The other database's transaction is older than these rows, and still running.
      const stillRunning = await elsewhere.query<{ running: boolean }>(
        'SELECT pg_xact_status($1::xid8) = $2 AS running',
        [heldXid, 'in progress'],
      );
      expect(stillRunning.rows[0]!.running).toBe(true);
      await waitUntil(
        'the 3 new events can be published',
        async () => (await unpublishedWallets()).length === before.length + 3,
        5000,
      );

      // Now a transaction of this database stays open with an outbox row; a later one commits.
      const open = await env.pool.connect(async (connection) => {
        const held = connection.transaction(async (tx) => {
          await createWallets(tx, 'horizon-b-');
          await sleep(1500);
        });
        await sleep(300);
        await createWallets(env.pool, 'horizon-c-');
        const whileOpen = await unpublishedWallets();
        await held;
        return whileOpen;
      });
      expect(open).toHaveLength(before.length + 3);
      const after = await unpublishedWallets();
      expect(after).toHaveLength(before.length + 9);
      // In position order: the held transaction's rows (the older xid) before the later one's.
      const byPosition = await env.pool.anyFirst(sql.type(z.object({ id: z.number() }))`
        SELECT id FROM wallets WHERE external_id LIKE 'horizon-%' ORDER BY external_id
      `);
      expect(after.slice(before.length)).toEqual(byPosition);
    } finally {
      await elsewhere.query('ROLLBACK');
      await elsewhere.end();
    }
  });
});

describe('a pass of the relay', () => {
  it('When one outbox row holds more events than a pass takes, then the relay publishes it whole and goes on past it', async () => {
    const publisher = new EventStreamPublisher(redis, `${env.config.QUEUE_PREFIX}:big-row`);
    while ((await relayOutbox(env.pool, publisher, 500)).relayed > 0);
    const stream = eventStreamKey(`${env.config.QUEUE_PREFIX}:big-row`);
    const before = await redis.xlen(stream);
    const created = () =>
      env.pool.oneFirst(sql.type(z.object({ id: z.number() }))`
        WITH w AS (INSERT INTO wallets (external_id) VALUES (gen_random_uuid()::text) RETURNING id),
             o AS (INSERT INTO outbox (kind, wallet_id) SELECT 'wallet_created', id FROM w)
        SELECT id FROM w
      `);
    const walletId = await created();
    // One reservation statement of 300 transactions: one outbox row, counted as up to 600 events.
    await insertPendingTransactions(
      env.pool,
      Array.from({ length: 300 }, (_, i) => ({
        walletId,
        amount: '1.00',
        fingerprint: `big-row-${i}`,
        labels: {},
        description: null,
        traceContext: null,
      })),
    );
    const laterWallet = await created();

    const first = await relayOutbox(env.pool, publisher, 500);
    expect(first.relayed).toBe(301);
    const second = await relayOutbox(env.pool, publisher, 500);
    expect(second.relayed).toBe(1);
    const entries = await redis.xrange(stream, '-', '+');
    const [, fields] = entries.at(-1)!;
    const last = JSON.parse(fields[fields.indexOf('event') + 1]!) as { type: string; data: { id: number } };
    expect(last.type).toContain('WalletCreated');
    expect(last.data.id).toBe(laterWallet);
    expect(entries).toHaveLength(before + 302);
    expect((await relayOutbox(env.pool, publisher, 500)).relayed).toBe(0);
  });
});
