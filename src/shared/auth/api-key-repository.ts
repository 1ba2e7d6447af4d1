import { sql, type CommonQueryMethods, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { generateApiKey, type Scope } from './api-keys.js';

/** Data access for the api_keys table. The key itself is never stored, only its SHA-256 hash. */

export const apiKeyRowSchema = z.object({
  id: z.number(),
  name: z.string(),
  prefix: z.string(),
  scopes: z.array(z.string()),
  created: z.string(),
  revoked: z.string().nullable(),
});
export type ApiKeyRow = z.infer<typeof apiKeyRowSchema>;

const columns = sql.fragment`id, name, prefix, scopes, created, revoked`;

export interface CreatedApiKey {
  row: ApiKeyRow;
  /** The secret: shown once to whoever created it. */
  key: string;
}

export async function createApiKey(
  db: CommonQueryMethods,
  input: { name: string; scopes: readonly Scope[] },
): Promise<CreatedApiKey> {
  const generated = generateApiKey();
  const row = await db.one(sql.type(apiKeyRowSchema)`
    INSERT INTO api_keys (name, prefix, key_hash, scopes)
    VALUES (${input.name}, ${generated.prefix}, ${sql.binary(generated.hash)}, ${sql.array([...input.scopes], 'text')})
    RETURNING ${columns}
  `);
  return { row, key: generated.key };
}

/** True once any key was ever created, revoked ones included. */
export async function anyApiKeyExists(db: CommonQueryMethods): Promise<boolean> {
  return db.oneFirst(sql.type(z.object({ exists: z.boolean() }))`SELECT EXISTS (SELECT 1 FROM api_keys) AS exists`);
}

// Any constant works; it only has to be the same for every process that creates a first key.
const FIRST_KEY_LOCK = 7_312_604_119;

/**
 * Creates a key only if the table holds none at all (revoked ones count: an operator who revoked
 * every key does not want a new one made behind their back). Two processes starting at once
 * create one key between them: the check and the insert run under one transaction-scoped lock.
 */
export async function createFirstApiKey(
  pool: DatabasePool,
  input: { name: string; scopes: readonly Scope[] },
): Promise<CreatedApiKey | null> {
  return pool.transaction(async (tx) => {
    await tx.query(sql.unsafe`SELECT pg_advisory_xact_lock(${FIRST_KEY_LOCK})`);
    if (await anyApiKeyExists(tx)) return null;
    return createApiKey(tx, input);
  });
}

export async function listApiKeys(db: CommonQueryMethods): Promise<readonly ApiKeyRow[]> {
  return db.any(sql.type(apiKeyRowSchema)`SELECT ${columns} FROM api_keys ORDER BY id`);
}

/** Marks the key revoked; returns it, or null when no such key exists. Revoking twice keeps the first time. */
export async function revokeApiKey(db: CommonQueryMethods, id: number): Promise<ApiKeyRow | null> {
  return db.maybeOne(sql.type(apiKeyRowSchema)`
    UPDATE api_keys SET revoked = coalesce(revoked, now()) WHERE id = ${id} RETURNING ${columns}
  `);
}

const activeKeySchema = z.object({
  id: z.number(),
  name: z.string(),
  scopes: z.array(z.string()),
  keyHash: z.instanceof(Buffer),
});
export type ActiveApiKey = z.infer<typeof activeKeySchema>;

/** The active (not revoked) key with this hash, or null. */
export async function findActiveApiKeyByHash(db: CommonQueryMethods, hash: Buffer): Promise<ActiveApiKey | null> {
  return db.maybeOne(sql.type(activeKeySchema)`
    SELECT id, name, scopes, key_hash AS "keyHash" FROM api_keys
    WHERE key_hash = ${sql.binary(hash)} AND revoked IS NULL
  `);
}
