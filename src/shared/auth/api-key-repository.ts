import { sql, type CommonQueryMethods } from 'slonik';
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
