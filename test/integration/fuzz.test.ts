import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { request, type HttpResult } from '../support/http.js';
import { createTestEnv, startTestApi, type TestEnv } from '../support/test-env.js';

/**
 * Hostile input: thousands of generated bad requests against the real API. Every answer must be
 * a 4xx application/problem+json (never a 5xx, never a stack trace or SQL), and the database must
 * be exactly as before. Every generated request is invalid by construction (or aimed at a wallet
 * that does not exist), so any change in the database is a bug. Counts per category are printed.
 */

let env: TestEnv;
let api: Awaited<ReturnType<typeof startTestApi>>;
let walletId: number;
let otherWalletId: number;
let usdWalletId: number;
const MISSING_WALLET = 987_654_321;
const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Date.now() % 2 ** 31;

beforeAll(async () => {
  env = await createTestEnv('fuzz');
  api = await startTestApi(env);
  walletId = (await request(api.url, 'POST', '/wallets', { json: { externalId: 'fuzz-target' } })).body.id;
  otherWalletId = (await request(api.url, 'POST', '/wallets', { json: { externalId: 'fuzz-other' } })).body.id;
  usdWalletId = (await request(api.url, 'POST', '/wallets', { json: { externalId: 'fuzz-usd', currency: 'USD' } })).body
    .id;
  // Money to move: a refused transfer must be refused for its body, not for want of funds.
  await env.pool.query(sql.unsafe`UPDATE wallets SET balance = 1000 WHERE id = ${walletId}`);
});

afterAll(async () => {
  await api?.close();
  await env?.destroy();
});

/** A fingerprint of every row of wallets, transactions, transfers and holds. */
const databaseChecksum = () =>
  env.pool.oneFirst(sql.type(z.object({ checksum: z.string() }))`
    SELECT md5(
      coalesce((SELECT string_agg(w::text, ',' ORDER BY w.id) FROM wallets w), '') || '|' ||
      coalesce((SELECT string_agg(t::text, ',' ORDER BY t.seq) FROM transactions t), '') || '|' ||
      coalesce((SELECT string_agg(tr::text, ',' ORDER BY tr.seq) FROM transfers tr), '') || '|' ||
      coalesce((SELECT string_agg(h::text, ',' ORDER BY h.seq) FROM holds h), '')
    ) AS checksum
  `);

interface BadRequest {
  method: string;
  path: string;
  /** Sent as is. */
  raw?: string;
  /** Sent as JSON.stringify(json). */
  json?: unknown;
  contentType?: string | null;
}

const tallies = new Map<string, Map<number, number>>();

/** Anything a server might leak: stack frames, SQL, driver errors. */
const LEAK =
  /\bat \S+ \(|\bat \S+:\d+:\d+|node_modules|syntax error at|violates|duplicate key value|relation "|SQLSTATE|Error:/;

async function send(category: string, bad: BadRequest, status?: number): Promise<HttpResult> {
  const headers: Record<string, string> = {};
  if (bad.contentType !== null) headers['content-type'] = bad.contentType ?? 'application/json';
  const response = await request(api.url, bad.method, bad.path, {
    headers,
    ...(bad.json !== undefined ? { raw: JSON.stringify(bad.json) } : bad.raw !== undefined ? { raw: bad.raw } : {}),
  });
  const counts = tallies.get(category) ?? new Map<number, number>();
  counts.set(response.status, (counts.get(response.status) ?? 0) + 1);
  tallies.set(category, counts);
  const what = `${bad.method} ${bad.path.slice(0, 120)} ${String(bad.raw ?? JSON.stringify(bad.json) ?? '').slice(0, 300)}`;
  expect(response.status, `${what} → ${response.status} ${response.text.slice(0, 300)}`).toBeGreaterThanOrEqual(400);
  expect(response.status, `${what} → ${response.status} ${response.text.slice(0, 300)}`).toBeLessThan(500);
  if (status !== undefined) expect(response.status, `${what} → ${response.text.slice(0, 300)}`).toBe(status);
  expect(response.headers.get('content-type'), what).toMatch(/^application\/problem\+json/);
  expect(response.body?.status, what).toBe(response.status);
  expect(response.text, what).not.toMatch(LEAK);
  return response;
}

/** `status`: the one answer every request of the category must get (else any 4xx will do). */
async function fuzz(
  category: string,
  numRuns: number,
  requests: fc.Arbitrary<BadRequest>,
  status?: number,
): Promise<void> {
  await fc.assert(
    fc.asyncProperty(requests, async (bad) => {
      await send(category, bad, status);
    }),
    { numRuns, seed, endOnFailure: true },
  );
}

// ---- building blocks -------------------------------------------------------------------------

const walletBody = () => ({ externalId: `fuzz-${Math.random().toString(36).slice(2)}`, labels: { a: 'b' } });
const transactionBody = () => ({ amount: '10.00', fingerprint: `fuzz-${Math.random().toString(36).slice(2)}` });
const postWallet = (body: unknown): BadRequest => ({ method: 'POST', path: '/wallets', json: body });
const postTransaction = (body: unknown, wallet = walletId): BadRequest => ({
  method: 'POST',
  path: `/wallets/${wallet}/transactions`,
  json: body,
});

/** Not a string, and not something that parses as one. */
const notAString = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 3 }),
);

