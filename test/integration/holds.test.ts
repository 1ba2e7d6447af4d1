import { randomUUID } from 'node:crypto';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { auditLedger, describeViolation } from '../../src/shared/audit/ledger-audit.js';
import { startWorker, type RunningWorker } from '../../src/worker/worker.js';
import { request } from '../support/http.js';
import { parseMetrics, sampleValue } from '../support/prometheus-text.js';
import { createTestEnv, silentLogger, startTestApi, waitUntil, type TestEnv } from '../support/test-env.js';

/** Holds (two-phase): decided through the wallet's queue against the available balance. */
let env: TestEnv;
let api: Awaited<ReturnType<typeof startTestApi>>;
let worker: RunningWorker;

beforeAll(async () => {
  env = await createTestEnv('holds');
  api = await startTestApi(env);
  worker = await startWorker(env.config, silentLogger);
});

afterAll(async () => {
  await worker?.close();
  await api?.close();
  await env?.destroy();
});

const wait = { prefer: 'wait=10' };
let serial = 0;

async function walletWith(amount: number | null): Promise<number> {
  const id = (await request(api.url, 'POST', '/wallets', { json: { externalId: `hold-${++serial}-${randomUUID()}` } }))
    .body.id as number;
  if (amount !== null) {
    const deposit = await request(api.url, 'POST', `/wallets/${id}/transactions`, {
      json: { amount, fingerprint: `deposit-${id}-${randomUUID()}` },
      headers: wait,
    });
    expect(deposit.status).toBe(201);
  }
  return id;
}

const walletOf = async (id: number) => (await request(api.url, 'GET', `/wallets/${id}`)).body;
const hold = (id: number, json: Record<string, unknown>, headers: Record<string, string> = wait) =>
  request(api.url, 'POST', `/wallets/${id}/holds`, { json: { fingerprint: `h-${randomUUID()}`, ...json }, headers });
const capture = (id: number, holdId: string, json: Record<string, unknown> = {}) =>
  request(api.url, 'POST', `/wallets/${id}/holds/${holdId}/capture`, { json });
const release = (id: number, holdId: string, json: Record<string, unknown> = {}) =>
  request(api.url, 'POST', `/wallets/${id}/holds/${holdId}/release`, { json });
const getHold = async (id: number, holdId: string) =>
  (await request(api.url, 'GET', `/wallets/${id}/holds/${holdId}`)).body;
/** Waits until the wallet's queue has settled the hold (its amount no longer in held). */
const settled = (id: number, holdId: string) =>
  waitUntil(`hold ${holdId} is settled`, async () => (await getHold(id, holdId)).held === false);

async function expectAuditClean(walletId?: number): Promise<void> {
  const report = await auditLedger(env.pool, { settled: true, ...(walletId === undefined ? {} : { walletId }) });
  expect(report.violations.map(describeViolation)).toEqual([]);
}

