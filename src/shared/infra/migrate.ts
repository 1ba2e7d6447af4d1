import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

/** Plain SQL files named NNN_description.sql, applied in order, each once, each in its own transaction. */
export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../migrations');

// Any constant works; it only has to be the same for every process that migrates this database.
const MIGRATION_LOCK_KEY = 7_312_604_118;

export interface MigrationResult {
  applied: string[];
  alreadyApplied: string[];
}

async function withClient<T>(connectionString: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export async function listMigrationFiles(dir = MIGRATIONS_DIR): Promise<string[]> {
  const names = await readdir(dir);
  return names.filter((name) => /^\d+_[\w-]+\.sql$/.test(name)).sort();
}

/**
 * What a migration may need from the deployment's settings: the currency (and its minor units)
 * that migration 006 gives wallets created before currencies. Without it, EUR with 2.
 */
export interface MigrationSettings {
  defaultCurrency?: { code: string; minorUnits: number };
}

/** Applies the migrations not yet applied. Safe to run again, and from several processes at once. */
export async function migrate(
  databaseUrl: string,
  dir = MIGRATIONS_DIR,
  settings: MigrationSettings = {},
): Promise<MigrationResult> {
  const files = await listMigrationFiles(dir);
  return withClient(databaseUrl, async (client) => {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    if (settings.defaultCurrency) {
      await client.query(
        "SELECT set_config('wallet.default_currency', $1, false), set_config('wallet.default_minor_units', $2, false)",
        [settings.defaultCurrency.code, String(settings.defaultCurrency.minorUnits)],
      );
    }
    try {
      await client.query(
        'CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
      );
      const done = new Set(
        (await client.query<{ name: string }>('SELECT name FROM schema_migrations')).rows.map((row) => row.name),
      );
      const result: MigrationResult = { applied: [], alreadyApplied: [] };
      for (const name of files) {
        if (done.has(name)) {
          result.alreadyApplied.push(name);
          continue;
        }
        const body = await readFile(path.join(dir, name), 'utf8');
        await client.query('BEGIN');
        try {
          await client.query(body);
          await client.query('INSERT INTO schema_migrations (name) VALUES ($1)', [name]);
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK');
          throw new Error(`migration ${name} failed: ${(error as Error).message}`, { cause: error });
        }
        result.applied.push(name);
      }
      return result;
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
    }
  });
}

/** Names of the migrations in `dir` that the database has not applied (all of them if it has none). */
export async function pendingMigrations(databaseUrl: string, dir = MIGRATIONS_DIR): Promise<string[]> {
  const files = await listMigrationFiles(dir);
  return withClient(databaseUrl, async (client) => {
    const table = await client.query<{ t: string | null }>("SELECT to_regclass('schema_migrations')::text AS t");
    if (table.rows[0]?.t === null) return files;
    const done = new Set(
      (await client.query<{ name: string }>('SELECT name FROM schema_migrations')).rows.map((row) => row.name),
    );
    return files.filter((name) => !done.has(name));
  });
}

function splitDatabaseUrl(databaseUrl: string): { name: string; maintenanceUrl: string } {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!name) throw new Error('DATABASE_URL names no database');
  url.pathname = '/postgres';
  return { name, maintenanceUrl: url.toString() };
}

/** Creates the database DATABASE_URL names, if it does not exist yet. Returns whether it created it. */
export async function createDatabaseIfMissing(databaseUrl: string): Promise<boolean> {
  const { name, maintenanceUrl } = splitDatabaseUrl(databaseUrl);
  return withClient(maintenanceUrl, async (client) => {
    const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (exists.rowCount) return false;
    try {
      await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
    } catch (error) {
      // Another process created it between our check and our create.
      if ((error as { code?: string }).code === '42P04') return false;
      throw error;
    }
    return true;
  });
}

export async function dropDatabase(databaseUrl: string): Promise<void> {
  const { name, maintenanceUrl } = splitDatabaseUrl(databaseUrl);
  await withClient(maintenanceUrl, (client) =>
    client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(name)} WITH (FORCE)`),
  );
}
