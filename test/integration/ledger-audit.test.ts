import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPendingTransactions } from '../../src/shared/apply/apply-pending-transactions.js';
import { LEDGER_RULES, auditLedger, type LedgerRule } from '../../src/shared/audit/ledger-audit.js';
import { insertPendingTransaction } from '../../src/shared/transactions/transaction-repository.js';
import { insertTransfers } from '../../src/shared/transfers/transfer-repository.js';
import { captureHold, insertHold } from '../../src/shared/holds/hold-repository.js';
import { insertWallet } from '../../src/shared/wallets/wallet-repository.js';
import { ROOT, createTestEnv, type TestEnv } from '../support/test-env.js';

const EUR = { code: 'EUR', minorUnits: 2 };

let env: TestEnv;

beforeAll(async () => {
  env = await createTestEnv('ledger_audit');
});

afterAll(async () => {
  await env?.destroy();
});

async function walletWith(amounts: string[], apply = true): Promise<number> {
  const walletId = (await insertWallet(env.pool, { externalId: randomUUID(), labels: {}, currency: EUR }))!.id;
  for (const amount of amounts) {
    await insertPendingTransaction(env.pool, {
      walletId,
      amount,
      fingerprint: randomUUID(),
      labels: {},
      description: null,
    });
  }
  if (apply) await applyPendingTransactions(env.pool, walletId, { batchSize: 10 });
  return walletId;
}

const query = (text: ReturnType<typeof sql.unsafe>) => env.pool.query(text);

/** A completed transfer of `amount` from the wallet to a new one: both legs applied. */
async function transferOut(from: number, amount: string): Promise<void> {
  const to = await walletWith([]);
  await insertTransfers(env.pool, [
    { fingerprint: randomUUID(), from, to, amount, currency: 'EUR', labels: {}, description: null, traceContext: null },
  ]);
  await applyPendingTransactions(env.pool, from, { batchSize: 10 });
  await applyPendingTransactions(env.pool, to, { batchSize: 10 });
}

/** An active hold of `amount` on the wallet (decided by its apply); answers the hold's id. */
async function holdOn(walletId: number, amount: string): Promise<string> {
  const hold = await insertHold(env.pool, {
    walletId,
    fingerprint: randomUUID(),
    amount,
    labels: {},
    description: null,
    expiresInSeconds: 3600,
  });
  await applyPendingTransactions(env.pool, walletId, { batchSize: 10 });
  return hold!.id;
}

