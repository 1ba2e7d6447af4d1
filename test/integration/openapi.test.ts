import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import fc from 'fast-check';
import type { Express } from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type AppDeps } from '../../src/api/app.js';
import { isOpenPath } from '../../src/api/auth.js';
import { buildOpenApiDocument } from '../../src/api/openapi.js';
import { toOpenApiPath } from '../../src/api/operation.js';
import { UNDOCUMENTED_DEPRECATED_PATHS } from '../../src/api/routes/lookups.js';
import { idSchema } from '../../src/shared/domain/validation.js';
import { Redis } from '../../src/shared/infra/redis.js';
import { ContractChecker } from '../support/contract.js';
import { request } from '../support/http.js';
import { createTestEnv, silentLogger, startTestApi, type TestEnv } from '../support/test-env.js';

let env: TestEnv;
let api: Awaited<ReturnType<typeof startTestApi>>;

beforeAll(async () => {
  env = await createTestEnv('openapi');
  api = await startTestApi(env);
});

afterAll(async () => {
  await api?.close();
  await env?.destroy();
});

type Operation = Record<string, any>;
const document = buildOpenApiDocument() as Record<string, any>;
const operations: { method: string; path: string; operation: Operation }[] = Object.entries(
  document.paths as Record<string, Record<string, Operation>>,
).flatMap(([path, item]) => Object.entries(item).map(([method, operation]) => ({ method, path, operation })));

/** Every (method, path) the express app routes, read from its router stack. */
function expressRoutes(app: Express): { method: string; path: string }[] {
  const routes: { method: string; path: string }[] = [];
  const walk = (stack: any[]) => {
    for (const layer of stack) {
      if (layer.route) {
        for (const method of Object.keys(layer.route.methods)) routes.push({ method, path: layer.route.path });
      } else if (Array.isArray(layer.handle?.stack)) {
        walk(layer.handle.stack);
      }
    }
  };
  walk((app as any).router.stack);
  return routes;
}

describe('the OpenAPI document', () => {
  it('When validated against the OpenAPI 3.1 schema, then it is valid', async () => {
    const result = await new Validator().validate(document);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(document.openapi).toBe('3.1.0');
  });

  it('When GET /openapi.json is asked without a key, then it serves that document', async () => {
    const response = await request(api.url, 'GET', '/openapi.json', { apiKey: null });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(response.body).toEqual(JSON.parse(JSON.stringify(document)));
  });

  it('documents every route the app serves, with the same method and path, but the deprecated ones it leaves out', () => {
    const app = createApp({
      config: env.config,
      pool: env.pool,
      redis: new Redis(env.config.REDIS_URL, { lazyConnect: true }),
      queue: {},
      finalization: {},
      logger: silentLogger,
      health: {},
    } as unknown as AppDeps);
    const routed = expressRoutes(app)
      .filter((route) => !isOpenPath(route.path))
      .filter((route) => !(UNDOCUMENTED_DEPRECATED_PATHS as readonly string[]).includes(route.path))
      .map((route) => `${route.method.toUpperCase()} ${toOpenApiPath(route.path)}`);
    const documented = operations.map(({ method, path }) => `${method.toUpperCase()} ${path}`);
    expect(routed.length).toBeGreaterThanOrEqual(7);
    expect(routed.filter((route) => !documented.includes(route))).toEqual([]);
    expect(documented.filter((operation) => !routed.includes(operation))).toEqual([]);
  });

  it('gives every operation an id, a summary, its parameters, and the error answers it can give', () => {
    const ids = new Set<string>();
    for (const { method, path, operation } of operations) {
      const where = `${method} ${path}`;
      expect(operation.operationId, where).toBeTruthy();
      expect(ids.has(operation.operationId), where).toBe(false);
      ids.add(operation.operationId);
      expect(operation.summary, where).toBeTruthy();
      const pathParams = [...path.matchAll(/\{([^}]+)\}/g)].map((match) => match[1]);
      const documentedParams = (operation.parameters ?? []).filter((p: any) => p.in === 'path').map((p: any) => p.name);
      expect(documentedParams.sort(), where).toEqual(pathParams.sort());
      expect(Object.keys(operation.responses), where).toEqual(expect.arrayContaining(['500', '503']));
      if (operation['x-required-scope']) {
        expect(operation.security, where).toEqual([{ apiKey: [operation['x-required-scope']] }]);
        expect(Object.keys(operation.responses), where).toEqual(expect.arrayContaining(['401', '403', '429']));
      } else {
        expect(operation.security, where).toEqual([]);
      }
      if (method === 'post') {
        expect(Object.keys(operation.responses), where).toEqual(expect.arrayContaining(['400', '413', '415']));
        const body = operation.requestBody?.content?.['application/json']?.schema;
        expect(body, where).toBeDefined();
      }
    }
    expect(document.components.securitySchemes.apiKey).toMatchObject({ type: 'http', scheme: 'bearer' });
  });

  it('When a path carries a wallet or subscription id, then the document declares it an integer from 1 to 2^53-1, as the responses carry ids', () => {
    const ids = operations.flatMap(({ method, path, operation }) =>
      (operation.parameters ?? [])
        .filter((parameter: any) => parameter.in === 'path' && parameter.name === 'id')
        .map((parameter: any) => ({ where: `${method} ${path}`, schema: parameter.schema })),
    );
    expect(ids.length).toBeGreaterThanOrEqual(8);
    for (const { where, schema } of ids) {
      expect(schema, where).toEqual({ type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER, example: 1 });
    }
    expect(document.components.schemas.Wallet.properties.id).toMatchObject({ type: 'integer' });
  });

  it('When the server reads a path id, then it takes exactly the decimal spelling of the integers the document allows, and refuses every other text', () => {
    const documented = (text: string) => {
      const value = Number(text);
      return Number.isInteger(value) && value >= 1 && value <= Number.MAX_SAFE_INTEGER && String(value) === text;
    };
    const texts = fc.oneof(
      fc.integer({ min: -5, max: 1_000_000 }).map(String),
      fc.bigInt({ min: 2n ** 53n - 5n, max: 2n ** 53n + 5n }).map(String),
      fc.string({ maxLength: 20 }),
      fc.constantFrom('01', '1.0', '1e3', '0x1f', ' 1', '1 ', '+1', '-0', '', '9007199254740991', '9007199254740992'),
    );
    fc.assert(
      fc.property(texts, (text) => {
        expect(idSchema.safeParse(text).success, JSON.stringify(text)).toBe(documented(text));
      }),
      { numRuns: 2000 },
    );
  });

  it('When an operation is listed, then it documents at least one 4xx answer a client can act on', () => {
    for (const { method, path, operation } of operations) {
      expect(
        Object.keys(operation.responses).filter((status) => /^4\d\d$/.test(status)),
        `${method} ${path}`,
      ).not.toEqual([]);
    }
  });

  it('has examples for the request bodies and the main response shapes', () => {
    const schemas = document.components.schemas;
    for (const name of ['Wallet', 'Transaction', 'LatestTransaction', 'CreateWallet', 'CreateTransaction']) {
      const examples = Object.values(schemas[name].properties as Record<string, any>).filter(
        (property) => property.example !== undefined || property.examples !== undefined || property.$ref,
      );
      expect(examples.length, name).toBeGreaterThan(0);
    }
    expect(schemas.Balance).toMatchObject({ type: 'number', example: 35 });
  });
});

