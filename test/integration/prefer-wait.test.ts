import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FinalizationListener,
  announceFinalized,
  finalizationChannel,
} from '../../src/shared/apply/finalization-notices.js';
import { createRedis } from '../../src/shared/infra/redis.js';
import { getTransaction, isFinal } from '../../src/shared/transactions/transactions.js';
import { startWorker } from '../../src/worker/worker.js';
import { request } from '../support/http.js';
import { createTestEnv, silentLogger, startTestApi, waitUntil, type TestEnv } from '../support/test-env.js';

/** `Prefer: wait=N` (RFC 7240): how a waiting request ends, and what wakes it. No worker runs unless a test starts one. */
let env: TestEnv;
let api: Awaited<ReturnType<typeof startTestApi>>;

beforeAll(async () => {
  env = await createTestEnv('prefer_wait', { MAX_PREFER_WAIT_S: '1' });
  api = await startTestApi(env);
});

afterAll(async () => {
  await api?.close();
  await env?.destroy();
});

let serial = 0;
async function newWallet(): Promise<number> {
  return (await request(api.url, 'POST', '/wallets', { json: { externalId: `prefer-wait-${++serial}` } })).body.id;
}

describe('Prefer: wait', () => {
  it('When the transaction is not final within the wait, then it answers 202 pending with Preference-Applied naming the wait honoured, at most MAX_PREFER_WAIT_S', async () => {
    const walletId = await newWallet();

    const response = await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
      json: { amount: 3, fingerprint: `expires-${walletId}` },
      headers: { prefer: 'wait=5' },
    });

    expect(response.status).toBe(202);
    expect(response.headers.get('preference-applied')).toBe('wait=1');
    expect(response.body).toMatchObject({ walletId, status: 'pending', fingerprint: `expires-${walletId}` });
    expect(response.headers.get('location')).toBe(`/wallets/${walletId}/transactions/${response.body.id}`);
  });

  it("When a worker finalizes the transaction, then its notice on Redis wakes the waiter, which re-reads once; another wallet's notice wakes nothing", async () => {
    const subscriber = createRedis(env.config, 'test-finalized', silentLogger);
    const publisher = new Redis(env.config.REDIS_URL);
    // Re-checks without news once an hour: within this test only a notice can wake the waiter.
    const listener = new FinalizationListener(subscriber, finalizationChannel(env.config.QUEUE_PREFIX), 3_600_000);
    await listener.start();
    const walletId = await newWallet();
    const otherWalletId = await newWallet();
    const posted = await request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
      json: { amount: 4, fingerprint: `notice-${walletId}` },
    });
    expect(posted.status).toBe(202);
    let reads = 0;
    const waiting = listener.waitFor(walletId, 3_600_000, async () => {
      reads += 1;
      const transaction = await getTransaction(env.pool, walletId, posted.body.id);
      return isFinal(transaction) ? transaction : null;
    });
    await waitUntil('the waiter has read the transaction once', () => Promise.resolve(reads === 1));
    await announceFinalized(publisher, env.config.QUEUE_PREFIX, otherWalletId);

    const worker = await startWorker(env.config, silentLogger);
    try {
      const final = await waiting;
      expect(final).toMatchObject({ id: posted.body.id, status: 'applied', refno: 1 });
      expect(reads).toBe(2);
    } finally {
      await worker.close();
      await listener.close();
      subscriber.disconnect();
      publisher.disconnect();
    }
  }, 20_000);
});
