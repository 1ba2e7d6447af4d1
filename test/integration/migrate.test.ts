import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, it } from 'vitest';
import { loadConfig } from '../../src/shared/infra/config.js';
import { createDatabasePool } from '../../src/shared/infra/db.js';
import {
  MIGRATIONS_DIR,
  createDatabaseIfMissing,
  dropDatabase,
  listMigrationFiles,
  migrate,
  pendingMigrations,
} from '../../src/shared/infra/migrate.js';
import { applyWalletBatches } from '../../src/shared/apply/apply-pending-transactions.js';
import { ensurePendingMarkers } from '../../src/shared/apply/pending-markers.js';
import { auditLedger } from '../../src/shared/audit/ledger-audit.js';
import { findEventsAfter, listOutboxEvents, readRelayCursor } from '../../src/shared/events/outbox-repository.js';
import type { OutboxEvent } from '../../src/shared/events/cloud-events.js';
import { findHoldByFingerprint, releaseHold } from '../../src/shared/holds/hold-repository.js';
import { insertTransfers } from '../../src/shared/transfers/transfer-repository.js';
import { getTransactionByFingerprint, listWalletTransactions } from '../../src/shared/transactions/lookups.js';
import { getLatestApplied, getTransaction } from '../../src/shared/transactions/transactions.js';
import { getWallet } from '../../src/shared/wallets/wallets.js';
import { ROOT } from '../support/test-env.js';

const databases: string[] = [];
const scratchDirs: string[] = [];

/** A database name of this file's own (dropped at the end), not created yet. */
function newDatabaseUrl(): string {
  const url = `postgres://postgres@127.0.0.1:5432/wallet_test_migrate_${randomBytes(4).toString('hex')}`;
  databases.push(url);
  return url;
}

afterAll(async () => {
  for (const url of databases) await dropDatabase(url);
  for (const dir of scratchDirs) await rm(dir, { recursive: true, force: true });
});

/** Runs `wallet db ...` as an operator would; returns its exit code and the JSON lines it logged. */
function cli(databaseUrl: string, ...args: string[]): Promise<{ code: number | null; logs: any[]; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli.ts'), 'db', ...args], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: databaseUrl, LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('exit', (code) => {
      const logs = output
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as unknown);
      resolve({ code, logs, output });
    });
  });
}

async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

async function databaseExists(url: string): Promise<boolean> {
  const name = new URL(url).pathname.slice(1);
  const maintenance = new URL(url);
  maintenance.pathname = '/postgres';
  return withClient(maintenance.toString(), async (client) => {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    return found.rowCount === 1;
  });
}

const tablesOf = (url: string) =>
  withClient(url, async (client) => {
    const tables = await client.query<{ name: string }>(
      "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
    );
    return tables.rows.map((row) => row.name);
  });

const appliedMigrations = (url: string) =>
  withClient(url, async (client) => {
    const rows = await client.query<{ name: string }>('SELECT name FROM schema_migrations ORDER BY name');
    return rows.rows.map((row) => row.name);
  });

/** A migrations folder of this test's own: the real files named, plus any written here. */
async function migrationsDir(realFiles: string[], extra: Record<string, string> = {}): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'wallet-migrations-'));
  scratchDirs.push(dir);
  for (const name of realFiles) await copyFile(path.join(MIGRATIONS_DIR, name), path.join(dir, name));
  for (const [name, body] of Object.entries(extra)) await writeFile(path.join(dir, name), body);
  return dir;
}