/** The rule for amounts, written independently of the service's parser: the oracle for "invalid". */
function isValidAmount(value: unknown): boolean {
  let text: string;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return false;
    text = String(value);
  } else if (typeof value === 'string') {
    text = value;
  } else {
    return false;
  }
  if (!/^-?\d+(\.\d{1,2})?$/.test(text)) return false;
  const magnitude = Math.abs(Number(text));
  return magnitude >= 1 && magnitude <= 1_000_000_000;
}

/** A random string with at least one NUL or lone surrogate somewhere. */
const unstorableText = fc
  .tuple(
    fc.string({ unit: 'grapheme', maxLength: 40 }),
    fc.constantFrom('\u0000', '\ud800', '\udfff', '\udbff', '\u0000\u0000'),
    fc.nat(),
  )
  .map(([text, bad, at]) => {
    const cut = at % (text.length + 1);
    return text.slice(0, cut) + bad + text.slice(cut);
  });

const SQL = [
  "' OR '1'='1",
  "'; DROP TABLE wallets; --",
  '1; DELETE FROM transactions',
  "' UNION SELECT key_hash FROM api_keys --",
  '"; UPDATE wallets SET balance = 1e9; --',
  "\\'; SELECT pg_sleep(10); --",
  '$$; TRUNCATE wallets; $$',
  "1' AND 1=(SELECT COUNT(*) FROM pg_tables) --",
  '%27%20OR%201%3D1',
  '/**/OR/**/1=1',
];
const sqlText = fc
  .tuple(fc.constantFrom(...SQL), fc.string({ maxLength: 10 }))
  .map(([attack, noise]) => `${noise}${attack}`);

/** `.` and `..` are not ids: the URL resolves them away (to another, valid, route) before it is sent. */
const notDotSegment = (segment: string) => segment !== '.' && segment !== '..';
/** A segment in a wallet id's place must not spell an id: `/wallets/1/holds` is a fine request. */
const notAWalletId = (segment: string) => !/^[1-9][0-9]*$/.test(segment);

// ---- the categories --------------------------------------------------------------------------

