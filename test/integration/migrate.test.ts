import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createDatabaseIfMissing,
  dropDatabase,
  listMigrationFiles,
  migrate,
  pendingMigrations,
} from '../../src/shared/infra/migrate.js';

const databaseUrl = `postgres://postgres@127.0.0.1:5432/wallet_test_migrate_${randomBytes(4).toString('hex')}`;

afterAll(async () => {
  await dropDatabase(databaseUrl);
});

describe('migrations', () => {
  it('When the database is new, then --initdb creates it and applies every migration once, however often it runs', async () => {
    expect(await createDatabaseIfMissing(databaseUrl)).toBe(true);
    expect(await createDatabaseIfMissing(databaseUrl)).toBe(false);
    const files = await listMigrationFiles();
    expect(files.length).toBeGreaterThan(0);
    expect(await pendingMigrations(databaseUrl)).toEqual(files);

    // Several containers starting at once must not apply a migration twice.
    const results = await Promise.all([migrate(databaseUrl), migrate(databaseUrl), migrate(databaseUrl)]);
    expect(results.flatMap((result) => result.applied).sort()).toEqual(files);
    expect(await pendingMigrations(databaseUrl)).toEqual([]);
    expect((await migrate(databaseUrl)).applied).toEqual([]);

    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      const tables = await client.query<{ name: string }>(
        "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
      );
      expect(tables.rows.map((row) => row.name)).toEqual([
        'api_keys',
        'outbox',
        'outbox_relay_cursor',
        'pending_reservations',
        'pending_reservations_floor',
        'schema_migrations',
        'transactions',
        'wallets',
        'webhook_event_deliveries',
        'webhook_subscriptions',
      ]);
    } finally {
      await client.end();
    }
  });

  it('When --dropdb runs, then the database is gone and a second drop is harmless', async () => {
    await dropDatabase(databaseUrl);
    await dropDatabase(databaseUrl);
    expect(await createDatabaseIfMissing(databaseUrl)).toBe(true);
  });
});
