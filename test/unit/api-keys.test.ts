import { describe, expect, it } from 'vitest';
import { ApiKeyVerifier } from '../../src/api/auth.js';
import { findDuplicateKey } from '../../src/api/middleware/json-duplicate-keys.js';
import {
  generateApiKey,
  hashApiKey,
  hasScope,
  looksLikeApiKey,
  parseScopes,
  sameHash,
} from '../../src/shared/auth/api-keys.js';

describe('API keys', () => {
  it('are wk_ plus 43 base64url characters (256 random bits), different every time, with a non-secret prefix', () => {
    const a = generateApiKey();
    const b = generateApiKey();
    expect(a.key).toMatch(/^wk_[A-Za-z0-9_-]{43}$/);
    expect(a.key).not.toBe(b.key);
    expect(a.prefix).toBe(a.key.slice(0, 11));
    expect(a.hash.equals(hashApiKey(a.key))).toBe(true);
    expect(a.hash).toHaveLength(32);
    expect(looksLikeApiKey(a.key)).toBe(true);
    expect(looksLikeApiKey(`${a.key}x`)).toBe(false);
    expect(looksLikeApiKey('wk_short')).toBe(false);
  });

  it('compare hashes in constant time, and never equal for different lengths', () => {
    const hash = hashApiKey('wk_x');
    expect(sameHash(hash, hashApiKey('wk_x'))).toBe(true);
    expect(sameHash(hash, hashApiKey('wk_y'))).toBe(false);
    expect(sameHash(hash, hash.subarray(0, 16))).toBe(false);
  });

  it('parse scope lists, refusing unknown scopes and empty lists', () => {
    expect(parseScopes('wallets:read, transactions:write,wallets:read')).toEqual([
      'wallets:read',
      'transactions:write',
    ]);
    expect(() => parseScopes('wallets:read,root')).toThrow(/unknown scope "root"/);
    expect(() => parseScopes(' , ')).toThrow(/at least one scope/);
  });

  it('grant a scope when held, and every scope to admin', () => {
    expect(hasScope(['wallets:read'], 'wallets:read')).toBe(true);
    expect(hasScope(['wallets:read'], 'wallets:write')).toBe(false);
    expect(hasScope(['admin'], 'transactions:write')).toBe(true);
    expect(hasScope([], 'wallets:read')).toBe(false);
  });
});

describe('ApiKeyVerifier', () => {
  const key = generateApiKey();
  const row = { id: 7, name: 'k', scopes: ['wallets:read'], keyHash: key.hash };

  function fakeDb(rows: () => (typeof row)[]) {
    let queries = 0;
    const db = {
      maybeOne: () => {
        queries += 1;
        return Promise.resolve(rows()[0] ?? null);
      },
    };
    return { db: db as never, queries: () => queries };
  }

  it('When a key was verified less than the TTL ago, then it is trusted without asking the database; after it, the database decides again', async () => {
    let now = 1_000;
    let active = true;
    const { db, queries } = fakeDb(() => (active ? [row] : []));
    const verifier = new ApiKeyVerifier(db, 5_000, () => now);
    expect(await verifier.verify(key.key)).toMatchObject({ keyId: 7, scopes: ['wallets:read'] });
    active = false; // revoked
    now += 4_999;
    expect(await verifier.verify(key.key)).toMatchObject({ keyId: 7 });
    expect(queries()).toBe(1);
    now += 2;
    expect(await verifier.verify(key.key)).toBeNull();
    expect(queries()).toBe(2);
  });

  it('When a token does not look like a key, then the database is not asked; unknown keys are never cached', async () => {
    const { db, queries } = fakeDb(() => []);
    const verifier = new ApiKeyVerifier(db, 5_000);
    expect(await verifier.verify('nope')).toBeNull();
    expect(queries()).toBe(0);
    const unknown = generateApiKey().key;
    expect(await verifier.verify(unknown)).toBeNull();
    expect(await verifier.verify(unknown)).toBeNull();
    expect(queries()).toBe(2);
  });
});

describe('findDuplicateKey', () => {
  it.each([
    ['{"a":1,"a":2}', 'a'],
    ['{"a":1,"\\u0061":2}', 'a'],
    ['{"x":{"b":1,"c":{"d":[{"e":1,"e":2}]}}}', 'e'],
    ['[{"a":1},{"a":1,"b":{"a":3},"b":0}]', 'b'],
  ])('finds the repeated key in %s', (text, key) => {
    expect(findDuplicateKey(text)).toBe(key);
  });

  it.each([
    '{"a":1,"b":{"a":2}}',
    '[{"a":1},{"a":2}]',
    '{"a":"a","b":"a"}',
    '{"a":["a","a"]}',
    '{"a\\"":1,"a":2}',
    '{"a":"}{,\\"a\\":"}',
    '{"a": ',
    '',
  ])('finds none in %s', (text) => {
    expect(findDuplicateKey(text)).toBeNull();
  });
});
