import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
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
  type ServiceProcess,
  type TestEnv,
} from '../support/test-env.js';

/**
 * The withdraw flow of docs/withdrawals.md, end to end: a client following the doc step by step
 * (hold, pay out, capture or release) against the API, worker processes (SIGKILLed between the
 * steps in two cases) and a stand-in payout provider that records every idempotency key it gets.
 */
let env: TestEnv;
let api: Awaited<ReturnType<typeof startTestApi>>;
const workers: ServiceProcess[] = [];

// --- the payout provider (a stand-in for PayPal) ---------------------------------------------------

/** One payout request as the provider saw it. */
interface PayoutRequest {
  /** The `Idempotency-Key` header: the provider pays at most once per key. */
  key: string;
  amount: string;
  /** The status of the wallet's hold named in the request when it arrived. */
  holdStatus: string | undefined;
  /** What it answered: 200 paid, 422 failed for good, 503 unknown (nothing decided). */
  answer: number;
}

const provider = {
  url: '',
  server: null as Server | null,
  requests: [] as PayoutRequest[],
  /** The outcome decided for each key; a repeat gets it again and nothing more is paid. */
  outcomes: new Map<string, 'paid' | 'failed'>(),
  /** Keys the provider refuses for good. */
  refuse: new Set<string>(),
  /** Keys whose first request gets a 503 with nothing decided (the outcome is unknown to the client). */
  unknownOnce: new Set<string>(),
  /** Keys paid only after this many milliseconds (a slow settlement). */
  slow: new Map<string, number>(),
  /** Every payment made (one entry per money movement). */
  payments: [] as string[],
};

async function answerPayout(key: string, body: { amount: string; walletId: number; holdId: string }) {
  const hold = await request(api.url, 'GET', `/wallets/${body.walletId}/holds/${body.holdId}`);
  const record = (answer: number) =>
    provider.requests.push({ key, amount: body.amount, holdStatus: hold.body?.status, answer });
  if (provider.unknownOnce.delete(key)) {
    record(503);
    return { status: 503, outcome: 'unknown' };
  }
  let outcome = provider.outcomes.get(key);
  if (outcome === undefined) {
    await sleep(provider.slow.get(key) ?? 0);
    outcome = provider.refuse.has(key) ? 'failed' : 'paid';
    provider.outcomes.set(key, outcome);
    if (outcome === 'paid') provider.payments.push(key);
  }
  const status = outcome === 'paid' ? 200 : 422;
  record(status);
  return { status, outcome };
}

function startProvider(): Promise<void> {
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (chunk: Buffer) => (text += chunk.toString()));
    req.on('end', () => {
      const reply = (status: number, json: unknown) =>
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(json));
      const key = req.headers['idempotency-key'];
      if (req.method === 'GET' && req.url?.startsWith('/payouts/')) {
        // The outcome of a key, without paying anything.
        const outcome = provider.outcomes.get(decodeURIComponent(req.url.slice('/payouts/'.length)));
        return outcome === undefined ? reply(404, {}) : reply(200, { outcome });
      }
      if (req.method !== 'POST' || req.url !== '/payouts' || typeof key !== 'string') return reply(400, {});
      answerPayout(key, JSON.parse(text) as { amount: string; walletId: number; holdId: string }).then(
        ({ status, outcome }) => reply(status, { outcome }),
        (error: unknown) => reply(500, { error: String(error) }),
      );
    });
  });
  provider.server = server;
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      provider.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      resolve();
    }),
  );
}

/** What the provider was asked for one key, and what it paid. */
function payoutsFor(key: string) {
  const asked = provider.requests.filter((payout) => payout.key === key);
  return {
    requests: asked.length,
    amounts: [...new Set(asked.map((payout) => payout.amount))],
    holdStatusesSeen: [...new Set(asked.map((payout) => payout.holdStatus))],
    payments: provider.payments.filter((paid) => paid === key).length,
  };
}

beforeAll(async () => {
  env = await createTestEnv('withdraw');
  api = await startTestApi(env);
  await startProvider();
  await startNewWorker();
});

