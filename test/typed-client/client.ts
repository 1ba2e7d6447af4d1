/**
 * A client of the wallet API as a TypeScript user writes one: types generated from /openapi.json by
 * openapi-typescript, calls made through openapi-fetch, and no casts. test/integration/openapi-tooling.test.ts
 * generates ./wallet-api.ts beside a copy of this file, typechecks both strictly, then runs this file
 * against a real API (BASE_URL, API_KEY) and reads the JSON line it prints.
 *
 * Outside the project's tsconfig and eslint on purpose: ./wallet-api.ts exists only in the test's copy.
 */
import createClient from 'openapi-fetch';
import type { paths } from './wallet-api.js';

const client = createClient<paths>({
  baseUrl: process.env.BASE_URL ?? 'http://localhost:3000',
  headers: { authorization: `Bearer ${process.env.API_KEY}` },
});

function failed(step: string, status: number, error: unknown): never {
  throw new Error(`${step}: ${status} ${JSON.stringify(error)}`);
}

const created = await client.POST('/wallets', {
  body: { externalId: 'typed-client', labels: { via: 'openapi-fetch' } },
});
if (!created.data) failed('create wallet', created.response.status, created.error);
// The id the create returned goes back into a path as the number it is.
const walletId: number = created.data.id;

const deposit = await client.POST('/wallets/{id}/transactions', {
  params: { path: { id: walletId }, header: { prefer: 'wait=10' } },
  body: { amount: 10, fingerprint: 'typed-client-1', description: 'first deposit' },
});
if (!deposit.data) failed('post a transaction', deposit.response.status, deposit.error);

const balance = await client.GET('/wallets/{id}/balance', { params: { path: { id: walletId } } });
if (balance.data === undefined) failed('read the balance', balance.response.status, balance.error);
const cents: number = Math.round(balance.data * 100);

const listed = await client.GET('/wallets/{id}/transactions', {
  params: { path: { id: walletId }, query: { limit: 10, status: 'applied' } },
});
if (!listed.data) failed('list transactions', listed.response.status, listed.error);

const voided = await client.POST('/wallets/{id}/transactions/{txId}/void', {
  params: { path: { id: walletId, txId: deposit.data.id }, header: { prefer: 'wait=10' } },
  body: { reason: 'typed client test' },
});
if (!voided.data) failed('void', voided.response.status, voided.error);

const notFound = await client.GET('/wallets/{id}', { params: { path: { id: walletId + 1000 } } });

console.log(
  JSON.stringify({
    walletId,
    depositStatus: deposit.response.status,
    deposit: deposit.data.status,
    cents,
    listed: listed.data.items.map((item) => item.fingerprint),
    voidStatus: voided.response.status,
    reversal: { amount: voided.data.amount, voids: voided.data.voids },
    notFound: { status: notFound.response.status, type: notFound.error?.type },
  }),
);
