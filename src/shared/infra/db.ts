import { createPool, sql, type DatabasePool, type DriverTypeParser } from 'slonik';
import { z } from 'zod';
import type { Config } from './config.js';

export type { DatabasePool };

/**
 * NUMERIC stays text (exact money); bigint becomes a JS number (ids and refnos stay far below 2^53);
 * timestamps become ISO 8601 strings, the form the API returns.
 */
const typeParsers: DriverTypeParser[] = [
  { name: 'int8', parse: (value) => Number.parseInt(value, 10) },
  { name: 'timestamptz', parse: (value) => new Date(value).toISOString() },
];

/**
 * `applicationName` names the pool's sessions in pg_stat_activity (`wallet-api`, `wallet-worker`),
 * so an operator (and the bench) can tell whose queries and whose Postgres CPU they see; a name
 * given in DATABASE_URL wins.
 */
export function createDatabasePool(
  config: Pick<Config, 'DATABASE_URL' | 'DB_POOL_SIZE'>,
  applicationName?: string,
): Promise<DatabasePool> {
  return createPoolFor(config.DATABASE_URL, config.DB_POOL_SIZE, applicationName);
}

/**
 * The pool for reads that may lag (listings, searches): on DATABASE_READ_URL's replica when set,
 * else null (read from the primary's pool).
 */
export async function createReadPool(
  config: Pick<Config, 'DATABASE_READ_URL' | 'DB_POOL_SIZE'>,
  applicationName?: string,
): Promise<DatabasePool | null> {
  if (config.DATABASE_READ_URL === undefined) return null;
  return createPoolFor(config.DATABASE_READ_URL, config.DB_POOL_SIZE, applicationName);
}

function createPoolFor(databaseUrl: string, poolSize: number, applicationName?: string): Promise<DatabasePool> {
  const url = new URL(databaseUrl);
  if (applicationName && !url.searchParams.has('application_name')) {
    url.searchParams.set('application_name', applicationName);
  }
  return createPool(url.toString(), {
    maxPoolSize: poolSize,
    typeParsers,
    // Sized for the worker's batched writes; a request never holds a connection this long.
    statementTimeout: 60_000,
    idleTimeout: 30_000,
    connectionTimeout: 10_000,
    // slonik runs DISCARD ALL on every release by default: one more round trip per query, and it
    // would drop the named prepared statements (sql.prepared) of the hot paths, which keep their
    // plan per connection (only those whose plan holds as the tables grow: docs/design.md,
    // "Plans"). The service leaves no other session state behind (no SET or temporary tables; the
    // relay's session advisory lock is released in a finally, and dies with its connection).
    resetConnection: () => Promise.resolve(),
  });
}

/**
 * How far the replica behind `pool` trails its primary, in seconds: 0 when it has replayed all
 * the WAL it received, else the age of the last transaction it replayed; null when `pool` is not
 * on a replica (or it has replayed nothing yet). A replica that stops receiving WAL shows 0 here
 * until it gets more; pair it with the primary's pg_stat_replication for that.
 */
export async function readReplicaLagSeconds(pool: DatabasePool): Promise<number | null> {
  const lag = await pool.maybeOneFirst(sql.type(z.object({ lag: z.number().nullable() }))`
    SELECT CASE
      WHEN NOT pg_is_in_recovery() THEN NULL
      WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
      ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8
    END AS lag
  `);
  return lag ?? null;
}
