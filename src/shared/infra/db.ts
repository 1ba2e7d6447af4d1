import { createPool, type DatabasePool, type DriverTypeParser } from 'slonik';
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
  const url = new URL(config.DATABASE_URL);
  if (applicationName && !url.searchParams.has('application_name')) {
    url.searchParams.set('application_name', applicationName);
  }
  return createPool(url.toString(), {
    maxPoolSize: config.DB_POOL_SIZE,
    typeParsers,
    // Sized for the worker's batched writes; a request never holds a connection this long.
    statementTimeout: 60_000,
    idleTimeout: 30_000,
    connectionTimeout: 10_000,
    // slonik runs DISCARD ALL on every release by default: one more round trip per query, and it
    // would drop the named prepared statements (sql.prepared) of the hot paths, which keep their
    // plan per connection. The service leaves no other session state behind (no SET or temporary
    // tables; the relay's session advisory lock is released in a finally, and dies with its connection).
    resetConnection: () => Promise.resolve(),
  });
}
