import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { hasAllLabels, whereAll } from '../infra/sql-conditions.js';
import type { Currency } from '../ledger/currency.js';

/** Data access for the wallets table. */

const labelsSchema = z.record(z.string(), z.string());

export const walletRowSchema = z.object({
  id: z.number(),
  externalId: z.string(),
  labels: labelsSchema,
  balance: z.string(),
  /** Balance minus live holds (migration 008). */
  available: z.string(),
  currency: z.string(),
  minorUnits: z.number(),
  created: z.string(),
});
export type WalletRow = z.infer<typeof walletRowSchema>;

const walletColumns = sql.fragment`id, external_id AS "externalId", labels, balance::text AS balance, (balance - held)::text AS available, currency, minor_units AS "minorUnits", created`;

export interface NewWallet {
  externalId: string;
  labels: Record<string, string>;
  currency: Currency;
}

/** Inserts the wallet and its outbox row (a WalletCreated event) in one statement; null when its externalId is taken. */
export async function insertWallet(db: CommonQueryMethods, wallet: NewWallet): Promise<WalletRow | null> {
  return db.maybeOne(sql.type(walletRowSchema)`
    WITH created AS (
      INSERT INTO wallets (external_id, labels, currency, minor_units)
      VALUES (${wallet.externalId}, ${sql.jsonb(wallet.labels)}, ${wallet.currency.code}, ${wallet.currency.minorUnits})
      ON CONFLICT (external_id) DO NOTHING
      RETURNING *
    ), announced AS (
      INSERT INTO outbox (kind, wallet_id) SELECT 'wallet_created', id FROM created
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

/** The currency of each of the wallets that exist among `ids`. */
export async function findWalletCurrencies(
  db: CommonQueryMethods,
  ids: readonly number[],
): Promise<ReadonlyMap<number, Currency>> {
  const rows = await db.any(sql.type(z.object({ id: z.number(), code: z.string(), minorUnits: z.number() }))`
    SELECT id, currency AS code, minor_units AS "minorUnits" FROM wallets WHERE id = ANY(${sql.array(ids, 'int8')})
  `);
  return new Map(rows.map(({ id, code, minorUnits }) => [id, { code, minorUnits }]));
}
