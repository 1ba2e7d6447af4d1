import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { request } from '../support/http.js';
import { findLedgerViolations } from '../support/ledger-invariants.js';
import {
  createTestEnv,
  spawnWorker,
  startTestApi,
  stopProcess,
  waitForExit,
  waitUntil,
  type TestEnv,
} from '../support/test-env.js';

/** A worker SIGKILLed between the legs of a transfer: the transfer still ends whole, once. */
let env: TestEnv;
let api: Awaited<ReturnType<typeof startTestApi>>;
const workers: ChildProcess[] = [];

beforeAll(async () => {
  env = await createTestEnv('transfers_crash');
  api = await startTestApi(env);
});

afterAll(async () => {
  await Promise.all(workers.map(stopProcess));
  await api?.close();
  await env?.destroy();
});

async function wallet(): Promise<number> {
  return (await request(api.url, 'POST', '/wallets', { json: { externalId: randomUUID() } })).body.id;
}

const inFlight = (transferIds: readonly string[]) =>
  env.pool.oneFirst(sql.type(z.object({ n: z.number() }))`
    SELECT count(*)::int AS n FROM transfers tr
    JOIN transactions c ON c.wallet_id = tr.to_wallet AND c.seq = tr.credit_seq
    WHERE tr.id = ANY(${sql.array(transferIds, 'uuid')}) AND c.status = 'pending'
  `);

describe('a worker killed between the legs', () => {
  it('When the worker dies after the debits were applied and before the credits, then a new worker applies each credit once and no transfer ends half done', async () => {
    const sources = [await wallet(), await wallet(), await wallet()];
    const destination = await wallet();
    for (const source of sources) {
      await request(api.url, 'POST', `/wallets/${source}/transactions`, {
        json: { amount: 100, fingerprint: `deposit-${source}` },
      });
    }
    // Another session holds the destination wallet as an applier does (its advisory lock): the
    // worker applies the debits and reserves the credits, but cannot apply the credits yet.
    const held = await env.pool.connect(async (connection) => {
      await connection.query(sql.unsafe`BEGIN`);
      await connection.query(sql.unsafe`SELECT pg_advisory_xact_lock(${destination})`);
      const doomed = spawnWorker(env);
      workers.push(doomed);
      await doomed.ready;
      const ids: string[] = [];
      for (const [i, source] of sources.entries()) {
        const posted = await request(api.url, 'POST', '/transfers', {
          json: { from: source, to: destination, amount: 10 + i, fingerprint: `crash-${source}` },
        });
        expect(posted.status).toBe(202);
        ids.push(posted.body.id);
      }
      await waitUntil(
        'every debit is applied and every credit reserved',
        async () => (await inFlight(ids)) === ids.length,
        20_000,
      );
      doomed.kill('SIGKILL');
      expect(await waitForExit(doomed)).toEqual({ code: null, signal: 'SIGKILL' });
      // Half way, as an observer sees it: the money is in flight, and counted so by the audit.
      expect(await inFlight(ids)).toBe(ids.length);
      expect((await request(api.url, 'GET', `/wallets/${destination}`)).body.balance).toBe(0);
      await connection.query(sql.unsafe`ROLLBACK`);
      return ids;
    });

    workers.push(spawnWorker(env));
    await waitUntil(
      'every transfer completes',
      async () => {
        const read = await Promise.all(held.map((id) => request(api.url, 'GET', `/transfers/${id}`)));
        return read.every((answer) => answer.body.status === 'completed');
      },
      30_000,
    );
    expect((await request(api.url, 'GET', `/wallets/${destination}`)).body.balance).toBe(33);
    const credits = await request(api.url, 'GET', `/wallets/${destination}/transactions`);
    expect(credits.body.items.map((item: { amount: number }) => item.amount).sort()).toEqual([10, 11, 12]);
    for (const source of sources) {
      expect((await request(api.url, 'GET', `/wallets/${source}`)).body.balance).toBe(
        100 - 10 - sources.indexOf(source),
      );
    }
    expect(await findLedgerViolations(env.pool)).toEqual([]);
  }, 90_000);
});
