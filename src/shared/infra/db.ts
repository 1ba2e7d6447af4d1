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

export function createDatabasePool(config: Pick<Config, 'DATABASE_URL' | 'DB_POOL_SIZE'>): Promise<DatabasePool> {
  return createPool(config.DATABASE_URL, {
    maxPoolSize: config.DB_POOL_SIZE,
    typeParsers,
    // Sized for the worker's batched writes; a request never holds a connection this long.
    statementTimeout: 60_000,
    idleTimeout: 30_000,
    connectionTimeout: 10_000,
    // slonik runs DISCARD ALL on every release by default: one more round trip per query. The
    // service leaves no session state behind (no SET, temporary tables or prepared statements;
    // the relay's session advisory lock is released in a finally, and dies with its connection).
    resetConnection: () => Promise.resolve(),
  });
}