afterAll(async () => {
  await new Promise((resolve) => (provider.server ? provider.server.close(resolve) : resolve(undefined)));
  await Promise.all(workers.map(stopProcess));
  await api?.close();
  await env?.destroy();
});

async function startNewWorker(): Promise<ServiceProcess> {
  const worker = spawnWorker(env);
  workers.push(worker);
  await worker.ready;
  return worker;
}

async function killWorkers(): Promise<void> {
  for (const worker of workers.splice(0)) {
    worker.kill('SIGKILL');
    expect(await waitForExit(worker)).toEqual({ code: null, signal: 'SIGKILL' });
  }
}

// --- the client, as docs/withdrawals.md tells it ---------------------------------------------------

type Step = 'hold' | 'payout' | 'capture' | 'release' | 'late debit';

/** The client process died (on purpose): it will run the steps again from the first. */
class ClientCrashed extends Error {}

interface ClientOptions {
  expiresInSeconds?: number;
  /** The client dies right after this step's answer. */
  crashAfter?: Step;
  /** This step's answer is lost on the way (the request went through): the client sends it again. */
  loseAnswerOf?: Step;
  /** `Prefer: wait=N` for the hold (10 as in the doc when left out). */
  preferWaitSeconds?: number;
  /** Called before each step is sent (the test's hook between the steps). */
  before?: (step: Step) => Promise<void>;
}

interface Hold {
  id: string;
  walletId: number;
  amount: number;
  status: 'pending' | 'active' | 'rejected' | 'captured' | 'released' | 'expired';
  captureTransactionId?: string;
}

interface Withdrawal {
  outcome: 'paid' | 'refused' | 'released' | 'expired' | 'paid late' | 'owed';
  hold: Hold;
}

/** Every answer the client got, per step, in order: the tests read replays from it. */
const clientLog: { jobId: string; step: Step; status: number; lost: boolean; captureTransactionId?: string }[] = [];