/** One way to break a sound wallet per rule (some rules twice), and the rule it must be reported under. */
const corruptions: {
  rule: LedgerRule;
  /** Rules the same corruption breaks too. */
  also?: LedgerRule[];
  what: string;
  amounts: string[];
  corrupt: (walletId: number) => Promise<unknown>;
}[] = [
  {
    rule: 'settled',
    what: 'a transaction left pending',
    amounts: ['5.00'],
    corrupt: (walletId) =>
      insertPendingTransaction(env.pool, {
        walletId,
        amount: '1.00',
        fingerprint: randomUUID(),
        labels: {},
        description: null,
      }),
  },
  {
    rule: 'pending-is-marked',
    also: ['settled'],
    what: 'a pending transaction whose marker is gone',
    amounts: ['5.00'],
    corrupt: async (walletId) => {
      await insertPendingTransaction(env.pool, {
        walletId,
        amount: '1.00',
        fingerprint: randomUUID(),
        labels: {},
        description: null,
      });
      await query(sql.unsafe`DELETE FROM pending_reservations WHERE wallet_id = ${walletId}`);
    },
  },
  {
    rule: 'balance-is-sum',
    what: 'a balance that is not the sum of its amounts',
    amounts: ['5.00', '3.00', '-1.00'],
    corrupt: (walletId) => query(sql.unsafe`UPDATE wallets SET balance = 8 WHERE id = ${walletId}`),
  },
  {
    rule: 'refnos-contiguous',
    what: 'a gap in the refnos',
    amounts: ['5.00', '3.00', '-1.00'],
    corrupt: (walletId) =>
      query(sql.unsafe`UPDATE transactions SET refno = 5 WHERE wallet_id = ${walletId} AND refno = 3`),
  },
  {
    rule: 'refnos-contiguous',
    what: 'a last refno that does not count the applied transactions',
    amounts: ['5.00', '3.00'],
    corrupt: (walletId) => query(sql.unsafe`UPDATE wallets SET last_refno = 3 WHERE id = ${walletId}`),
  },
  {
    rule: 'chain',
    what: 'an oldbalance that is not the previous newbalance',
    amounts: ['5.00', '3.00', '-1.00'],
    corrupt: (walletId) =>
      query(sql.unsafe`UPDATE transactions SET oldbalance = 4 WHERE wallet_id = ${walletId} AND refno = 2`),
  },
  {
    rule: 'balance-in-range',
    // 0 -> -1 -> 8: a chain that adds up and ends where the wallet is, through a negative balance.
    what: 'a balance below zero on the way',
    amounts: ['5.00', '3.00'],
    corrupt: (walletId) =>
      query(sql.unsafe`
        UPDATE transactions SET
          amount = CASE refno WHEN 1 THEN -1 ELSE 9 END,
          newbalance = CASE refno WHEN 1 THEN -1 ELSE newbalance END,
          oldbalance = CASE refno WHEN 1 THEN oldbalance ELSE -1 END
        WHERE wallet_id = ${walletId}
      `),
  },
  {
    rule: 'rejection-shape',
    what: 'a rejection that took a refno',
    amounts: ['5.00', '-10.00'],
    corrupt: (walletId) =>
      query(sql.unsafe`UPDATE transactions SET refno = 99 WHERE wallet_id = ${walletId} AND status = 'rejected'`),
  },
  {
    rule: 'rejection-deserved',
    what: 'a rejected withdrawal that the balance covered',
    amounts: ['5.00', '-10.00'],
    corrupt: (walletId) =>
      query(sql.unsafe`UPDATE transactions SET amount = -4.00 WHERE wallet_id = ${walletId} AND status = 'rejected'`),
  },
  {
    rule: 'rejection-deserved',
    what: 'a rejection that saw a balance the ledger never had',
    amounts: ['5.00', '-10.00'],
    corrupt: (walletId) =>
      query(sql.unsafe`UPDATE transactions SET oldbalance = 1 WHERE wallet_id = ${walletId} AND status = 'rejected'`),
  },
  {
    rule: 'rejection-deserved',
    what: 'a rejection decided against a stale balance (after the next applied transaction)',
    amounts: ['5.00', '-10.00', '7.00'],
    corrupt: (walletId) =>
      query(sql.unsafe`
        UPDATE transactions SET finalized = (SELECT finalized FROM transactions WHERE wallet_id = ${walletId} AND refno = 2) + interval '1 second'
        WHERE wallet_id = ${walletId} AND status = 'rejected'
      `),
  },
  {
    rule: 'void-consistent',
    what: 'an original marked voided by a reversal that does not exist',
    amounts: ['5.00'],
    corrupt: (walletId) =>
      query(
        sql.unsafe`UPDATE transactions SET status = 'voided', voided_by = ${randomUUID()} WHERE wallet_id = ${walletId}`,
      ),
  },
  {
    rule: 'amount-precision',
    what: 'amounts with more fractional digits than the currency has minor units',
    amounts: ['5.50', '3.00'],
    corrupt: (walletId) => query(sql.unsafe`UPDATE wallets SET minor_units = 0 WHERE id = ${walletId}`),
  },
  {
    rule: 'transfer-legs',
    what: 'a transfer between wallets of another currency than its own',
    amounts: ['5.00'],
    corrupt: async (walletId) => {
      await transferOut(walletId, '2.00');
      await query(sql.unsafe`UPDATE transfers SET currency = 'USD' WHERE from_wallet = ${walletId}`);
    },
  },
  {
    rule: 'money-conserved',
    also: ['transfer-legs'],
    what: 'a debit leg that no longer names its transfer: money appears in the destination from nowhere',
    amounts: ['5.00'],
    corrupt: async (walletId) => {
      await transferOut(walletId, '2.00');
      await query(sql.unsafe`UPDATE transactions SET transfer_id = NULL WHERE wallet_id = ${walletId} AND amount < 0`);
    },
  },
  {
    rule: 'held-is-sum',
    what: "a wallet's held no longer counting its active hold: the hold's money can be spent twice",
    amounts: ['5.00'],
    corrupt: async (walletId) => {
      await holdOn(walletId, '2.00');
      await query(sql.unsafe`UPDATE wallets SET held = 0 WHERE id = ${walletId}`);
    },
  },
  {
    rule: 'available-in-range',
    what: 'more held than the balance',
    amounts: ['5.00'],
    corrupt: async (walletId) => {
      const holdId = await holdOn(walletId, '4.00');
      await query(sql.unsafe`UPDATE holds SET amount = 6 WHERE id = ${holdId}`);
      await query(sql.unsafe`UPDATE wallets SET held = 6 WHERE id = ${walletId}`);
    },
  },
  {
    rule: 'hold-capture',
    what: 'a captured hold whose debit is not its captured amount',
    amounts: ['5.00'],
    corrupt: async (walletId) => {
      const holdId = await holdOn(walletId, '3.00');
      await captureHold(env.pool, walletId, holdId, { amount: null, fingerprint: randomUUID(), traceContext: null });
      await applyPendingTransactions(env.pool, walletId, { batchSize: 10 });
      await query(sql.unsafe`UPDATE holds SET captured_amount = 1 WHERE id = ${holdId}`);
    },
  },
];

