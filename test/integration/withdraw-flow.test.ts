import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorker, type RunningWorker } from '../../src/worker/worker.js';
import { request } from '../support/http.js';
import { findLedgerViolations } from '../support/ledger-invariants.js';
import { createTestEnv, silentLogger, startTestApi, type TestEnv } from '../support/test-env.js';

/**
 * The withdraw flow of docs/withdrawals.md, as a client runs it against this API and a payout
 * provider (a stand-in for PayPal here): debit first, pay out, void the debit if the payout fails.
 */
let env: TestEnv;
let api: Awaited<ReturnType<typeof startTestApi>>;
let worker: RunningWorker;

/** One payout request as the provider saw it. */
interface PayoutRequest {
  /** The provider's idempotency key: it pays at most once per key. */
  jobId: string;
  amount: string;
  /** The status of the wallet debit with that job id when the request arrived. */
  debitStatus: string | undefined;
  /** What the provider answered. */
  status: number;
}
let provider: { url: string; requests: PayoutRequest[]; failNext: Set<string>; server: Server };

beforeAll(async () => {
  env = await createTestEnv('withdraw');
  api = await startTestApi(env);
  worker = await startWorker(env.config, silentLogger);
  // The provider records every request, as it arrived: the tests judge from that record, not
  // from the provider's own bookkeeping. It can be told to refuse a job id once.
  const requests: PayoutRequest[] = [];
  const failNext = new Set<string>();
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const { jobId, amount } = JSON.parse(body) as { jobId: string; amount: string };
      void request(api.url, 'GET', `/transactions/by-fingerprint/${encodeURIComponent(jobId)}`).then((debit) => {
        const status = failNext.delete(jobId) ? 502 : 200;
        requests.push({ jobId, amount, debitStatus: debit.body?.status, status });
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ reference: `PP-${jobId}` }));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  provider = { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, failNext, server };
});

/** What the provider was asked for one job id: the idempotency keys and amounts sent, and what it paid. */
function payoutsFor(jobId: string) {
  const asked = provider.requests.filter((payout) => payout.jobId === jobId);
  return {
    requests: asked.length,
    // Requests of one withdrawal under two keys, or two amounts under one key, could be paid twice.
    keysAndAmounts: [...new Set(asked.map((payout) => `${payout.jobId} ${payout.amount}`))],
    debitStatusesSeen: [...new Set(asked.map((payout) => payout.debitStatus))],
    accepted: asked.filter((payout) => payout.status === 200).length,
  };
}

/** Every debit (negative amount) the wallet holds, with its status. */
async function debitsOf(walletId: number): Promise<{ amount: number; status: string }[]> {
  const listed = await request(api.url, 'GET', `/wallets/${walletId}/transactions`);
  return listed.body.items
    .filter((item: any) => item.amount < 0 && !item.voids)
    .map((item: any) => ({ amount: item.amount, status: item.status }));
}

afterAll(async () => {
  await new Promise((resolve) => provider?.server.close(resolve));
  await worker?.close();
  await api?.close();
  await env?.destroy();
});

/** The client's side of a withdrawal; returns how it ended. */
async function withdraw(walletId: number, jobId: string, amount: string): Promise<'paid' | 'refused' | 'refunded'> {
  // 1. Debit first, with the payout job id as fingerprint: a retry can never debit twice.
  const debit = await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
    json: {
      amount: `-${amount}`,
      fingerprint: jobId,
      labels: { reason: 'withdraw', withdraw_target: 'paypal', withdraw_jobid: jobId },
    },
    headers: { prefer: 'wait=10' },
  });
  const transaction = debit.status === 409 ? debit.body.transaction : debit.body;
  if (transaction.status === 'rejected') return 'refused'; // insufficient funds: nothing to undo
  if (transaction.status !== 'applied') throw new Error(`debit still ${transaction.status}; poll its Location`);

  // 2. Pay out, with the same job id as the provider's idempotency key.
  const payout = await fetch(`${provider.url}/payouts`, { method: 'POST', body: JSON.stringify({ jobId, amount }) });
  if (payout.ok) return 'paid';

  // 3. The payout failed for good: void the debit (idempotent per original, docs/withdrawals.md).
  const refund = await request(api.url, 'POST', `/wallets/${walletId}/transactions/${transaction.id}/void`, {
    json: { reason: 'payout failed' },
    headers: { prefer: 'wait=10' },
  });
  const reversal = refund.status === 409 ? refund.body.transaction : refund.body;
  // A 409 is our refund only if its reversal voids our debit.
  if (reversal?.voids !== transaction.id) throw new Error(`no refund: ${refund.status} ${refund.body?.type}`);
  if (reversal.status !== 'applied' && reversal.status !== 'voided') throw new Error(`refund ${reversal.status}`);
  return 'refunded';
}

describe('withdrawing to an external payout', () => {
  it('When the payout succeeds, then the debit stays and every payout request carries one idempotency key and amount, so the provider pays once, even if the client retries', async () => {
    const walletId = (await request(api.url, 'POST', '/wallets', { json: { externalId: 'withdrawer-1' } })).body.id;
    await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
      json: { amount: 100, fingerprint: 'prize-1' },
      headers: { prefer: 'wait=10' },
    });
    expect(await withdraw(walletId, 'job-0018254', '30.00')).toBe('paid');
    expect(await withdraw(walletId, 'job-0018254', '30.00')).toBe('paid'); // the client crashed and ran again
    // Asked twice (the client cannot know the first went through), always under one key for one
    // amount, and only once the money had left the wallet: the provider's one-payment-per-key rule
    // leaves exactly one payment.
    expect(payoutsFor('job-0018254')).toEqual({
      requests: 2,
      keysAndAmounts: ['job-0018254 30.00'],
      debitStatusesSeen: ['applied'],
      accepted: 2,
    });
    expect(await debitsOf(walletId)).toEqual([{ amount: -30, status: 'applied' }]);
    expect((await request(api.url, 'GET', `/wallets/${walletId}/balance`)).text).toBe('70.0');
  });

  it('When the payout fails, then the debit is voided and the money is back', async () => {
    const walletId = (await request(api.url, 'POST', '/wallets', { json: { externalId: 'withdrawer-2' } })).body.id;
    await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
      json: { amount: 50, fingerprint: 'prize-2' },
      headers: { prefer: 'wait=10' },
    });
    provider.failNext.add('job-2');
    expect(await withdraw(walletId, 'job-2', '20.00')).toBe('refunded');
    expect(payoutsFor('job-2')).toEqual({
      requests: 1,
      keysAndAmounts: ['job-2 20.00'],
      debitStatusesSeen: ['applied'],
      accepted: 0,
    });
    expect((await request(api.url, 'GET', `/wallets/${walletId}/balance`)).text).toBe('50.0');
    const debit = (await request(api.url, 'GET', '/transactions/by-fingerprint/job-2')).body;
    expect(debit).toMatchObject({ status: 'voided', labels: { withdraw_jobid: 'job-2' } });
    expect(await findLedgerViolations(env.pool)).toEqual([]);
  });

  it('When the wallet cannot cover the withdrawal, then nothing is paid and nothing needs undoing', async () => {
    const walletId = (await request(api.url, 'POST', '/wallets', { json: { externalId: 'withdrawer-3' } })).body.id;
    expect(await withdraw(walletId, 'job-3', '5.00')).toBe('refused');
    expect(payoutsFor('job-3').requests).toBe(0);
    expect(await debitsOf(walletId)).toEqual([{ amount: -5, status: 'rejected' }]);
  });
});