async function withdraw(
  walletId: number,
  jobId: string,
  amount: string,
  options: ClientOptions = {},
): Promise<Withdrawal> {
  const send = async <T extends { status: number; body: any }>(step: Step, call: () => Promise<T>): Promise<T> => {
    await options.before?.(step);
    const log = (answer: T, lost: boolean) =>
      clientLog.push({
        jobId,
        step,
        status: answer.status,
        lost,
        captureTransactionId: answer.body?.captureTransactionId,
      });
    let answer = await call();
    if (options.loseAnswerOf === step) {
      log(answer, true); // it never reached the client, which sends the same request again
      answer = await call();
    }
    log(answer, false);
    return answer;
  };
  const crashPoint = (step: Step) => {
    if (options.crashAfter === step) throw new ClientCrashed(`the client died after ${step}`);
  };
  const pollHold = async (hold: Hold): Promise<Hold> => {
    let current = hold;
    await waitUntil(
      `hold ${hold.id} is decided`,
      async () => {
        current = (await request(api.url, 'GET', `/wallets/${walletId}/holds/${hold.id}`)).body;
        return current.status !== 'pending';
      },
      45_000,
    );
    return current;
  };

  // 1. Hold, with the job id as fingerprint: a repeat answers 409 with the hold it made.
  const made = await send('hold', () =>
    request(api.url, 'POST', `/wallets/${walletId}/holds`, {
      json: {
        amount,
        fingerprint: jobId,
        labels: { withdraw_jobid: jobId },
        ...(options.expiresInSeconds === undefined ? {} : { expiresInSeconds: options.expiresInSeconds }),
      },
      headers: { prefer: `wait=${options.preferWaitSeconds ?? 10}` },
    }),
  );
  let hold: Hold;
  if ([201, 202, 422].includes(made.status)) hold = made.body;
  else if (made.status === 409 && /duplicate-fingerprint$/.test(made.body.type)) hold = made.body.hold;
  else throw new Error(`hold: ${made.status} ${made.body?.type}`);
  if (hold.walletId !== walletId || hold.amount !== Number(amount)) throw new Error(`not my hold: ${hold.id}`);
  if (hold.status === 'pending') hold = await pollHold(hold);
  crashPoint('hold');
  if (hold.status === 'rejected') return { outcome: 'refused', hold } satisfies Withdrawal;

  // A hold that is over (captured, released, expired): only ask the provider, never pay again.
  if (hold.status !== 'active') {
    const known = await fetch(`${provider.url}/payouts/${encodeURIComponent(jobId)}`);
    const paid = known.ok && ((await known.json()) as { outcome: string }).outcome === 'paid';
    if (hold.status === 'captured') return { outcome: 'paid', hold: await debitApplied(walletId, hold) };
    if (hold.status === 'released') return { outcome: 'released', hold };
    return paid ? debitLate(walletId, jobId, amount, hold, send) : { outcome: 'expired', hold };
  }

  // 2. Pay out under the job id; an unknown outcome is asked again under the same key.
  let payout: { status: number; body: any };
  for (let attempt = 1; ; attempt += 1) {
    payout = await send('payout', async () => {
      const answer = await fetch(`${provider.url}/payouts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': jobId },
        body: JSON.stringify({ amount, walletId, holdId: hold.id }),
      });
      return { status: answer.status, body: await answer.json() };
    });
    if (payout.status === 200 || payout.status === 422) break;
    if (attempt === 20) throw new Error(`payout of ${jobId} still unknown`);
    await sleep(100);
  }
  crashPoint('payout');

  if (payout.status === 200) {
    // 3. Capture: idempotent by the hold (a repeat answers 200 with the same capture).
    const captured = await send('capture', () =>
      request(api.url, 'POST', `/wallets/${walletId}/holds/${hold.id}/capture`, { json: { fingerprint: jobId } }),
    );
    crashPoint('capture');
    if (captured.status === 200 || captured.status === 202) {
      return { outcome: 'paid', hold: await debitApplied(walletId, captured.body) } satisfies Withdrawal;
    }
    if (captured.status === 409 && /hold-not-active$/.test(captured.body.type)) {
      const current: Hold = captured.body.hold;
      if (current.status === 'captured') return { outcome: 'paid', hold: await debitApplied(walletId, current) };
      // Expiry (or a release) came first: the money is paid but no longer held.
      return debitLate(walletId, jobId, amount, current, send);
    }
    throw new Error(`capture: ${captured.status} ${captured.body?.type}`);
  }

  // 4. Release: the payout failed for good.
  const released = await send('release', () =>
    request(api.url, 'POST', `/wallets/${walletId}/holds/${hold.id}/release`, { json: {} }),
  );
  crashPoint('release');
  if (released.status === 200 || released.status === 202) return { outcome: 'released', hold: released.body };
  if (released.status === 409 && released.body.hold?.status === 'expired') {
    return { outcome: 'released', hold: released.body.hold };
  }
  throw new Error(`release: ${released.status} ${released.body?.type}`);
}

/** Waits until the capture's debit is applied (it cannot be rejected: the money was held). */
async function debitApplied(walletId: number, hold: Hold): Promise<Hold> {
  await waitUntil(
    `capture debit of hold ${hold.id} applied`,
    async () =>
      (await request(api.url, 'GET', `/wallets/${walletId}/transactions/${hold.captureTransactionId}`)).body?.status ===
      'applied',
    45_000,
  );
  return hold;
}

/** Expiry won: the payout is paid, so it is posted as an ordinary debit under the same key. */
async function debitLate(
  walletId: number,
  jobId: string,
  amount: string,
  hold: Hold,
  send: <T extends { status: number; body: any }>(step: Step, call: () => Promise<T>) => Promise<T>,
): Promise<Withdrawal> {
  const debit = await send('late debit', () =>
    request(api.url, 'POST', `/wallets/${walletId}/transactions`, {
      json: { amount: `-${amount}`, fingerprint: jobId, labels: { withdraw_jobid: jobId } },
      headers: { prefer: 'wait=10' },
    }),
  );
  const transaction = debit.status === 409 ? debit.body.transaction : debit.body;
  return { outcome: transaction?.status === 'applied' ? 'paid late' : 'owed', hold };
}

/** Runs the client until it is not killed: each run starts over from step 1 with the same job id. */
async function withdrawSurvivingCrashes(walletId: number, jobId: string, amount: string, runs: ClientOptions[]) {
  for (const options of runs) {
    await expect(withdraw(walletId, jobId, amount, options)).rejects.toThrow(ClientCrashed);
  }
  return withdraw(walletId, jobId, amount);
}

// --- what the ledger says -------------------------------------------------------------------------

async function walletWith(amount: number | null): Promise<number> {
  const id = (await request(api.url, 'POST', '/wallets', { json: { externalId: `withdrawer-${randomUUID()}` } })).body
    .id as number;
  if (amount !== null) {
    const deposit = await request(api.url, 'POST', `/wallets/${id}/transactions`, {
      json: { amount, fingerprint: `prize-${id}` },
      headers: { prefer: 'wait=10' },
    });
    expect(deposit.status).toBe(201);
  }
  return id;
}

/** The wallet's balance, available and held (from the row), and every debit it has. */
async function ledgerOf(walletId: number) {
  const wallet = (await request(api.url, 'GET', `/wallets/${walletId}`)).body;
  const held = await env.pool.oneFirst(
    sql.type(z.object({ held: z.string() }))`SELECT held::text AS held FROM wallets WHERE id = ${walletId}`,
  );
  const listed = await request(api.url, 'GET', `/wallets/${walletId}/transactions`);
  const debits = listed.body.items
    .filter((item: { amount: number }) => item.amount < 0)
    .map((item: { amount: number; status: string; fingerprint: string }) => ({
      amount: item.amount,
      status: item.status,
      fingerprint: item.fingerprint,
    }));
  return { balance: wallet.balance, available: wallet.available, held: Number(held), debits };
}

/** Until the wallet's queue has taken a released or expired hold out of `held`. */
const nothingHeld = (walletId: number, holdId: string) =>
  waitUntil(
    `hold ${holdId} is out of held`,
    async () => (await request(api.url, 'GET', `/wallets/${walletId}/holds/${holdId}`)).body.held === false,
    10_000,
  );

/**
 * Locks the wallet's row (FOR NO KEY UPDATE, the lock the apply statement's `UPDATE wallets` takes)
 * in a transaction of the test's own until `unlock`: a worker's apply statement for the wallet then
 * waits on it inside that statement (no advisory lock is taken: the apply's pg_try_advisory_xact_lock
 * would just skip the wallet). The API's inserts still go through: their foreign key check takes
 * FOR KEY SHARE, which this lock does not block (FOR UPDATE would).
 */
async function lockWalletRow(walletId: number): Promise<{ pid: number; unlock(): Promise<void> }> {
  let unlock!: () => void;
  const unlocked = new Promise<void>((resolve) => (unlock = resolve));
  let locked!: (pid: number) => void;
  const isLocked = new Promise<number>((resolve) => (locked = resolve));
  const done = env.pool.connect(async (connection) => {
    await connection.query(sql.unsafe`BEGIN`);
    const pid = await connection.oneFirst(sql.type(z.object({ pid: z.number() }))`SELECT pg_backend_pid() AS pid`);
    await connection.query(sql.unsafe`SELECT id FROM wallets WHERE id = ${walletId} FOR NO KEY UPDATE`);
    locked(pid);
    await unlocked;
    await connection.query(sql.unsafe`ROLLBACK`);
  });
  const pid = await Promise.race([isLocked, done.then(() => Promise.reject(new Error('the row lock ended early')))]);
  return {
    pid,
    async unlock() {
      unlock();
      await done;
    },
  };
}

/** The backends of workers (`wallet-worker`) waiting, inside the apply statement, on a lock `holderPid` holds. */
const applyWaitingOn = (holderPid: number) =>
  env.pool.anyFirst(sql.type(z.object({ pid: z.number() }))`
    SELECT pid FROM pg_stat_activity
    WHERE datname = current_database() AND application_name = 'wallet-worker' AND wait_event_type = 'Lock'
      AND ${holderPid} = ANY(pg_blocking_pids(pid)) AND query LIKE '%UPDATE wallets w SET balance%'
  `);

/**
 * Once `step` is to be sent: lock the wallet's row, let the step through, wait until the worker's
 * apply statement for it waits on that row, SIGKILL the worker there, then (once the client has its
 * answer) unlock and start another.
 */
function killWorkerWhile(walletId: number, jobId: string, step: Step, stuck: () => Promise<boolean>) {
  const seen = {
    stuckBeforeKill: false,
    /** The worker's backend waited in the apply statement on the test's lock right before the kill. */
    applyWaitingAtKill: false,
    stuckAfterKill: false,
    /** That backend (its worker dead) still waited there after the kill. */
    applyWaitingAfterKill: false,
    /** Still not decided once that backend was ended: the dead worker's write is lost. */
    stuckAfterBackendEnded: false,
  };
  let lock: { pid: number; unlock(): Promise<void> } | null = null;
  let done: Promise<void> = Promise.resolve();
  const before = async (next: Step) => {
    if (next !== step || lock) return;
    const held = await lockWalletRow(walletId);
    lock = held;
    // The step is sent once this returns; the rest runs beside the client (the test awaits `done`).
    done = (async () => {
      try {
        await waitUntil(`${step} is requested and stuck`, stuck, 20_000);
        let waiting: readonly number[] = [];
        await waitUntil(
          `the worker's apply statement for ${step} waits on the wallet's row`,
          async () => (waiting = await applyWaitingOn(held.pid)).length > 0,
          20_000,
        );
        seen.stuckBeforeKill = await stuck();
        seen.applyWaitingAtKill = waiting.length === 1;
        await killWorkers();
        seen.stuckAfterKill = await stuck();
        seen.applyWaitingAfterKill = (await applyWaitingOn(held.pid)).join() === waiting.join();
        // Postgres does not see that the client is gone while its backend waits on a lock
        // (client_connection_check_interval is off): once unlocked, the statement would run to its end
        // and commit the dead worker's write (as seen here: decided before any new worker started),
        // and this case would pass with no worker recovering anything. End the backend, as Postgres
        // does once it notices the dead connection: the write in flight is lost, only a new worker
        // can decide it.
        await env.pool.query(
          sql.unsafe`SELECT pg_terminate_backend(pid) FROM unnest(${sql.array(waiting, 'int4')}) AS pid`,
        );
        await waitUntil(
          `the dead worker's backend has ended`,
          async () =>
            (
              await env.pool.anyFirst(sql.type(z.object({ pid: z.number() }))`
              SELECT pid FROM pg_stat_activity WHERE pid = ANY(${sql.array(waiting, 'int4')})
            `)
            ).length === 0,
        );
        seen.stuckAfterBackendEnded = await stuck();
        // No worker can decide it until the client has its answer (a hold: 202 pending, once its wait ran out).
        await waitUntil(`the client has the answer to ${step}`, () =>
          Promise.resolve(clientLog.some((entry) => entry.jobId === jobId && entry.step === step && !entry.lost)),
        );
      } finally {
        await held.unlock();
      }
      await startNewWorker();
    })();
    done.catch(() => {}); // reported where the test awaits it
  };
  return { before, seen, done: () => done };
}

