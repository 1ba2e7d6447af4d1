/** auth: API keys (format, hashing, scopes, storage) and the per-caller rate limit. */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * API keys: what they look like, how they are hashed, and what each scope allows.
 *
 * A key is `wk_` followed by 32 random bytes in base64url (43 characters): 256 bits of entropy.
 * Only its SHA-256 hash is stored. A fast hash is the right tool here: slow password hashes
 * (bcrypt, scrypt, argon2) exist to make guessing low-entropy *passwords* expensive, and nobody
 * can enumerate a 256-bit space however fast the hash is. A fast hash also keeps verification
 * cheap enough to do on every request.
 */

export const SCOPES = ['wallets:read', 'wallets:write', 'transactions:write', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export const KEY_PREFIX = 'wk_';
const KEY_BYTES = 32;
/** `wk_` + base64url of 32 bytes: exactly 43 characters of [A-Za-z0-9_-]. */
const KEY_PATTERN = /^wk_[A-Za-z0-9_-]{43}$/;
/** How much of a key `apikey list` shows: enough to recognise it, far too little to use it. */
const DISPLAY_PREFIX_LENGTH = KEY_PREFIX.length + 8;

export function isScope(value: string): value is Scope {
  return (SCOPES as readonly string[]).includes(value);
}

/** Parses `wallets:read,admin` into scopes; throws naming the first unknown one. */
export function parseScopes(list: string): Scope[] {
  const names = list
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name.length > 0);
  if (names.length === 0) throw new Error(`give at least one scope: ${SCOPES.join(', ')}`);
  for (const name of names) {
    if (!isScope(name)) throw new Error(`unknown scope "${name}"; scopes are ${SCOPES.join(', ')}`);
  }
  return [...new Set(names as Scope[])];
}

/** `admin` implies every other scope. */
export function hasScope(granted: readonly string[], needed: Scope): boolean {
  return granted.includes('admin') || granted.includes(needed);
}

export interface GeneratedKey {
  /** The secret, shown to its owner once and never stored. */
  key: string;
  hash: Buffer;
  /** Non-secret start of the key, stored for `apikey list`. */
  prefix: string;
}

export function generateApiKey(): GeneratedKey {
  const key = KEY_PREFIX + randomBytes(KEY_BYTES).toString('base64url');
  return { key, hash: hashApiKey(key), prefix: key.slice(0, DISPLAY_PREFIX_LENGTH) };
}

export function hashApiKey(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

/** Cheap shape check before any lookup: anything else is simply not a key. */
export function looksLikeApiKey(value: string): boolean {
  return KEY_PATTERN.test(value);
}

/** Constant-time comparison of two key hashes. */
export function sameHash(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