describe('the contract checker', () => {
  const checker = new ContractChecker(document);
  const wallet = {
    id: 1,
    externalId: 'x',
    labels: {},
    created: '2026-11-25T09:08:13.315Z',
    balance: 0.0,
    available: 0.0,
    currency: 'EUR',
  };
  const ok = { method: 'GET', path: '/wallets/1', status: 200, contentType: 'application/json' };

  it('When a response matches the document, then it passes', () => {
    expect(checker.check({ ...ok, text: JSON.stringify(wallet) })).toBeNull();
    expect(checker.check({ ...ok, path: '/wallets/1/balance', text: '35.0' })).toBeNull();
  });

  it.each([
    ['an undocumented field', { ...ok, text: JSON.stringify({ ...wallet, secret: 1 }) }, /does not match/],
    ['a missing field', { ...ok, text: JSON.stringify({ ...wallet, balance: undefined }) }, /does not match/],
    ['a string balance', { ...ok, path: '/wallets/1/balance', text: '"35.0"' }, /does not match/],
    ['an undocumented status', { ...ok, status: 418, text: '' }, /status 418 is not documented/],
    ['a wrong content type', { ...ok, contentType: 'text/plain', text: JSON.stringify(wallet) }, /content type/],
    ['an undocumented path', { ...ok, path: '/secret/admin', text: '{}' }, /not in openapi.json/],
    [
      'a problem without its fields',
      { ...ok, status: 404, contentType: 'application/problem+json', text: '{"type":"/problems/x"}' },
      /does not match/,
    ],
  ])('When a response has %s, then it is reported', (_, record, message) => {
    expect(checker.check(record)).toMatch(message);
  });
});

describe('the reference page', () => {
  it('When /docs is asked without a key, then it serves swagger-ui from this origin under a CSP that forbids inline scripts', async () => {
    const page = await request(api.url, 'GET', '/docs', { apiKey: null });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.text).toContain('/docs/assets/swagger-ui-bundle.js');
    expect(page.text).not.toMatch(/https?:\/\//); // no CDN
    expect(page.text).not.toMatch(/<script>[^<]/); // no inline script
    const csp = page.headers.get('content-security-policy')!;
    expect(csp).toMatch(/script-src 'self'(;|$)/);
    expect(csp).toContain("connect-src 'self'");

    for (const asset of ['/docs/assets/swagger-ui-bundle.js', '/docs/assets/swagger-ui.css', '/docs/init.js']) {
      const response = await fetch(api.url + asset);
      expect(response.status, asset).toBe(200);
      expect((await response.text()).length, asset).toBeGreaterThan(50);
    }
    const init = await (await fetch(`${api.url}/docs/init.js`)).text();
    expect(init).toContain("url: '/openapi.json'");
  });

  it('When an asset does not exist, then it is a 404, not a directory listing or a file outside the package', async () => {
    expect((await fetch(`${api.url}/docs/assets/`)).status).toBe(404);
    expect((await fetch(`${api.url}/docs/assets/..%2f..%2fpackage.json`)).status).toBe(404);
  });

  it('When any file of swagger-ui-dist the page does not load is asked for, then it is a 404', async () => {
    const page = (await request(api.url, 'GET', '/docs', { apiKey: null })).text;
    const loaded = [...page.matchAll(/(?:src|href)="(\/docs\/assets\/[^"]+)"/g)].map((match) => match[1]!);
    expect(loaded.sort()).toEqual(
      ['/docs/assets/favicon-32x32.png', '/docs/assets/swagger-ui-bundle.js', '/docs/assets/swagger-ui.css'].sort(),
    );
    for (const asset of loaded) expect((await fetch(api.url + asset)).status, asset).toBe(200);
    const shipped = readdirSync(path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json')));
    const others = shipped.filter((file) => !loaded.includes(`/docs/assets/${file}`));
    expect(others).toEqual(expect.arrayContaining(['package.json', 'swagger-ui-bundle.js.map', 'index.html']));
    for (const file of others) expect((await fetch(`${api.url}/docs/assets/${file}`)).status, file).toBe(404);
  });
});