describe('POST /wallets/:id/holds', () => {
  it('When the available balance covers it, then it answers 201 active, available drops and the bare balance does not', async () => {
    const id = await walletWith(100);
    const made = await hold(id, { amount: '30.50', labels: { order: '7' }, description: 'card' });
    expect(made.status).toBe(201);
    expect(made.headers.get('location')).toBe(`/wallets/${id}/holds/${made.body.id}`);
    expect(made.body).toMatchObject({
      walletId: id,
      amount: 30.5,
      status: 'active',
      held: true,
      labels: { order: '7' },
    });
    expect(await walletOf(id)).toMatchObject({ balance: 100, available: 69.5 });
    const bare = await request(api.url, 'GET', `/wallets/${id}/balance`);
    expect(bare.text.trim()).toBe('100.0');
    expect(await getHold(id, made.body.id)).toEqual(made.body);
    await expectAuditClean(id);
  });

  it('When the hold is more than available, then it answers 422 insufficient_funds and nothing is held', async () => {
    const id = await walletWith(50);
    expect((await hold(id, { amount: 40 })).status).toBe(201);
    const over = await hold(id, { amount: 10.01 });
    expect(over.status).toBe(422);
    expect(over.body).toMatchObject({ status: 'rejected', reason: 'insufficient_funds', held: false });
    expect(await walletOf(id)).toMatchObject({ balance: 50, available: 10 });
    await expectAuditClean(id);
  });

  it('When a withdrawal fits the balance but not the available balance, then it is rejected, and the audit finds the rejection deserved', async () => {
    const id = await walletWith(50);
    expect((await hold(id, { amount: 40 })).status).toBe(201);
    const withdrawal = await request(api.url, 'POST', `/wallets/${id}/transactions`, {
      json: { amount: -20, fingerprint: `w-${randomUUID()}` },
      headers: wait,
    });
    expect(withdrawal.status).toBe(422);
    expect(withdrawal.body).toMatchObject({ status: 'rejected', reason: 'insufficient_funds' });
    const ok = await request(api.url, 'POST', `/wallets/${id}/transactions`, {
      json: { amount: -10, fingerprint: `w-${randomUUID()}` },
      headers: wait,
    });
    expect(ok.status).toBe(201);
    expect(await walletOf(id)).toMatchObject({ balance: 40, available: 0 });
    await expectAuditClean(id);
  });

  it('When a transfer debit fits the balance but not the available balance, then the transfer is rejected', async () => {
    const from = await walletWith(50);
    const to = await walletWith(null);
    expect((await hold(from, { amount: 45 })).status).toBe(201);
    const transfer = await request(api.url, 'POST', '/transfers', {
      json: { from, to, amount: 10, fingerprint: `t-${randomUUID()}` },
      headers: wait,
    });
    expect(transfer.status).toBe(422);
    expect(transfer.body).toMatchObject({ status: 'rejected', reason: 'insufficient_funds' });
    await expectAuditClean(from);
  });

  it('When the fingerprint is used, then a replay gets 409 duplicate-fingerprint with the hold and another request 409 fingerprint-reused', async () => {
    const id = await walletWith(100);
    const fingerprint = `fp-${randomUUID()}`;
    const made = await hold(id, { amount: 5, fingerprint });
    const replay = await hold(id, { amount: 5, fingerprint });
    expect(replay.status).toBe(409);
    expect(replay.body.type).toMatch(/duplicate-fingerprint$/);
    expect(replay.body.hold.id).toBe(made.body.id);
    const other = await hold(id, { amount: 6, fingerprint });
    expect(other.status).toBe(409);
    expect(other.body.type).toMatch(/fingerprint-reused$/);
  });

  it('When the body or wallet is wrong, then 400 or 404 and nothing is reserved', async () => {
    const id = await walletWith(100);
    for (const json of [
      { amount: 0 },
      { amount: -5 },
      { amount: '1.001' },
      { amount: 5, expiresInSeconds: 0 },
      { amount: 5, extra: 1 },
    ]) {
      expect((await hold(id, json)).status, JSON.stringify(json)).toBe(400);
    }
    expect((await hold(id, { amount: 5, expiresInSeconds: 10 ** 9 })).status).toBe(400);
    expect((await hold(999_999_999, { amount: 5 })).status).toBe(404);
    const count = await env.pool.oneFirst(
      sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM holds WHERE wallet_id = ${id}`,
    );
    expect(count).toBe(0);
  });
});

describe('capture and release', () => {
  it('When a hold is captured in part, then one debit with its own refno takes that amount and the rest is released', async () => {
    const id = await walletWith(100);
    const made = await hold(id, { amount: 40 });
    const captured = await capture(id, made.body.id, { amount: 25, fingerprint: `cap-${randomUUID()}` });
    expect(captured.status).toBe(202);
    expect(captured.body).toMatchObject({ status: 'captured', capturedAmount: 25 });
    await settled(id, made.body.id);
    expect(await walletOf(id)).toMatchObject({ balance: 75, available: 75 });
    const debit = await request(api.url, 'GET', `/wallets/${id}/transactions/${captured.body.captureTransactionId}`);
    expect(debit.body).toMatchObject({ amount: -25, status: 'applied', refno: 2, oldbalance: 100, newbalance: 75 });
    // A replay of the same capture answers the hold as it is.
    const again = await capture(id, made.body.id, { amount: 25 });
    expect(again.status).toBe(200);
    expect(again.body.captureTransactionId).toBe(captured.body.captureTransactionId);
    await expectAuditClean(id);
  });

  it('When a capture asks more than held, then 400 and the hold stays active', async () => {
    const id = await walletWith(100);
    const made = await hold(id, { amount: 10 });
    const over = await capture(id, made.body.id, { amount: 10.01 });
    expect(over.status).toBe(400);
    expect((await getHold(id, made.body.id)).status).toBe('active');
  });

  it('When a released hold is captured, then 409 hold-not-active says it was released; and a captured one released says captured', async () => {
    const id = await walletWith(100);
    const first = await hold(id, { amount: 10 });
    const released = await release(id, first.body.id);
    expect(released.status).toBe(202);
    expect(released.body.status).toBe('released');
    expect((await release(id, first.body.id)).status).toBe(200);
    const late = await capture(id, first.body.id);
    expect(late.status).toBe(409);
    expect(late.body.type).toMatch(/hold-not-active$/);
    expect(late.body.detail).toMatch(/released/);
    expect(late.body.hold.status).toBe('released');

    const second = await hold(id, { amount: 20 });
    expect((await capture(id, second.body.id)).status).toBe(202);
    const lateRelease = await release(id, second.body.id);
    expect(lateRelease.status).toBe(409);
    expect(lateRelease.body.detail).toMatch(/captured/);
    // A capture of another amount after the capture is no replay.
    expect((await capture(id, second.body.id, { amount: 5 })).status).toBe(409);
    await settled(id, first.body.id);
    await settled(id, second.body.id);
    expect(await walletOf(id)).toMatchObject({ balance: 80, available: 80 });
    await expectAuditClean(id);
  });

  it('When a capture fingerprint is used by another transaction, then 409 fingerprint-reused and the hold stays active', async () => {
    const id = await walletWith(100);
    const taken = `taken-${randomUUID()}`;
    await request(api.url, 'POST', `/wallets/${id}/transactions`, {
      json: { amount: 1, fingerprint: taken },
      headers: wait,
    });
    const made = await hold(id, { amount: 10 });
    const clash = await capture(id, made.body.id, { fingerprint: taken });
    expect(clash.status).toBe(409);
    expect(clash.body.type).toMatch(/fingerprint-reused$/);
    expect((await getHold(id, made.body.id)).status).toBe('active');
  });

  it("When a void asks for a hold's capture fingerprint, then 400 and nothing is reserved; the hold's default capture still works", async () => {
    const id = await walletWith(100);
    const made = await hold(id, { amount: 10 });
    const deposit = await request(api.url, 'POST', `/wallets/${id}/transactions`, {
      json: { amount: 5, fingerprint: `d-${randomUUID()}` },
      headers: wait,
    });
    const squat = await request(api.url, 'POST', `/wallets/${id}/transactions/${deposit.body.id}/void`, {
      json: { fingerprint: `hold:${made.body.id}:capture` },
    });
    expect(squat.status).toBe(400);
    expect(squat.body.invalidParams).toEqual([
      { name: 'fingerprint', reason: expect.stringMatching(/^must not start with "hold:"/) },
    ]);
    expect((await request(api.url, 'GET', `/wallets/${id}/transactions/${deposit.body.id}`)).body.status).toBe(
      'applied',
    );
    expect((await capture(id, made.body.id)).status).toBe(202);
    await settled(id, made.body.id);
    await expectAuditClean(id);
  });

  it('When a release is repeated with its fingerprint, then 200 with the hold; another fingerprint gets 409 hold-not-active; one used by another release, 409 fingerprint-reused and that hold stays active', async () => {
    const id = await walletWith(100);
    const first = await hold(id, { amount: 10 });
    const fingerprint = `rel-${randomUUID()}`;
    const released = await release(id, first.body.id, { fingerprint });
    expect(released.status).toBe(202);
    const replay = await release(id, first.body.id, { fingerprint });
    expect(replay.status).toBe(200);
    expect(replay.body).toMatchObject({ id: first.body.id, status: 'released' });
    const other = await release(id, first.body.id, { fingerprint: `rel-${randomUUID()}` });
    expect(other.status).toBe(409);
    expect(other.body.type).toMatch(/hold-not-active$/);
    expect(other.body.detail).toMatch(/released/);
    // Without a fingerprint, any repeat after a release is answered as before.
    expect((await release(id, first.body.id)).status).toBe(200);

    const second = await hold(id, { amount: 20 });
    const reused = await release(id, second.body.id, { fingerprint });
    expect(reused.status).toBe(409);
    expect(reused.body.type).toMatch(/fingerprint-reused$/);
    expect((await getHold(id, second.body.id)).status).toBe('active');
    await settled(id, first.body.id);
    expect(await walletOf(id)).toMatchObject({ balance: 100, available: 80 });
    await expectAuditClean(id);
  });

  it('When a capture is repeated with its fingerprint, then 200 with the hold whatever the amount said; another fingerprint or another amount with it gets 409', async () => {
    const id = await walletWith(100);
    const made = await hold(id, { amount: 40 });
    const fingerprint = `cap-${randomUUID()}`;
    const captured = await capture(id, made.body.id, { amount: 15, fingerprint });
    expect(captured.status).toBe(202);
    const replay = await capture(id, made.body.id, { fingerprint });
    expect(replay.status).toBe(200);
    expect(replay.body.captureTransactionId).toBe(captured.body.captureTransactionId);
    expect((await capture(id, made.body.id, { amount: 15, fingerprint })).status).toBe(200);
    // The same amount under another fingerprint is another request, not a replay.
    const other = await capture(id, made.body.id, { amount: 15, fingerprint: `cap-${randomUUID()}` });
    expect(other.status).toBe(409);
    expect(other.body.type).toMatch(/hold-not-active$/);
    const changed = await capture(id, made.body.id, { amount: 16, fingerprint });
    expect(changed.status).toBe(409);
    expect(changed.body.type).toMatch(/fingerprint-reused$/);
    await settled(id, made.body.id);
    expect(await walletOf(id)).toMatchObject({ balance: 85, available: 85 });
    await expectAuditClean(id);
  });

  it('When capture and release race on one hold, then exactly one wins and the other gets 409', async () => {
    const id = await walletWith(100);
    for (let round = 0; round < 5; round += 1) {
      const made = await hold(id, { amount: 3 });
      const answers = await Promise.all([
        capture(id, made.body.id),
        release(id, made.body.id),
        capture(id, made.body.id),
      ]);
      const statuses = answers.map((answer) => answer.status);
      const final = await getHold(id, made.body.id);
      // The winner answers 202; a second capture may be a replay (200) of the winning capture.
      expect(statuses.filter((status) => status === 202)).toHaveLength(1);
      expect(['captured', 'released']).toContain(final.status);
      for (const answer of answers) if (answer.status === 409) expect(answer.body.detail).toMatch(final.status);
      await settled(id, made.body.id);
    }
    await expectAuditClean(id);
  });
});

describe('a capture or release sent while the hold is being decided', () => {
  it('When captures and releases poll holds the queue is deciding, then each answers 409 pending until it flips, then 202; never 409 while the hold is active', async () => {
    const wallets = await Promise.all(Array.from({ length: 8 }, () => walletWith(1000)));
    const wrongful: string[] = [];
    const outcomes = await Promise.all(
      Array.from({ length: 160 }, async (_, i) => {
        const id = wallets[i % wallets.length]!;
        // No Prefer: wait, so the hold is pending when the polling starts and the queue flips it meanwhile.
        const made = await hold(id, { amount: 1 }, {});
        expect(made.status).toBe(202);
        for (;;) {
          const answer = await (i % 2 === 0 ? capture(id, made.body.id) : release(id, made.body.id));
          const status = answer.body?.hold?.status;
          if (answer.status === 409 && status === 'pending') continue;
          if (answer.status !== 202) wrongful.push(`${answer.status} ${answer.body?.detail ?? ''} (${status ?? '-'})`);
          return { id, holdId: made.body.id as string };
        }
      }),
    );
    expect(wrongful).toEqual([]);
    for (const { id, holdId } of outcomes) await settled(id, holdId);
    for (const id of wallets) await expectAuditClean(id);
  });
});

describe('concurrent replays by fingerprint', () => {
  it('When one release or one capture is sent many times at once with its fingerprint, then exactly one answers 202 and the others 200 with the same hold (one capture debit); one fingerprint sent for two holds at once releases only one', async () => {
    const id = await walletWith(100);
    const released = await hold(id, { amount: 10 });
    const releaseFingerprint = `rel-${randomUUID()}`;
    const releases = await Promise.all(
      Array.from({ length: 6 }, () => release(id, released.body.id, { fingerprint: releaseFingerprint })),
    );
    expect(releases.map((answer) => answer.status).sort()).toEqual([200, 200, 200, 200, 200, 202]);
    for (const answer of releases) expect(answer.body).toMatchObject({ id: released.body.id, status: 'released' });

    const captured = await hold(id, { amount: 30 });
    const captureFingerprint = `cap-${randomUUID()}`;
    const captures = await Promise.all(
      Array.from({ length: 6 }, () => capture(id, captured.body.id, { amount: 20, fingerprint: captureFingerprint })),
    );
    expect(captures.map((answer) => answer.status).sort()).toEqual([200, 200, 200, 200, 200, 202]);
    const debits = await env.pool.oneFirst(sql.type(z.object({ n: z.number() }))`
      SELECT count(*)::int AS n FROM transactions WHERE hold_id = ${captured.body.id as string}
    `);
    expect(debits).toBe(1);

    // One fingerprint, two holds, at once: the unique release fingerprint lets one through.
    const [a, b] = [await hold(id, { amount: 5 }), await hold(id, { amount: 5 })];
    const shared = `rel-${randomUUID()}`;
    const [first, second] = await Promise.all([
      release(id, a.body.id, { fingerprint: shared }),
      release(id, b.body.id, { fingerprint: shared }),
    ]);
    expect([first.status, second.status].sort()).toEqual([202, 409]);
    const refused = first.status === 409 ? first : second;
    expect(refused.body.type).toMatch(/fingerprint-reused$/);
    const statuses = [(await getHold(id, a.body.id)).status, (await getHold(id, b.body.id)).status].sort();
    expect(statuses).toEqual(['active', 'released']);

    for (const made of [released, captured, first.status === 202 ? a : b]) await settled(id, made.body.id);
    await expectAuditClean(id);
  });
});

describe('expiry', () => {
  it('When a hold passes its expiry, then the sweeper expires it once, available comes back, and capture or release get 409 expired', async () => {
    const id = await walletWith(100);
    const made = await hold(id, { amount: 60, expiresInSeconds: 1 });
    expect(made.status).toBe(201);
    expect(await walletOf(id)).toMatchObject({ available: 40 });
    await waitUntil('the hold expired', async () => (await getHold(id, made.body.id)).status === 'expired', 15_000);
    await settled(id, made.body.id);
    expect(await walletOf(id)).toMatchObject({ balance: 100, available: 100 });
    const late = await capture(id, made.body.id);
    expect(late.status).toBe(409);
    expect(late.body.detail).toMatch(/expired/);
    expect((await release(id, made.body.id)).status).toBe(409);
    await expectAuditClean(id);
  });
});

describe('hold metrics', () => {
  it('When holds are requested, decided, captured, released and expired, then wallet_holds_total counts each outcome once and wallet_holds_expired_total says who expired them', async () => {
    const scrape = async () => parseMetrics(await (await fetch(`${api.url}/metrics`)).text());
    const counts = async (): Promise<Record<string, number>> => {
      const metrics = await scrape();
      const of = (name: string, labels: Record<string, string>) => sampleValue(metrics, name, labels) ?? 0;
      return {
        ...Object.fromEntries(
          ['requested', 'active', 'rejected', 'captured', 'released', 'expired'].map((outcome) => [
            outcome,
            of('wallet_holds_total', { outcome }),
          ]),
        ),
        byWorker: of('wallet_holds_expired_total', { by: 'worker' }),
        byRequest: of('wallet_holds_expired_total', { by: 'request' }),
      };
    };
    const before = await counts();
    const id = await walletWith(100);
    const captured = await hold(id, { amount: 10 });
    const released = await hold(id, { amount: 10 });
    expect((await hold(id, { amount: 500 })).status).toBe(422);
    const swept = await hold(id, { amount: 1, expiresInSeconds: 1 });
    const late = await hold(id, { amount: 1 });
    expect((await capture(id, captured.body.id)).status).toBe(202);
    expect((await release(id, released.body.id)).status).toBe(202);
    // Past its expiry (moved back just before, so the sweeper has had no chance at it), a capture
    // finds it due: the request expires it (409 expired).
    await env.pool.query(
      sql.unsafe`UPDATE holds SET expires_at = now() - interval '1 second' WHERE id = ${late.body.id}`,
    );
    const lateCapture = await capture(id, late.body.id);
    expect(lateCapture.status).toBe(409);
    expect(lateCapture.body.detail).toMatch(/expired/);
    await waitUntil(
      'the sweeper expired the other',
      async () => (await getHold(id, swept.body.id)).status === 'expired',
    );
    const grown = {
      requested: 5,
      active: 4,
      rejected: 1,
      captured: 1,
      released: 1,
      expired: 2,
      byWorker: 1,
      byRequest: 1,
    };
    expect(await counts()).toEqual(
      Object.fromEntries(Object.entries(grown).map(([key, added]) => [key, before[key]! + added])),
    );
  });
});

describe('GET /wallets/:id/holds', () => {
  it('When filtered by status, then only those holds are listed, newest first', async () => {
    const id = await walletWith(100);
    const a = await hold(id, { amount: 1 });
    const b = await hold(id, { amount: 2 });
    await release(id, a.body.id);
    const all = await request(api.url, 'GET', `/wallets/${id}/holds`);
    expect(all.body.items.map((item: { id: string }) => item.id)).toEqual([b.body.id, a.body.id]);
    const active = await request(api.url, 'GET', `/wallets/${id}/holds?status=active`);
    expect(active.body.items.map((item: { id: string }) => item.id)).toEqual([b.body.id]);
    expect((await request(api.url, 'GET', `/wallets/${id}/holds?status=nope`)).status).toBe(400);
    expect((await request(api.url, 'GET', `/wallets/${id}/holds/${randomUUID()}`)).status).toBe(404);
  });

  it('When a status is rare among many holds, then a page reads a bounded part (short page, a cursor) and following the cursors finds them', async () => {
    const id = await walletWith(100);
    const old = [await hold(id, { amount: 1 }), await hold(id, { amount: 2 })];
    // 10,500 newer holds, released and settled, as a busy wallet's history would hold them.
    await env.pool.query(sql.unsafe`
      INSERT INTO holds (wallet_id, seq, fingerprint, amount, status, expires_at, held_released, decided, settled)
      SELECT ${id}, nextval(pg_get_serial_sequence('transactions', 'seq')), 'many-' || ${id} || '-' || i, 1,
             'released', now() + interval '1 day', true, now(), now()
      FROM generate_series(1, 10500) AS i
    `);
    const found: string[] = [];
    const pages: number[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor === null ? '' : `&cursor=${cursor}`;
      const page = await request(api.url, 'GET', `/wallets/${id}/holds?status=active&limit=5${query}`);
      expect(page.status).toBe(200);
      pages.push(page.body.items.length);
      found.push(...page.body.items.map((item: { id: string }) => item.id));
      cursor = page.body.nextCursor;
    } while (cursor !== null && pages.length < 10);
    expect(found).toEqual([old[1]!.body.id, old[0]!.body.id]);
    expect(pages[0]).toBe(0); // the newest 10,000 holds hold none: a short page with a cursor
    expect(pages.length).toBe(2);
    await expectAuditClean(id);
  });
});

describe('concurrency', () => {
  it('When holds, captures, releases and withdrawals race on one wallet, then available never goes negative and the audit is clean', async () => {
    const id = await walletWith(1000);
    const holdIds: string[] = [];
    const ops: Promise<unknown>[] = [];
    for (let i = 0; i < 60; i += 1) {
      if (i % 3 === 0) {
        ops.push(
          request(api.url, 'POST', `/wallets/${id}/transactions`, {
            json: { amount: -(37 + (i % 11)), fingerprint: `race-w-${id}-${i}` },
            headers: wait,
          }),
        );
      } else {
        ops.push(
          hold(id, { amount: 29 + (i % 13) }).then(async (made) => {
            if (made.status !== 201) return;
            holdIds.push(made.body.id);
            await (i % 2 === 0 ? capture(id, made.body.id, { amount: 20 }) : release(id, made.body.id));
          }),
        );
      }
    }
    let lowest = Infinity;
    let done = false;
    const watch = (async () => {
      while (!done) {
        const row = await env.pool.one(sql.type(z.object({ available: z.string() }))`
          SELECT (balance - held)::text AS available FROM wallets WHERE id = ${id}
        `);
        lowest = Math.min(lowest, Number(row.available));
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    await Promise.all(ops);
    for (const holdId of holdIds) await settled(id, holdId);
    done = true;
    await watch;
    expect(lowest).toBeGreaterThanOrEqual(0);
    expect(holdIds.length).toBeGreaterThan(0);
    await expectAuditClean(id);
  });
});
