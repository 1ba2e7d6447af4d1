import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { hasAllLabels, whereAll } from '../infra/sql-conditions.js';

/** Data access for the wallets table. */

const labelsSchema = z.record(z.string(), z.string());

export const walletRowSchema = z.object({
  id: z.number(),
  externalId: z.string(),
  labels: labelsSchema,
  balance: z.string(),
  created: z.string(),
});
export type WalletRow = z.infer<typeof walletRowSchema>;

const walletColumns = sql.fragment`id, external_id AS "externalId", labels, balance::text AS balance, created`;

export interface NewWallet {
  externalId: string;
  labels: Record<string, string>;
}

/** Inserts the wallet and its WalletCreated event in one statement; null when its externalId is taken. */
export async function insertWallet(db: CommonQueryMethods, wallet: NewWallet): Promise<WalletRow | null> {
  return db.maybeOne(sql.type(walletRowSchema)`
    WITH created AS (
      INSERT INTO wallets (external_id, labels)
      VALUES (${wallet.externalId}, ${sql.jsonb(wallet.labels)})
      ON CONFLICT (external_id) DO NOTHING
      RETURNING *
    ), created_event AS (
      INSERT INTO outbox_events (wallet_id, type, subject, data)
      SELECT id, 'WalletCreated', id::text,
             jsonb_build_object('id', id, 'externalId', external_id, 'labels', labels, 'created', created)
      FROM created
    )
    SELECT ${walletColumns} FROM created
  `);
}

export async function findWalletById(db: CommonQueryMethods, id: number): Promise<WalletRow | null> {
  return db.maybeOne(sql.type(walletRowSchema)`SELECT ${walletColumns} FROM wallets WHERE id = ${id}`);
}

export async function findWalletByExternalId(db: CommonQueryMethods, externalId: string): Promise<WalletRow | null> {
  return db.maybeOne(sql.type(walletRowSchema)`SELECT ${walletColumns} FROM wallets WHERE external_id = ${externalId}`);
}

export async function findWalletBalance(db: CommonQueryMethods, id: number): Promise<string | null> {
  return db.maybeOneFirst(sql.type(z.object({ balance: z.string() }))`
    SELECT balance::text AS balance FROM wallets WHERE id = ${id}
  `);
}

const ledgerStateSchema = z.object({
  id: z.number(),
  balance: z.string(),
  lastRefno: z.number(),
  version: z.number(),
});
export type WalletLedgerRow = z.infer<typeof ledgerStateSchema>;

/** The balance, last refno and version of each of `ids` that exists. */
export async function findLedgerStates(
  db: CommonQueryMethods,
  ids: readonly number[],
): Promise<readonly WalletLedgerRow[]> {
  return db.any(sql.type(ledgerStateSchema)`
    SELECT id, balance::text AS balance, last_refno AS "lastRefno", version
    FROM wallets WHERE id = ANY(${sql.array(ids, 'int8')})
  `);
}

export interface LedgerStateUpdate {
  id: number;
  expectedVersion: number;
  balance: string;
  lastRefno: number;
}

/**
 * Writes each wallet's new balance if it is still at its expected version, in one statement.
 * Returns the wallets written; any other one had a concurrent writer, and its decisions must not
 * be recorded. A wallet whose row another session holds is skipped, not waited for (it counts as
 * not written and is retried alone): one busy row must not hold up a whole group of wallets.
 */
export async function updateLedgerStates(
  db: CommonQueryMethods,
  updates: readonly LedgerStateUpdate[],
): Promise<ReadonlySet<number>> {
  if (updates.length === 0) return new Set();
  const tuples = [...updates]
    .sort((a, b) => a.id - b.id)
    .map((update) => [update.id, update.expectedVersion, update.balance, update.lastRefno]);
  const written = await db.anyFirst(sql.type(z.object({ id: z.number() }))`
    WITH expected AS (
      SELECT * FROM ${sql.unnest(tuples, ['int8', 'int8', 'numeric', 'int8'])} AS e (id, version, balance, last_refno)
    ), locked AS (
      SELECT w.id FROM wallets w JOIN expected e ON e.id = w.id AND e.version = w.version
      ORDER BY w.id FOR NO KEY UPDATE OF w SKIP LOCKED
    )
    UPDATE wallets AS w
    SET balance = e.balance, last_refno = e.last_refno, version = w.version + 1
    FROM expected e
    WHERE w.id = e.id AND w.version = e.version AND w.id IN (SELECT id FROM locked)
    RETURNING w.id
  `);
  return new Set(written);
}

/** Wallets whose labels include all of `labels`, newest first, before wallet `beforeId` when given. */
export async function findWalletsByLabels(
  db: CommonQueryMethods,
  filter: { labels: Record<string, string>; beforeId: number | null; limit: number },
): Promise<readonly WalletRow[]> {
  const where = whereAll([
    hasAllLabels(filter.labels),
    filter.beforeId === null ? null : sql.fragment`id < ${filter.beforeId}`,
  ]);
  return db.any(sql.type(walletRowSchema)`
    SELECT ${walletColumns} FROM wallets ${where} ORDER BY id DESC LIMIT ${filter.limit}
  `);
}