// --- the stories ----------------------------------------------------------------------------------

describe('withdrawing to an external payout: hold, pay out, capture or release', () => {
  it('When the payout succeeds, then the hold is captured, the wallet debited once and the provider paid once, though the client died after every step and the first payout answer was unknown', async () => {
    const walletId = await walletWith(100);
    provider.unknownOnce.add('job-ok');
    const result = await withdrawSurvivingCrashes(walletId, 'job-ok', '30.00', [
      { crashAfter: 'hold' },
      { crashAfter: 'payout' },
      { crashAfter: 'capture' },
    ]);
    expect(result.outcome).toBe('paid');
    // Asked again after each crash (and once more for the unknown answer), always under one key for
    // one amount, only while the hold was active: one payment.
    expect(payoutsFor('job-ok')).toEqual({
      requests: 3,
      amounts: ['30.00'],
      holdStatusesSeen: ['active'],
      payments: 1,
    });
    expect(await ledgerOf(walletId)).toEqual({
      balance: 70,
      available: 70,
      held: 0,
      debits: [{ amount: -30, status: 'applied', fingerprint: 'job-ok' }],
    });
    expect((await request(api.url, 'GET', `/wallets/${walletId}/balance`)).text).toBe('70.0');
    // Step 1 made the hold once; every later run was answered with it.
    const holds = clientLog.filter((entry) => entry.jobId === 'job-ok' && entry.step === 'hold');
    expect(holds.map((entry) => entry.status)).toEqual([201, 409, 409, 409]);
    expect(await findLedgerViolations(env.pool)).toEqual([]);
  });

  it('When the answer to the capture is lost, then the client sends it again and gets the same capture, and the wallet is debited once', async () => {
    const walletId = await walletWith(50);
    const result = await withdraw(walletId, 'job-lost-capture', '20.00', { loseAnswerOf: 'capture' });
    expect(result.outcome).toBe('paid');
    const captures = clientLog.filter((entry) => entry.jobId === 'job-lost-capture' && entry.step === 'capture');
    // The first answer (202) was lost; the repeat is a replay of the same capture.
    expect(captures.map((entry) => [entry.status, entry.lost])).toEqual([
      [202, true],
      [200, false],
    ]);
    expect(captures[1]!.captureTransactionId).toBe(captures[0]!.captureTransactionId);
    expect(result.hold.captureTransactionId).toBe(captures[0]!.captureTransactionId);
    const debit = (await request(api.url, 'GET', '/transactions/by-fingerprint/job-lost-capture')).body;
    expect(debit).toMatchObject({ id: result.hold.captureTransactionId, amount: -20, status: 'applied' });
    expect(await ledgerOf(walletId)).toMatchObject({ balance: 30, available: 30, held: 0 });
    expect((await ledgerOf(walletId)).debits).toHaveLength(1);
    expect(payoutsFor('job-lost-capture').payments).toBe(1);
  });

  it('When the payout fails for good, then the hold is released, the money is available again and nothing was debited', async () => {
    const walletId = await walletWith(50);
    provider.refuse.add('job-refused');
    const result = await withdrawSurvivingCrashes(walletId, 'job-refused', '20.00', [{ crashAfter: 'payout' }]);
    expect(result.outcome).toBe('released');
    await nothingHeld(walletId, result.hold.id);
    expect(payoutsFor('job-refused')).toEqual({
      requests: 2,
      amounts: ['20.00'],
      holdStatusesSeen: ['active'],
      payments: 0,
    });
    expect(await ledgerOf(walletId)).toEqual({ balance: 50, available: 50, held: 0, debits: [] });
    const hold = (await request(api.url, 'GET', `/wallets/${walletId}/holds/${result.hold.id}`)).body;
    expect(hold).toMatchObject({ status: 'released', held: false });
    expect(await findLedgerViolations(env.pool)).toEqual([]);
  });

  it('When the wallet cannot cover the withdrawal, then the hold is rejected and nothing is paid', async () => {
    const walletId = await walletWith(10);
    const result = await withdraw(walletId, 'job-too-much', '25.00');
    expect(result).toMatchObject({ outcome: 'refused', hold: { status: 'rejected', reason: 'insufficient_funds' } });
    expect(payoutsFor('job-too-much').requests).toBe(0);
    expect(await ledgerOf(walletId)).toEqual({ balance: 10, available: 10, held: 0, debits: [] });
  });

  it('When a worker is SIGKILLed after the hold is requested and before it is decided, then a new worker decides it and the flow ends with one debit and nothing held', async () => {
    const walletId = await walletWith(100);
    const holdPending = async () =>
      (await env.pool.maybeOneFirst(
        sql.type(z.object({ status: z.string() }))`SELECT status FROM holds WHERE fingerprint = 'job-kill-hold'`,
      )) === 'pending';
    const killer = killWorkerWhile(walletId, 'job-kill-hold', 'hold', holdPending);
    const result = await withdraw(walletId, 'job-kill-hold', '40.00', { before: killer.before, preferWaitSeconds: 2 });
    await killer.done();
    expect(killer.seen).toEqual({
      stuckBeforeKill: true,
      applyWaitingAtKill: true,
      stuckAfterKill: true,
      applyWaitingAfterKill: true,
      stuckAfterBackendEnded: true,
    });
    // The wait ran out while no worker could decide it: the client polled the pending hold.
    expect(clientLog.filter((entry) => entry.jobId === 'job-kill-hold' && entry.step === 'hold')).toMatchObject([
      { status: 202 },
    ]);
    expect(result.outcome).toBe('paid');
    expect(payoutsFor('job-kill-hold')).toMatchObject({ holdStatusesSeen: ['active'], payments: 1 });
    expect(await ledgerOf(walletId)).toEqual({
      balance: 60,
      available: 60,
      held: 0,
      debits: [{ amount: -40, status: 'applied', fingerprint: 'job-kill-hold' }],
    });
    expect(await findLedgerViolations(env.pool)).toEqual([]);
  }, 90_000);

  it('When a worker is SIGKILLed after the capture is requested and before its debit is applied, then a new worker applies it once and nothing stays held', async () => {
    const walletId = await walletWith(100);
    const debitPending = async () =>
      (await env.pool.maybeOneFirst(
        sql.type(
          z.object({ status: z.string() }),
        )`SELECT status FROM transactions WHERE fingerprint = 'job-kill-capture'`,
      )) === 'pending';
    const killer = killWorkerWhile(walletId, 'job-kill-capture', 'capture', debitPending);
    const result = await withdraw(walletId, 'job-kill-capture', '40.00', { before: killer.before });
    await killer.done();
    expect(killer.seen).toEqual({
      stuckBeforeKill: true,
      applyWaitingAtKill: true,
      stuckAfterKill: true,
      applyWaitingAfterKill: true,
      stuckAfterBackendEnded: true,
    });
    expect(result.outcome).toBe('paid');
    expect(payoutsFor('job-kill-capture').payments).toBe(1);
    expect(await ledgerOf(walletId)).toEqual({
      balance: 60,
      available: 60,
      held: 0,
      debits: [{ amount: -40, status: 'applied', fingerprint: 'job-kill-capture' }],
    });
    // The client, run again, is answered with the capture that exists.
    expect((await withdraw(walletId, 'job-kill-capture', '40.00')).hold.captureTransactionId).toBe(
      result.hold.captureTransactionId,
    );
    expect((await ledgerOf(walletId)).debits).toHaveLength(1);
    expect(await findLedgerViolations(env.pool)).toEqual([]);
  }, 90_000);

  it('When the payout settles after the hold expired, then capture says expired and the client posts the one debit under the same key', async () => {
    const walletId = await walletWith(100);
    provider.slow.set('job-late', 4_000); // past the hold's 2 s expiry and the sweeper's next pass
    const result = await withdraw(walletId, 'job-late', '15.00', { expiresInSeconds: 2 });
    expect(result).toMatchObject({ outcome: 'paid late', hold: { status: 'expired' } });
    await nothingHeld(walletId, result.hold.id);
    const steps = clientLog.filter((entry) => entry.jobId === 'job-late').map((entry) => [entry.step, entry.status]);
    expect(steps).toEqual([
      ['hold', 201],
      ['payout', 200],
      ['capture', 409],
      ['late debit', 201],
    ]);
    expect(payoutsFor('job-late').payments).toBe(1);
    expect(await ledgerOf(walletId)).toEqual({
      balance: 85,
      available: 85,
      held: 0,
      debits: [{ amount: -15, status: 'applied', fingerprint: 'job-late' }],
    });
    expect(await findLedgerViolations(env.pool)).toEqual([]);
  });
});