describe('wallet audit', () => {
  it('When a ledger is corrupted in each of the ways it checks, one wallet per corruption, then each is reported under its rule, for its own wallet, and nothing else', async () => {
    const wallets: number[] = [];
    for (const { amounts } of corruptions) wallets.push(await walletWith(amounts));
    expect((await auditLedger(env.pool, { settled: true })).violations).toEqual([]);

    for (const [index, { corrupt }] of corruptions.entries()) await corrupt(wallets[index]!);

    const report = await auditLedger(env.pool, { settled: true });
    const found = [...new Set(report.violations.map((violation) => `${violation.walletId} ${violation.rule}`))].sort();
    // Conservation is a rule of the whole database: reported once, under wallet 0, whatever broke it.
    const expected = corruptions.flatMap(({ rule, also = [] }, index) =>
      [rule, ...also].map((r) => `${r === 'money-conserved' ? 0 : wallets[index]} ${r}`),
    );
    expect(found).toEqual([...new Set(expected)].sort());
    // Every rule is shown firing.
    expect(new Set(corruptions.map(({ rule }) => rule))).toEqual(new Set(LEDGER_RULES));
    // One wallet alone: only its own violation.
    expect((await auditLedger(env.pool, { walletId: wallets[8]! })).violations).toMatchObject([
      { rule: 'rejection-deserved', walletId: wallets[8], detail: 'balance 5.00 covers amount -4.00' },
    ]);
  });

  it('When run from the CLI against a database with a wrongful rejection, then it prints the violation and exits 1; on a sound wallet it exits 0', async () => {
    const sound = await walletWith(['5.00', '-10.00']);
    const wrong = await walletWith(['5.00', '-10.00']);
    await query(sql.unsafe`UPDATE transactions SET amount = -4.00 WHERE wallet_id = ${wrong} AND status = 'rejected'`);
    const cli = (...args: string[]) =>
      new Promise<{ code: number | null; output: string }>((resolve) => {
        const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli.ts'), 'audit', ...args], {
          cwd: ROOT,
          env: { ...env.env, LOG_LEVEL: 'silent' },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let output = '';
        child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
        child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
        child.on('exit', (code) => resolve({ code, output }));
      });
    const [bad, good] = await Promise.all([cli('--wallet', String(wrong)), cli('--wallet', String(sound))]);
    expect(bad.code, bad.output).toBe(1);
    expect(bad.output).toContain(`rejection-deserved: wallet ${wrong}`);
    expect(bad.output).toContain('balance 5.00 covers amount -4.00');
    expect(good.code, good.output).toBe(0);
    expect(good.output).toMatch(/0 violations/);
  });
});