describe('hostile input', () => {
  let before: string;
  beforeAll(async () => {
    before = await databaseChecksum();
  });

  afterAll(() => {
    const lines = [...tallies].map(([category, counts]) => {
      const total = [...counts.values()].reduce((sum, n) => sum + n, 0);
      const statuses = [...counts].sort(([a], [b]) => a - b).map(([status, n]) => `${status}×${n}`);
      return `  ${category.padEnd(16)} ${String(total).padStart(5)}  ${statuses.join(' ')}`;
    });
    const total = [...tallies.values()].flatMap((counts) => [...counts.values()]).reduce((sum, n) => sum + n, 0);
    console.log(`fuzz (seed ${seed}): ${total} requests\n${lines.join('\n')}`);
  });

  it('wrong types in every field', async () => {
    const wallet = fc.oneof(
      notAString.map((externalId) => postWallet({ externalId })),
      fc
        .oneof(fc.integer(), fc.string(), fc.array(fc.string()), fc.constant(null))
        .map((labels) => postWallet({ externalId: 'x', labels })),
      fc
        .oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string()), fc.object())
        .map((value) => postWallet({ externalId: 'x', labels: { key: value } })),
    );
    const transaction = fc.oneof(
      fc
        .oneof(fc.boolean(), fc.constant(null), fc.array(fc.integer()), fc.object())
        .map((amount) => postTransaction({ ...transactionBody(), amount })),
      notAString.map((fingerprint) => postTransaction({ ...transactionBody(), fingerprint })),
      fc
        .oneof(fc.integer(), fc.boolean(), fc.array(fc.string()), fc.object())
        .map((description) => postTransaction({ ...transactionBody(), description })),
      fc
        .oneof(fc.integer(), fc.string(), fc.constant(null))
        .map((labels) => postTransaction({ ...transactionBody(), labels })),
      fc
        .jsonValue()
        .filter((body) => body === null || typeof body !== 'object' || Array.isArray(body))
        .map(postWallet),
    );
    await fuzz('wrong types', 400, fc.oneof(wallet, transaction));
  });

  it('huge, tiny and over-precise numbers', async () => {
    const amount = fc
      .oneof(
        fc.double({ noNaN: true }),
        fc.double({ min: -1, max: 1, noNaN: true }),
        fc.integer({ min: 1_000_000_001, max: Number.MAX_SAFE_INTEGER }).map((n) => (n % 2 ? n : -n)),
        fc.integer({ min: 100, max: 10_000_000 }).map((n) => n / 1000), // three fractional digits
        fc.constantFrom(Number.MAX_VALUE, Number.MIN_VALUE, -Number.MIN_VALUE, 0, -0, 0.999, -0.999, 1_000_000_000.01),
      )
      .filter((value) => !isValidAmount(value));
    const bigLiteral = fc.bigInt({ min: 10n ** 16n, max: 10n ** 40n }).map((big) => ({
      method: 'POST',
      path: `/wallets/${walletId}/transactions`,
      raw: `{"amount":${big},"fingerprint":"big"}`,
    }));
    await fuzz(
      'numbers',
      400,
      fc.oneof(
        amount.map((value) => postTransaction({ ...transactionBody(), amount: value })),
        bigLiteral,
      ),
    );
  });

  it('NaN, Infinity and other number-like strings', async () => {
    const special = fc.constantFrom(
      'NaN',
      'Infinity',
      '-Infinity',
      '+1',
      '1e3',
      '1E3',
      '0x10',
      '0b11',
      '1_000',
      ' 10',
      '10 ',
      '\t10',
      '١٠',
      '１０',
      '10.001',
      '',
      '-',
      '.',
      '1.',
      '.5',
      '--1',
      '1e400',
      '0.99',
      '-0.99',
      '1000000000.01',
      'null',
      'true',
      '1,5',
      '10.0.0',
      '½',
      '∞',
      '-0',
      '00.001',
      '1e-2',
    );
    const anyString = fc.string({ maxLength: 40 }).filter((text) => !isValidAmount(text));
    await fuzz(
      'number strings',
      300,
      fc.oneof(special, anyString).map((amount) => postTransaction({ ...transactionBody(), amount })),
    );
  });

  it('1e400 and other out-of-range literals in the raw JSON text', async () => {
    const literal = fc.constantFrom(
      '1e400',
      '-1e400',
      '1e-400',
      '1E400',
      '1.8e308',
      '-0',
      '0e0',
      '1e+9999',
      '123456789012345678901234567890.5',
    );
    const placed = fc
      .tuple(literal, fc.constantFrom('amount', 'externalId', 'fingerprint', 'description', 'label'))
      .map(([number, field]): BadRequest => {
        switch (field) {
          case 'amount':
            return {
              method: 'POST',
              path: `/wallets/${walletId}/transactions`,
              raw: `{"amount":${number},"fingerprint":"f1e400"}`,
            };
          case 'externalId':
            return { method: 'POST', path: '/wallets', raw: `{"externalId":${number}}` };
          case 'label':
            return { method: 'POST', path: '/wallets', raw: `{"externalId":"x1e400","labels":{"k":${number}}}` };
          default:
            return {
              method: 'POST',
              path: `/wallets/${walletId}/transactions`,
              raw: `{"amount":"5.00","fingerprint":"f","${field}":${number}}`.replace(
                '"fingerprint":"f","fingerprint"',
                '"fingerprint"',
              ),
            };
        }
      });
    await fuzz('1e400 literals', 150, placed);
  });

  it('NUL, lone surrogates and raw control characters', async () => {
    const escaped = fc
      .tuple(unstorableText, fc.constantFrom('externalId', 'labelKey', 'labelValue', 'fingerprint', 'description'))
      .map(([text, field]): BadRequest => {
        switch (field) {
          case 'externalId':
            return postWallet({ externalId: text });
          case 'labelKey':
            return postWallet({ externalId: 'x', labels: { [text]: 'v' } });
          case 'labelValue':
            return postWallet({ externalId: 'x', labels: { k: text } });
          case 'fingerprint':
            return postTransaction({ ...transactionBody(), fingerprint: text });
          default:
            return postTransaction({ ...transactionBody(), description: text });
        }
      });
    // Unescaped control characters inside a JSON string are not JSON at all.
    const rawControl = fc
      .tuple(fc.integer({ min: 0, max: 0x1f }), fc.string({ maxLength: 10 }))
      .map(([code, text]) => ({
        method: 'POST',
        path: '/wallets',
        raw: `{"externalId":"${text.replace(/["\\]/g, '')}${String.fromCharCode(code)}"}`,
      }));
    await fuzz('unicode/control', 400, fc.oneof(escaped, rawControl));
  });

  it('very long strings and bodies', async () => {
    const long = (min: number, max: number) =>
      fc.integer({ min, max }).chain((n) => fc.constantFrom('x', 'é', '😀', "'").map((c) => c.repeat(n)));
    const request = fc.oneof(
      long(256, 4000).map((externalId) => postWallet({ externalId })),
      long(256, 4000).map((fingerprint) => postTransaction({ ...transactionBody(), fingerprint })),
      long(1025, 5000).map((description) => postTransaction({ ...transactionBody(), description })),
      long(256, 2000).map((key) => postWallet({ externalId: 'x', labels: { [key]: 'v' } })),
      long(1025, 5000).map((value) => postWallet({ externalId: 'x', labels: { k: value } })),
      fc.integer({ min: 51, max: 200 }).map((n) =>
        postWallet({
          externalId: 'x',
          labels: Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'v'])),
        }),
      ),
      long(17_000, 200_000).map((padding) => postWallet({ externalId: 'x', labels: { padding } })), // over BODY_LIMIT: 413
    );
    await fuzz('long strings', 250, request);
  });

  it('deeply nested JSON', async () => {
    const nested = fc
      .tuple(
        fc.integer({ min: 20, max: 6000 }),
        fc.constantFrom('[', '{"a":'),
        fc.constantFrom('externalId', 'labels', 'amount', 'root'),
      )
      .map(([depth, open, field]): BadRequest => {
        const close = open === '[' ? ']' : '}';
        const deep = `${open.repeat(depth)}1${close.repeat(depth)}`;
        if (field === 'root') return { method: 'POST', path: '/wallets', raw: deep };
        if (field === 'amount')
          return {
            method: 'POST',
            path: `/wallets/${walletId}/transactions`,
            raw: `{"amount":${deep},"fingerprint":"deep"}`,
          };
        return {
          method: 'POST',
          path: '/wallets',
          raw: `{"externalId":"deep","${field}":${deep}}`.replace('"externalId":"deep","externalId"', '"externalId"'),
        };
      });
    await fuzz('deep JSON', 150, nested);
  });

  it('SQL-looking text in paths, labels and fields', async () => {
    const inPath = fc
      .tuple(
        sqlText,
        fc.constantFrom(
          '/wallets/%s',
          '/wallets/%s/balance',
          '/wallets/%s/transactions/latest',
          `/wallets/${walletId}/transactions/%s`,
        ),
      )
      .map(([attack, template]): BadRequest => ({
        method: 'GET',
        path: template.replace('%s', encodeURIComponent(attack)),
      }));
    // Valid bodies aimed at a wallet that does not exist: the INSERT ... SELECT runs with the text as parameters, and finds no wallet (404).
    const inFields = fc
      .tuple(sqlText, sqlText, sqlText)
      .map(([fingerprint, label, description]) =>
        postTransaction({ amount: '10.00', fingerprint, labels: { [label]: label }, description }, MISSING_WALLET),
      );
    // An unknown field makes the wallet body invalid whatever the text.
    const inWallet = sqlText.map((attack) =>
      postWallet({ externalId: attack, labels: { q: attack }, [attack]: attack }),
    );
    await fuzz('SQL-looking', 300, fc.oneof(inPath, inFields, inWallet));
  });

  it('path ids out of range or malformed', async () => {
    const id = fc.oneof(
      fc.constantFrom(
        '0',
        '-1',
        '00',
        '1.0',
        '1e3',
        '0x1F',
        '+1',
        ' 1',
        '١',
        '%00',
        '%F0%9F%98%80',
        '%2e%2e',
        '9'.repeat(40),
        String(2n ** 63n),
        String(2n ** 64n),
      ),
      fc.bigInt({ min: 1000n, max: 10n ** 30n }).map(String),
      fc
        .string({ minLength: 1, maxLength: 12 })
        .map(encodeURIComponent)
        .filter(notDotSegment)
        // A random string may spell an existing wallet id ("1"), which is no bad id at all.
        .filter((segment) => !/^[1-9][0-9]*$/.test(segment)),
    );
    const txId = fc.oneof(
      fc.uuid().map((uuid) => uuid.toUpperCase().replace(/-/g, '')),
      fc.string({ minLength: 1, maxLength: 40 }).map(encodeURIComponent).filter(notDotSegment),
      fc.uuid(),
    );
    const request = fc.oneof(
      id.map((x): BadRequest => ({ method: 'GET', path: `/wallets/${x}` })),
      id.map((x): BadRequest => ({ method: 'GET', path: `/wallets/${x}/balance` })),
      id.map((x): BadRequest => ({ method: 'GET', path: `/wallets/${x}/transactions/latest` })),
      txId.map((y): BadRequest => ({ method: 'GET', path: `/wallets/${walletId}/transactions/${y}` })),
      // A valid body, but never an existing wallet: 400 or 404, and nothing reserved.
      id.map((x): BadRequest => ({ method: 'POST', path: `/wallets/${x}/transactions`, json: transactionBody() })),
    );
    await fuzz('path ids', 350, request);
  });

  it('ids past 2^53 or past bigint on every route that takes one', async () => {
    const id = fc.oneof(
      fc.constantFrom(
        String(2 ** 53),
        String(2 ** 53 + 2),
        '99999999999999999999',
        String(2n ** 63n - 1n),
        String(2n ** 63n),
        String(2n ** 64n),
      ),
      fc.bigInt({ min: 2n ** 53n, max: 10n ** 60n }).map(String),
    );
    const tx = '00000000-0000-4000-8000-000000000000';
    const request = fc
      .tuple(
        id,
        fc.constantFrom(
          ['GET', '/wallets/%s'],
          ['GET', '/wallets/%s/balance'],
          ['GET', '/wallets/%s/transactions'],
          ['GET', '/wallets/%s/transactions/latest'],
          ['GET', `/wallets/%s/transactions/${tx}`],
          ['POST', '/wallets/%s/transactions'],
          ['POST', `/wallets/%s/transactions/${tx}/void`],
          ['DELETE', '/webhooks/%s'],
        ),
      )
      .map(([x, [method, template]]): BadRequest => ({
        method,
        path: template.replace('%s', x),
        ...(method === 'POST' ? { json: template.endsWith('void') ? {} : transactionBody() } : {}),
      }));
    // Never found, never rounded to another id: refused as a bad id.
    await fuzz('ids past 2^53', 150, request, 400);
  });

  it('malformed label filters and reserved label keys', async () => {
    const reserved = fc.constantFrom('__proto__', 'constructor', 'prototype');
    const listing = fc.constantFrom('/wallets', '/transactions', `/wallets/${walletId}/transactions`);
    const filter = fc.oneof(
      fc.constantFrom('labels', 'labels=', 'labels=array', 'labels[a]=1&labels=x', 'labels[a]=1&labels[a]=2'),
      reserved.map((key) => `labels[${key}]=x`),
      reserved.map((key) => `labels%5B${encodeURIComponent(key)}%5D=x`),
      fc.string({ maxLength: 10 }).map((text) => `labels=${encodeURIComponent(text)}`),
    );
    const read = fc
      .tuple(listing, filter)
      .map(([path, query]): BadRequest => ({ method: 'GET', path: `${path}?${query}` }));
    const write = fc.tuple(reserved, fc.boolean()).map(([key, wallet]): BadRequest =>
      wallet
        ? { method: 'POST', path: '/wallets', raw: `{"externalId":"r-${key}","labels":{"${key}":"x","a":"b"}}` }
        : {
            method: 'POST',
            path: `/wallets/${walletId}/transactions`,
            raw: `{"amount":"1.00","fingerprint":"r-${key}-${Math.random()}","labels":{"${key}":"x"}}`,
          },
    );
    // The void namespace is reserved: a plain transaction may not squat a void's fingerprint.
    const squat = fc
      .oneof(fc.uuid(), fc.string({ maxLength: 20 }))
      .map((rest) => postTransaction({ amount: '1.00', fingerprint: `void:${rest}` }));
    await fuzz('filters/keys', 250, fc.oneof(read, write, squat), 400);
  });

  it('duplicate keys in the raw JSON text', async () => {
    const request = fc.oneof(
      fc.constantFrom('externalId', 'labels').map((key): BadRequest => ({
        method: 'POST',
        path: '/wallets',
        raw:
          key === 'externalId'
            ? '{"externalId":"dup-a","externalId":"dup-b"}'
            : '{"externalId":"dup-c","labels":{},"labels":{"a":"b"}}',
      })),
      fc.string({ minLength: 1, maxLength: 20 }).map((label): BadRequest => ({
        method: 'POST',
        path: '/wallets',
        raw: `{"externalId":"dup-${Math.random()}","labels":{${JSON.stringify(label)}:"1",${JSON.stringify(label)}:"2"}}`,
      })),
      fc
        .constantFrom(
          '"amount":"5.00","amount":"500000.00"',
          '"fingerprint":"x","fingerprint":"y","amount":"1.00"',
          '"amount":"5.00","\\u0061mount":"6.00"',
        )
        .map((members): BadRequest => ({
          method: 'POST',
          path: `/wallets/${walletId}/transactions`,
          raw: `{${members.includes('fingerprint') ? '' : `"fingerprint":"dup-${Math.random()}",`}${members}}`,
        })),
    );
    await fuzz('duplicate keys', 200, request);
  });

  it('wrong content types', async () => {
    const type = fc.constantFrom(
      null,
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/xml',
      'application/json; charset=latin1',
      'application/json; charset=utf-16',
      'application/merge-patch+json',
      'application/jsonx',
      'text/json',
      'application/octet-stream',
      'json',
      '*/*',
    );
    const request = fc.tuple(type, fc.boolean()).map(([contentType, wallet]): BadRequest => ({
      ...(wallet ? postWallet(walletBody()) : postTransaction(transactionBody())),
      contentType,
    }));
    await fuzz('content types', 200, request);
  });

  it('methods that no route takes', async () => {
    const request = fc
      .tuple(
        fc.constantFrom('PUT', 'PATCH', 'DELETE', 'OPTIONS'),
        fc.constantFrom(
          '/wallets',
          `/wallets/${walletId}`,
          `/wallets/${walletId}/balance`,
          `/wallets/${walletId}/transactions/latest`,
        ),
      )
      .map(([method, path]): BadRequest => ({ method, path, json: walletBody() }));
    await fuzz('methods', 60, request);
  });

  it('transfer bodies and paths', async () => {
    const valid = () => ({
      from: walletId,
      to: otherWalletId,
      amount: '10.00',
      fingerprint: `fuzz-${Math.random().toString(36).slice(2)}`,
    });
    const postTransfer = (body: unknown): BadRequest => ({ method: 'POST', path: '/transfers', json: body });
    const walletRef = fc.oneof(
      notAString.filter((value) => typeof value !== 'number'),
      fc.double().filter((n) => !Number.isSafeInteger(n) || n < 1),
      fc.integer({ max: 0 }),
      fc.constant(Number.MAX_SAFE_INTEGER + 2),
      fc.string({ maxLength: 5 }),
    );
    const invalidBody = fc.oneof(
      walletRef.map((from) => ({ ...valid(), from })),
      walletRef.map((to) => ({ ...valid(), to })),
      fc
        .oneof(fc.double({ noNaN: true }), fc.string({ maxLength: 12 }), fc.integer({ max: 0 }), notAString)
        .filter((amount) => !isValidAmount(amount) || Number(amount) < 1)
        .map((amount) => ({ ...valid(), amount })),
      fc.oneof(notAString, fc.constant(''), unstorableText).map((fingerprint) => ({ ...valid(), fingerprint })),
      fc.constantFrom('from', 'to', 'amount', 'fingerprint').map((field) => {
        const body: Record<string, unknown> = valid();
        delete body[field];
        return body;
      }),
      fc.constant(null).map(() => ({ ...valid(), to: walletId })),
      fc.string({ minLength: 1, maxLength: 8 }).map((key) => ({ ...valid(), [`x${key}`]: 1 })),
      fc.oneof(fc.integer(), fc.string(), fc.constant(null)).map((labels) => ({ ...valid(), labels })),
    );
    await fuzz('transfer bodies', 300, invalidBody.map(postTransfer), 400);
    const postVoid = (body: unknown): BadRequest => ({ method: 'POST', path: '/transfer-voids', json: body });
    await fuzz(
      'transfer voids',
      100,
      fc.oneof(
        fc.oneof(notAString, fc.string({ maxLength: 40 })).map((transferId) => postVoid({ transferId })),
        fc.constant(null).map(() => postVoid({})),
        fc.string({ minLength: 1, maxLength: 8 }).map((key) => postVoid({ transferId: randomUUID(), [`x${key}`]: 1 })),
        fc.oneof(fc.integer(), unstorableText).map((reason) => postVoid({ transferId: randomUUID(), reason })),
      ),
      400,
    );
    await fuzz(
      'unknown transfer voids',
      20,
      fc.constant(null).map(() => postVoid({ transferId: randomUUID() })),
      404,
    );
    await fuzz(
      'transfer wallets',
      40,
      fc.oneof(
        fc.constant(null).map(() => postTransfer({ ...valid(), to: MISSING_WALLET })),
        fc.constant(null).map(() => postTransfer({ ...valid(), from: MISSING_WALLET })),
        fc.constant(null).map(() => postTransfer({ ...valid(), to: usdWalletId })),
      ),
    );
    const segment = fc.string({ minLength: 1, maxLength: 40 }).filter(notDotSegment);
    await fuzz(
      'transfer paths',
      150,
      fc.oneof(
        segment.map((id) => ({ method: 'GET', path: `/transfers/${encodeURIComponent(id)}` })),
        segment.map((fp) => ({ method: 'GET', path: `/transfers/by-fingerprint/${encodeURIComponent(fp)}` })),
        segment
          .filter(notAWalletId)
          .map((id) => ({ method: 'GET', path: `/wallets/${encodeURIComponent(id)}/transfers` })),
        segment.map((cursor) => ({
          method: 'GET',
          path: `/wallets/${walletId}/transfers?cursor=${encodeURIComponent(cursor)}x`,
        })),
        fc.integer().map((limit) => ({
          method: 'GET',
          path: `/wallets/${walletId}/transfers?limit=${limit > 0 && limit <= 500 ? -limit : limit}`,
        })),
      ),
    );
  });

  it('hold bodies and paths', async () => {
    const valid = () => ({ amount: '10.00', fingerprint: `fuzz-${Math.random().toString(36).slice(2)}` });
    const postHold = (body: unknown): BadRequest => ({
      method: 'POST',
      path: `/wallets/${walletId}/holds`,
      json: body,
    });
    const invalidBody = fc.oneof(
      fc
        .oneof(fc.double({ noNaN: true }), fc.string({ maxLength: 12 }), fc.integer({ max: 0 }), notAString)
        .filter((amount) => !isValidAmount(amount) || Number(amount) <= 0)
        .map((amount) => ({ ...valid(), amount })),
      fc.oneof(notAString, fc.constant(''), unstorableText).map((fingerprint) => ({ ...valid(), fingerprint })),
      fc.constantFrom('amount', 'fingerprint').map((field) => {
        const body: Record<string, unknown> = valid();
        delete body[field];
        return body;
      }),
      fc
        .oneof(
          fc.integer({ max: 0 }),
          fc.double().filter((n) => !Number.isInteger(n)),
          fc.string(),
          fc.constant(null),
        )
        .map((expiresInSeconds) => ({ ...valid(), expiresInSeconds })),
      fc.string({ minLength: 1, maxLength: 8 }).map((key) => ({ ...valid(), [`x${key}`]: 1 })),
      fc.oneof(fc.integer(), fc.string(), fc.constant(null)).map((labels) => ({ ...valid(), labels })),
    );
    await fuzz('hold bodies', 200, invalidBody.map(postHold), 400);
    const holdPath = (id: string, action: string) => `/wallets/${walletId}/holds/${id}/${action}`;
    await fuzz(
      'capture and release bodies',
      100,
      fc.oneof(
        fc
          .oneof(fc.double({ noNaN: true }), fc.string({ maxLength: 12 }), fc.integer({ max: 0 }), notAString)
          .filter((amount) => !isValidAmount(amount) || Number(amount) <= 0)
          .map((amount) => ({ method: 'POST', path: holdPath(randomUUID(), 'capture'), json: { amount } })),
        fc
          .oneof(notAString, fc.constant(''), unstorableText, fc.constant('hold:x'), fc.constant('void:x'))
          .map((fingerprint) => ({ method: 'POST', path: holdPath(randomUUID(), 'capture'), json: { fingerprint } })),
        fc
          .string({ minLength: 1, maxLength: 8 })
          .map((key) => ({ method: 'POST', path: holdPath(randomUUID(), 'release'), json: { [`x${key}`]: 1 } })),
      ),
      400,
    );
    await fuzz(
      'unknown holds',
      20,
      fc
        .constantFrom('capture', 'release')
        .map((action) => ({ method: 'POST', path: holdPath(randomUUID(), action), json: {} })),
      404,
    );
    await fuzz(
      'hold wallets',
      20,
      fc.constant(null).map(() => ({ method: 'POST', path: `/wallets/${MISSING_WALLET}/holds`, json: valid() })),
      404,
    );
    const segment = fc.string({ minLength: 1, maxLength: 40 }).filter(notDotSegment);
    await fuzz(
      'hold paths',
      150,
      fc.oneof(
        segment.map((id) => ({ method: 'GET', path: `/wallets/${walletId}/holds/${encodeURIComponent(id)}` })),
        segment.filter(notAWalletId).map((id) => ({ method: 'GET', path: `/wallets/${encodeURIComponent(id)}/holds` })),
        segment.map((status) => ({
          method: 'GET',
          path: `/wallets/${walletId}/holds?status=${encodeURIComponent(status)}x`,
        })),
        segment.map((cursor) => ({
          method: 'GET',
          path: `/wallets/${walletId}/holds?cursor=${encodeURIComponent(cursor)}x`,
        })),
      ),
    );
  });

  it('When it is all over, then nothing in the database changed and the API still answers', async () => {
    expect(await databaseChecksum()).toBe(before);
    expect((await request(api.url, 'GET', `/wallets/${walletId}`)).status).toBe(200);
    const total = [...tallies.values()].flatMap((counts) => [...counts.values()]).reduce((sum, n) => sum + n, 0);
    expect(total).toBeGreaterThanOrEqual(3000);
  });
});