// Each test has its own database; they run side by side (the CLI's start-up dominates).
describe.concurrent('migrations', () => {
  it('When the database is new, then `db --initdb` creates it and applies every migration once, however often it runs', async ({
    expect,
  }) => {
    const url = newDatabaseUrl();
    const files = await listMigrationFiles();
    expect(files.length).toBeGreaterThan(0);

    const first = await cli(url, '--initdb');
    expect(first.code, first.output).toBe(0);
    expect(first.logs.find((line) => line.msg === 'database ready')).toMatchObject({ created: true, applied: files });
    expect(await pendingMigrations(url)).toEqual([]);
    expect(await tablesOf(url)).toEqual([
      'api_keys',
      'holds',
      'outbox',
      'outbox_relay_cursor',
      'outbox_slot_layout',
      'pending_reservations',
      'pending_reservations_floor',
      'schema_migrations',
      'transactions',
      'transfers',
      'wallets',
      'webhook_event_deliveries',
      'webhook_subscriptions',
    ]);

    const again = await cli(url, '--initdb');
    expect(again.code, again.output).toBe(0);
    expect(again.logs.find((line) => line.msg === 'database ready')).toMatchObject({
      created: false,
      applied: [],
      alreadyApplied: files.length,
    });
    expect(await appliedMigrations(url)).toEqual(files);
  });

  it('When several processes migrate a new database at once, then each migration is applied exactly once', async ({
    expect,
  }) => {
    const url = newDatabaseUrl();
    expect(await createDatabaseIfMissing(url)).toBe(true);
    expect(await createDatabaseIfMissing(url)).toBe(false);
    const files = await listMigrationFiles();
    expect(await pendingMigrations(url)).toEqual(files);

    // Several containers starting at once must not apply a migration twice.
    const results = await Promise.all([migrate(url), migrate(url), migrate(url)]);

    expect(results.flatMap((result) => result.applied).sort()).toEqual(files);
    expect(await pendingMigrations(url)).toEqual([]);
    expect((await migrate(url)).applied).toEqual([]);
  });

  it('When `db --dropdb` runs, then the database is gone, and a second drop is harmless', async ({ expect }) => {
    const url = newDatabaseUrl();
    await createDatabaseIfMissing(url);
    await migrate(url);
    expect(await databaseExists(url)).toBe(true);

    const dropped = await cli(url, '--dropdb');
    expect(dropped.code, dropped.output).toBe(0);
    expect(dropped.logs.some((line) => line.msg === 'database dropped')).toBe(true);
    expect(await databaseExists(url)).toBe(false);

    const again = await cli(url, '--dropdb');
    expect(again.code, again.output).toBe(0);
    expect(await databaseExists(url)).toBe(false);
  });

  it('When a database that already holds wallets and transactions is migrated, then every row survives as it was', async ({
    expect,
  }) => {
    const url = newDatabaseUrl();
    const [first, ...later] = await listMigrationFiles();
    expect(later.length).toBeGreaterThan(0);
    await createDatabaseIfMissing(url);
    await migrate(url, await migrationsDir([first!]));
    // Data written by the service as it was at the first migration.
    await withClient(url, (client) =>
      client.query(`
        INSERT INTO wallets (id, external_id, labels, balance, last_refno, version)
          OVERRIDING SYSTEM VALUE VALUES (41, 'kept', '{"tier": "gold"}', 7.00, 2, 2);
        INSERT INTO transactions (wallet_id, amount, fingerprint, labels, status, reason, refno, oldbalance, newbalance)
        VALUES (41, 5.00, 'kept-1', '{}', 'applied', NULL, 1, 0, 5.00),
               (41, 2.00, 'kept-2', '{"k": "v"}', 'applied', NULL, 2, 5.00, 7.00),
               (41, -9.00, 'kept-3', '{}', 'rejected', 'insufficient_funds', NULL, NULL, NULL);
      `),
    );

    expect((await migrate(url)).applied).toEqual(later);
    expect(await pendingMigrations(url)).toEqual([]);

    // Read back the way the service reads them.
    const pool = await createDatabasePool(loadConfig({ DATABASE_URL: url, DB_POOL_SIZE: '1' }));
    try {
      expect(await getWallet(pool, 41)).toMatchObject({
        externalId: 'kept',
        labels: { tier: 'gold' },
        balance: '7.00',
      });
      expect(await getLatestApplied(pool, 41)).toMatchObject({
        fingerprint: 'kept-2',
        refno: 2,
        oldbalance: '5.00',
        newbalance: '7.00',
      });
      const kept = await Promise.all(
        ['kept-1', 'kept-2', 'kept-3'].map((fingerprint) => getTransactionByFingerprint(pool, fingerprint)),
      );
      expect(
        kept.map(({ amount, status, refno, reason, labels }) => ({ amount, status, refno, reason, labels })),
      ).toEqual([
        { amount: '5.00', status: 'applied', refno: 1, reason: null, labels: {} },
        { amount: '2.00', status: 'applied', refno: 2, reason: null, labels: { k: 'v' } },
        { amount: '-9.00', status: 'rejected', refno: null, reason: 'insufficient_funds', labels: {} },
      ]);
    } finally {
      await pool.end();
    }
  });

  it('When a database with holds and events from before hold events (009) is migrated, then every row stays, its events read as before, and an old active hold released afterwards gets its HoldReleased', async ({
    expect,
  }) => {
    const url = newDatabaseUrl();
    const files = await listMigrationFiles();
    const before = files.filter((name) => name < '009');
    expect(files.filter((name) => name >= '009')).toContain('009_hold_events.sql');
    await createDatabaseIfMissing(url);
    await migrate(url, await migrationsDir(before));
    const counts = `SELECT (SELECT count(*) FROM outbox)::int AS outbox, (SELECT count(*) FROM holds)::int AS holds,
                           (SELECT count(*) FROM transactions)::int AS transactions`;
    const written = await withClient(url, async (client) => {
      await client.query(`
        WITH w AS (INSERT INTO wallets (id, external_id, balance, last_refno, version, held)
                   OVERRIDING SYSTEM VALUE VALUES (51, 'holding', 30, 1, 3, 12) RETURNING id)
        INSERT INTO outbox (kind, wallet_id) SELECT 'wallet_created', id FROM w;
        INSERT INTO transactions (wallet_id, amount, fingerprint, status, refno, oldbalance, newbalance, finalized)
        VALUES (51, 30, 'holding-deposit', 'applied', 1, 0, 30, now());
        INSERT INTO holds (wallet_id, seq, fingerprint, amount, status, expires_at, seen_available, decided)
        VALUES (51, nextval(pg_get_serial_sequence('transactions', 'seq')), 'old-active', 12, 'active',
                now() + interval '1 day', 30, now()),
               (51, nextval(pg_get_serial_sequence('transactions', 'seq')), 'old-rejected', 99, 'rejected',
                now() + interval '1 day', 18, now());
      `);
      return (await client.query(counts)).rows[0];
    });
    expect((await migrate(url)).applied).toEqual(files.filter((name) => name >= '009'));
    expect(await withClient(url, async (client) => (await client.query(counts)).rows[0])).toEqual(written);

    const pool = await createDatabasePool(loadConfig({ DATABASE_URL: url, DB_POOL_SIZE: '1' }));
    try {
      const eventsBefore = await listOutboxEvents(pool, { walletId: 51 });
      expect(eventsBefore.map((event) => event.type)).toEqual(['WalletCreated']);
      const old = await findHoldByFingerprint(pool, 'old-active');
      expect(await releaseHold(pool, 51, old!.id, { fingerprint: 'old-release' })).toMatchObject({
        status: 'released',
        releaseFingerprint: 'old-release',
      });
      const after = await listOutboxEvents(pool, { walletId: 51 });
      expect(after.map((event) => `${event.type} ${event.subject}`)).toEqual([
        'WalletCreated 51',
        `HoldReleased ${old!.id}`,
      ]);
      expect(JSON.parse(after[1]!.data)).toMatchObject({ holdId: old!.id, amount: 12, fingerprint: 'old-release' });
    } finally {
      await pool.end();
    }
  });

  it('When a database with grouped transfers from before paired debit slots (010) is migrated, then their events keep their positions and a group reserved afterwards gets every TransferCreated in a slot of its own', async ({
    expect,
  }) => {
    const url = newDatabaseUrl();
    const files = await listMigrationFiles();
    expect(files).toContain('010_paired_debit_slots.sql');
    await createDatabaseIfMissing(url);
    await migrate(url, await migrationsDir(files.filter((name) => name < '010')));
    await withClient(url, (client) =>
      client.query(`
        INSERT INTO wallets (id, external_id, balance, last_refno, version)
          OVERRIDING SYSTEM VALUE VALUES (61, 'paying', 100, 1, 1), (62, 'paid', 0, 0, 0);
      `),
    );
    const group = (tag: string) =>
      [1, 2, 3].map((n) => ({
        fingerprint: `${tag}-${n}`,
        from: 61,
        to: 62,
        amount: '1.00',
        currency: 'EUR',
        labels: {},
        description: null,
        traceContext: null,
      }));
    // The relay's cursor and the webhook deliveries recorded these rows' events by position.
    const slots = (events: readonly OutboxEvent[]) => events.map((event) => `${event.type} ${event.ordinal}`);
    let pool = await createDatabasePool(loadConfig({ DATABASE_URL: url, DB_POOL_SIZE: '1' }));
    try {
      await insertTransfers(pool, group('old'));
    } finally {
      await pool.end();
    }
    expect((await migrate(url)).applied).toEqual(['010_paired_debit_slots.sql']);
    pool = await createDatabasePool(loadConfig({ DATABASE_URL: url, DB_POOL_SIZE: '1' }));
    try {
      const old = await listOutboxEvents(pool);
      // As the code before 010 built them (TransferCreated at k - 1: colliding with the debit before).
      expect(slots(old)).toEqual(
        [1, 2, 3]
          .flatMap((k) => [`TransferCreated ${k - 1}`, `TransactionCreated ${k}`])
          .sort((a, b) => {
            const ordinal = (text: string) => Number(text.split(' ')[1]);
            return ordinal(a) - ordinal(b);
          }),
      );
      const made = await insertTransfers(pool, group('new'));
      const after = (await listOutboxEvents(pool)).slice(old.length);
      expect(new Set(after.map((event) => event.position)).size).toBe(after.length);
      expect(after.map((event) => `${event.type} ${event.subject}`)).toEqual(
        [...made]
          .sort((a, b) => a.ordinal - b.ordinal)
          .flatMap((transfer) => [`TransferCreated ${transfer.id}`, `TransactionCreated ${transfer.debitId}`]),
      );
    } finally {
      await pool.end();
    }
  });

  it('When a database written by the service before the write-once schema (005) is migrated, then its transactions keep their ids, the pending one is applied, and each unpublished event is published once', async ({
    expect,
  }) => {
    const url = newDatabaseUrl();
    const before005 = (await listMigrationFiles()).filter((name) => name < '005');
    await createDatabaseIfMissing(url);
    await migrate(url, await migrationsDir(before005));
    const ids = {
      first: '0b9c6d64-5bd4-4d2e-9a57-1b3f1e0a0001',
      second: '0b9c6d64-5bd4-4d2e-9a57-1b3f1e0a0002',
      rejected: '0b9c6d64-5bd4-4d2e-9a57-1b3f1e0a0003',
      pending: '0b9c6d64-5bd4-4d2e-9a57-1b3f1e0a0004',
    };
    const eventIds = Array.from({ length: 5 }, (_, i) => `7d1e1a52-3c36-4f0e-8d1c-00000000000${i + 1}`);
    // What the service wrote at 004: decided rows, a pending one, events published or not, a delivery.
    await withClient(url, (client) =>
      client.query(`
        INSERT INTO wallets (id, external_id, balance, last_refno, version)
          OVERRIDING SYSTEM VALUE VALUES (41, 'kept', 7.00, 2, 2);
        INSERT INTO transactions (id, wallet_id, amount, fingerprint, status, reason, refno, oldbalance, newbalance, finalized)
        VALUES ('${ids.first}', 41, 5.00, 'kept-1', 'applied', NULL, 1, 0, 5.00, now()),
               ('${ids.second}', 41, 2.00, 'kept-2', 'applied', NULL, 2, 5.00, 7.00, now()),
               ('${ids.rejected}', 41, -9.00, 'kept-3', 'rejected', 'insufficient_funds', NULL, NULL, NULL, now());
        INSERT INTO transactions (id, wallet_id, amount, fingerprint, labels) VALUES ('${ids.pending}', 41, 3.00, 'kept-4', '{"k": "v"}');
        INSERT INTO outbox_events (event_id, wallet_id, type, subject, data, published_at)
        SELECT e.event_id::uuid, 41, 'TransactionApplied', 'kept', jsonb_build_object('n', e.n),
               CASE WHEN e.n <= 3 THEN now() END
        FROM unnest(ARRAY['${eventIds.join("','")}']) WITH ORDINALITY AS e (event_id, n);
        INSERT INTO webhook_subscriptions (url, events, secret) VALUES ('http://127.0.0.1:9/hook', '{TransactionApplied}', 's');
        INSERT INTO webhook_deliveries (subscription_id, event_id) SELECT 1, id FROM outbox_events WHERE event_id = '${eventIds[2]}';
      `),
    );

    expect((await migrate(url)).applied.length).toBeGreaterThan(0);
    const pool = await createDatabasePool(loadConfig({ DATABASE_URL: url, DB_POOL_SIZE: '2' }));
    try {
      // The ids clients hold still find their transactions.
      expect(await getTransaction(pool, 41, ids.second)).toMatchObject({ fingerprint: 'kept-2', refno: 2 });
      expect(await getTransaction(pool, 41, ids.pending)).toMatchObject({ fingerprint: 'kept-4', status: 'pending' });

      // The unpublished events come next, once, with their ids; the published ones do not.
      const next = await findEventsAfter(pool, await readRelayCursor(pool), 1000);
      expect(next.map((event) => event.eventId)).toEqual(eventIds.slice(3));

      // The pending transaction has its marker, so a worker finds it, and applies it.
      const markers = await withClient(url, async (client) =>
        Number((await client.query('SELECT count(*) AS n FROM pending_reservations WHERE wallet_id = 41')).rows[0].n),
      );
      expect(markers).toBe(1);
      await ensurePendingMarkers(pool);
      await applyWalletBatches(pool, [41], 100);
      expect(await getTransaction(pool, 41, ids.pending)).toMatchObject({
        status: 'applied',
        refno: 3,
        oldbalance: '7.00',
        newbalance: '10.00',
      });
      const after = await findEventsAfter(pool, await readRelayCursor(pool), 1000);
      expect(after.slice(0, 2).map((event) => event.eventId)).toEqual(eventIds.slice(3));
      expect(after.slice(2).map((event) => [event.type, event.subject])).toEqual([['BalanceChanged', ids.pending]]);
      const listed = await listWalletTransactions(pool, 41, { limit: 10, labels: {}, after: null });
      expect(listed.items.map((row) => row.fingerprint)).toEqual(['kept-4', 'kept-3', 'kept-2', 'kept-1']);
      expect((await auditLedger(pool, { settled: true })).violations).toEqual([]);

      const undelivered = await withClient(url, async (client) =>
        Number(
          (await client.query('SELECT count(*) AS n FROM webhook_event_deliveries WHERE delivered_at IS NULL')).rows[0]
            .n,
        ),
      );
      expect(undelivered).toBe(1);
    } finally {
      await pool.end();
    }
  });

  it('When a migration fails, then nothing of it is applied, it is recorded as not applied, and the ones before it stay', async ({
    expect,
  }) => {
    const url = newDatabaseUrl();
    const files = await listMigrationFiles();
    await createDatabaseIfMissing(url);
    const dir = await migrationsDir(files, {
      '900_fine.sql': 'CREATE TABLE migration_fine (id int);',
      '901_breaks_halfway.sql': `
        CREATE TABLE migration_half (id int);
        INSERT INTO migration_half VALUES (1);
        ALTER TABLE wallets ADD COLUMN migration_half text;
        SELECT 1 / 0;
      `,
    });

    await expect(migrate(url, dir)).rejects.toThrow(/migration 901_breaks_halfway\.sql failed: division by zero/);

    expect(await appliedMigrations(url)).toEqual([...files, '900_fine.sql']);
    expect(await pendingMigrations(url, dir)).toEqual(['901_breaks_halfway.sql']);
    const leftovers = await withClient(url, async (client) => {
      const found = await client.query<{ table: string | null; column: string | null }>(`
        SELECT to_regclass('migration_half')::text AS table,
               (SELECT column_name FROM information_schema.columns
                WHERE table_name = 'wallets' AND column_name = 'migration_half') AS column
      `);
      return found.rows[0];
    });
    expect(leftovers).toEqual({ table: null, column: null });
    expect(await tablesOf(url)).toContain('migration_fine');
  });

  it.for([
    { code: 'USD', minorUnits: 2 },
    { code: 'JPY', minorUnits: 0 },
  ])(
    'When a database from before currencies (006) is migrated with DEFAULT_CURRENCY=$code, then its wallets get it, keep every value and their 2 digits, and no table is rewritten',
    async (defaultCurrency, { expect }) => {
      const url = newDatabaseUrl();
      const before006 = (await listMigrationFiles()).filter((name) => name < '006');
      await createDatabaseIfMissing(url);
      await migrate(url, await migrationsDir(before006));
      const files = `SELECT relname, relfilenode FROM pg_class WHERE relname IN ('wallets', 'transactions') ORDER BY 1`;
      const before = await withClient(url, async (client) => {
        await client.query(`
        INSERT INTO wallets (id, external_id, balance, last_refno, version) OVERRIDING SYSTEM VALUE VALUES (7, 'old', 12.50, 1, 1);
        INSERT INTO transactions (wallet_id, amount, fingerprint, status, refno, oldbalance, newbalance, finalized)
        VALUES (7, 12.50, 'old-1', 'applied', 1, 0, 12.50, now());
      `);
        return (await client.query(files)).rows;
      });
      await migrate(url, undefined, { defaultCurrency });
      await withClient(url, async (client) => {
        expect((await client.query(files)).rows).toEqual(before);
        // Their cents were theirs before: 2 digits stay their rule, whatever the currency's own.
        expect((await client.query(`SELECT currency, minor_units, balance::text FROM wallets`)).rows).toEqual([
          { currency: defaultCurrency.code, minor_units: 2, balance: '12.50' },
        ]);
        const pool = await createDatabasePool(loadConfig({ DATABASE_URL: url, DB_POOL_SIZE: '1' }));
        try {
          expect((await auditLedger(pool, {})).violations).toEqual([]);
        } finally {
          await pool.end();
        }
        expect((await client.query(`SELECT amount::text, newbalance::text FROM transactions`)).rows).toEqual([
          { amount: '12.50', newbalance: '12.50' },
        ]);
        // A row written by hand gets the currency the deployment had at migration.
        await client.query(`INSERT INTO wallets (external_id) VALUES ('new')`);
        expect(
          (await client.query(`SELECT currency, minor_units, balance::text FROM wallets WHERE external_id = 'new'`))
            .rows,
        ).toEqual([{ currency: defaultCurrency.code, minor_units: defaultCurrency.minorUnits, balance: '0.00' }]);
      });
    },
  );
});
