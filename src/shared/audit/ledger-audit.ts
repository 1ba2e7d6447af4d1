/** audit: every rule of the ledger checked over the database (read-only), for operators, tests, the bench and the chaos run. */
import { sql, type CommonQueryMethods, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { maxBalance, unitsToDecimal } from '../ledger/money.js';

/** One broken rule: where (wallet, refno or transaction) and what the rows say. */
export interface LedgerViolation {
  rule: LedgerRule;
  walletId: number;
  refno: number | null;
  transactionId: string | null;
  detail: string;
}

export const LEDGER_RULES = [
  /** (when asked) nothing is pending: every accepted transaction reached its end. */
  'settled',
  /** every pending transaction lies in a marker of its wallet, so a worker can find it (not checked on a replica). */
  'pending-is-marked',
  /** the balance is the sum of the amounts of the applied (and later voided) transactions. */
  'balance-is-sum',
  /** applied refnos are exactly 1, 2, ..., n, and the wallet's last refno is n. */
  'refnos-contiguous',
  /** each applied row: oldbalance + amount = newbalance, and oldbalance is the previous newbalance (0 first). */
  'chain',
  /** no balance is ever below zero, and none is raised past its currency's cap but by a transfer's credit. */
  'balance-in-range',
  /** every amount has at most the fractional digits of its wallet's currency. */
  'amount-precision',
  /**
   * every transfer has its debit leg (-amount, in `from`); an applied debit has exactly one credit
   * leg (+amount, in `to`), a pending or rejected one none; both wallets hold the transfer's
   * currency; the credit is never rejected; a voided debit has a voided credit, and a voided credit
   * a debit voided or being voided; no transaction names a transfer it is not a leg (or a leg's
   * reversal) of.
   */
  'transfer-legs',
  /** per currency (whole-database audits): balances + transfer credits in flight = deposits - withdrawals. */
  'money-conserved',
  /** a rejected row has a reason and no refno. */
  'rejection-shape',
  /**
   * a rejection was deserved: it names the applied transaction it followed, whose newbalance is
   * the balance it saw, decided after it (and not after the next one), and that balance plus its
   * amount breaks the rule its reason names.
   */
  'rejection-deserved',
  /** a voided original is voided by an applied reversal of the opposite amount, and only then. */
  'void-consistent',
  /** the wallet's held is the sum of its live holds (decided active, not yet taken out by a capture, release or expiry). */
  'held-is-sum',
  /** no available balance (balance minus held) is below zero. */
  'available-in-range',
  /**
   * a captured hold has exactly one debit (its capture: -captured amount, at most the hold's
   * amount, never rejected), a hold taken out of held by its capture has that debit applied, and
   * no other hold, nor any other transaction, names a capture.
   */
  'hold-capture',
] as const;
export type LedgerRule = (typeof LEDGER_RULES)[number];

export interface AuditOptions {
  /** Only this wallet. */
  walletId?: number;
  /** Also require that nothing is pending (after a drain: tests, the bench, the chaos run). */
  settled?: boolean;
}

export interface AuditReport {
  wallets: number;
  transactions: number;
  violations: LedgerViolation[];
  /** Rejections recorded before their decisions were kept (migration 005): nothing to replay them against. */
  unverifiableRejections: number;
}

const violationSchema = z.object({
  rule: z.enum(LEDGER_RULES),
  walletId: z.number(),
  refno: z.number().nullable(),
  transactionId: z.string().nullable(),
  detail: z.string(),
});

/**
 * Checks every rule of the ledger over the whole database (or one wallet) in SQL, on NUMERIC
 * values: read-only, one snapshot (REPEATABLE READ), so it can run on a live database. Each
 * violation is reported once with where it is.
 */
export async function auditLedger(pool: DatabasePool, options: AuditOptions = {}): Promise<AuditReport> {
  const ofWallet = options.walletId === undefined ? sql.fragment`true` : sql.fragment`wallet_id = ${options.walletId}`;
  const ofThisWallet = options.walletId === undefined ? sql.fragment`true` : sql.fragment`w.id = ${options.walletId}`;
  const ofHoldWallet =
    options.walletId === undefined ? sql.fragment`true` : sql.fragment`h.wallet_id = ${options.walletId}`;
  const ofTransfer =
    options.walletId === undefined
      ? sql.fragment`true`
      : sql.fragment`(tr.from_wallet = ${options.walletId} OR tr.to_wallet = ${options.walletId})`;
  const maxBalance2 = unitsToDecimal(maxBalance(2));
  const maxBalance3 = unitsToDecimal(maxBalance(3));
  const run = async (db: CommonQueryMethods): Promise<AuditReport> => {
    // A replica cannot read the unlogged pending markers: there, that one rule is left out.
    const onReplica = await db.oneFirst(sql.type(z.object({ replica: z.boolean() }))`
      SELECT pg_is_in_recovery() AS replica
    `);
    const pendingUnmarked = onReplica
      ? sql.fragment`SELECT 'pending-is-marked', 0::bigint, NULL::bigint, NULL::text, NULL::text WHERE false`
      : sql.fragment`
      SELECT 'pending-is-marked', t.wallet_id, NULL, t.id::text, 'pending, but in no marker of its wallet: no worker will find it'
      FROM tx t
      WHERE EXISTS (SELECT 1 FROM pending_reservations WHERE wallet_id = 0)
        AND t.status = 'pending' AND NOT EXISTS (
        SELECT 1 FROM pending_reservations m
        WHERE m.wallet_id = t.wallet_id AND m.first_seq <= t.seq AND t.seq <= m.last_seq)`;
    const counts = await db.one(sql.type(
      z.object({ wallets: z.number(), transactions: z.number(), unverifiable: z.number() }),
    )`
      SELECT (SELECT count(*)::int FROM wallets w WHERE ${ofThisWallet}) AS wallets,
             (SELECT count(*)::int FROM transactions WHERE ${ofWallet}) AS transactions,
             (SELECT count(*)::int FROM transactions
               WHERE ${ofWallet} AND status = 'rejected' AND after_refno IS NULL) AS unverifiable
    `);
    const violations = await db.any(sql.type(violationSchema)`
      WITH tx AS (
        SELECT wallet_id, seq, coalesce(id, transaction_id(wallet_id, seq)) AS id, amount, status, reason, refno,
               oldbalance, newbalance, after_refno, voids, voided_by, finalized, transfer_id, hold_id, seen_held
        FROM transactions WHERE ${ofWallet}
      ), cap AS (
        SELECT id AS wallet_id, minor_units,
               CASE WHEN minor_units <= 2 THEN ${maxBalance2}::numeric ELSE ${maxBalance3}::numeric END AS max_balance
        FROM wallets w WHERE ${ofThisWallet}
      ), transfer_legs AS (
        SELECT tr.id, tr.from_wallet, tr.to_wallet, tr.amount, tr.currency, tr.credit_seq,
               d.amount AS debit_amount, d.status AS debit_status, d.transfer_id AS debit_transfer,
               c.amount AS credit_amount, c.status AS credit_status, c.transfer_id AS credit_transfer,
               fw.currency AS from_currency, tw.currency AS to_currency,
               EXISTS (SELECT 1 FROM transactions v WHERE v.wallet_id = tr.from_wallet AND v.void_key = d_id.id
                         AND v.status = 'pending' AND v.transfer_id = tr.id) AS debit_being_voided
        FROM transfers tr
        CROSS JOIN LATERAL (SELECT transaction_id(tr.from_wallet, tr.debit_seq) AS id) d_id
        LEFT JOIN transactions d ON d.wallet_id = tr.from_wallet AND d.seq = tr.debit_seq
        LEFT JOIN transactions c ON c.wallet_id = tr.to_wallet AND c.seq = tr.credit_seq
        LEFT JOIN wallets fw ON fw.id = tr.from_wallet
        LEFT JOIN wallets tw ON tw.id = tr.to_wallet
        WHERE ${ofTransfer}
      ), conservation AS (
        SELECT w.currency, sum(w.balance) AS balances,
               (SELECT coalesce(sum(t.amount), 0) FROM transactions t JOIN wallets tw ON tw.id = t.wallet_id
                WHERE tw.currency = w.currency AND t.transfer_id IS NULL AND t.status IN ('applied', 'voided')) AS external,
               (SELECT coalesce(sum(t.amount), 0) FROM transactions t JOIN wallets tw ON tw.id = t.wallet_id
                WHERE tw.currency = w.currency AND t.transfer_id IS NOT NULL AND t.amount > 0 AND t.status = 'pending') AS in_flight
        FROM wallets w WHERE ${options.walletId === undefined} GROUP BY w.currency
      ), applied AS (
        SELECT *, row_number() OVER w AS position, lag(newbalance) OVER w AS previous_newbalance
        FROM tx WHERE status IN ('applied', 'voided')
        WINDOW w AS (PARTITION BY wallet_id ORDER BY refno)
      ), hold_totals AS (
        SELECT w.id, w.balance, w.held,
               (SELECT coalesce(sum(h.amount), 0) FROM holds h
                WHERE h.wallet_id = w.id AND h.status IN ('active', 'captured', 'released', 'expired')
                  AND NOT h.held_released) AS live
        FROM wallets w WHERE ${ofThisWallet}
      ), hold_captures AS (
        SELECT h.id, h.wallet_id, h.amount, h.status, h.captured_amount, h.capture_seq, h.held_released,
               (SELECT count(*) FROM tx t WHERE t.hold_id = h.id) AS debits,
               d.amount AS debit_amount, d.status AS debit_status, d.hold_id AS debit_hold
        FROM holds h LEFT JOIN tx d ON d.wallet_id = h.wallet_id AND d.seq = h.capture_seq
        WHERE ${ofHoldWallet}
      ), wallet_totals AS (
        SELECT w.id, w.balance, w.last_refno, c.max_balance,
               coalesce(sum(a.amount), 0) AS total, count(a.refno) AS n, max(a.refno) AS max_refno
        FROM wallets w JOIN cap c ON c.wallet_id = w.id LEFT JOIN applied a ON a.wallet_id = w.id
        WHERE ${ofThisWallet}
        GROUP BY w.id, c.max_balance
      )
      SELECT 'settled' AS rule, wallet_id AS "walletId", NULL::bigint AS refno, id::text AS "transactionId",
             'still pending' AS detail
      FROM tx WHERE ${options.settled === true} AND status = 'pending'
      UNION ALL
      ${pendingUnmarked}
      UNION ALL
      SELECT 'balance-is-sum', id, NULL, NULL, format('balance %s, applied amounts sum to %s', balance, total)
      FROM wallet_totals WHERE balance <> total
      UNION ALL
      SELECT 'refnos-contiguous', wallet_id, refno, id::text, format('refno %s at position %s', refno, position)
      FROM applied WHERE refno <> position
      UNION ALL
      SELECT 'refnos-contiguous', id, NULL, NULL, format('last refno %s, %s applied', last_refno, n)
      FROM wallet_totals WHERE last_refno <> n
      UNION ALL
      SELECT 'chain', wallet_id, refno, id::text,
             format('oldbalance %s + amount %s, newbalance %s, previous newbalance %s',
                    oldbalance, amount, newbalance, coalesce(previous_newbalance, 0))
      FROM applied
      WHERE oldbalance + amount <> newbalance OR oldbalance <> coalesce(previous_newbalance, 0)
      UNION ALL
      SELECT 'balance-in-range', id, NULL, NULL, format('balance %s', balance)
      FROM wallet_totals WHERE balance < 0
      UNION ALL
      -- Past the cap only by a transfer's credit (never rejected: the money left the source already);
      -- anything else that raises a balance past it breaks the rule. Withdrawals may follow.
      SELECT 'balance-in-range', a.wallet_id, a.refno, a.id::text, format('newbalance %s', a.newbalance)
      FROM applied a JOIN cap c USING (wallet_id)
      WHERE a.newbalance < 0
         OR (a.newbalance > c.max_balance AND a.amount > 0 AND a.transfer_id IS NULL)
      UNION ALL
      SELECT 'amount-precision', t.wallet_id, t.refno, t.id::text,
             format('amount %s has more than the %s fractional digits of its currency', t.amount, c.minor_units)
      FROM tx t JOIN cap c USING (wallet_id) WHERE t.amount <> round(t.amount, c.minor_units)
      UNION ALL
      SELECT 'rejection-shape', wallet_id, refno, id::text, format('rejected with refno %s, reason %s', refno, reason)
      FROM tx WHERE status = 'rejected' AND (refno IS NOT NULL OR reason IS NULL)
      UNION ALL
      SELECT 'rejection-deserved', r.wallet_id, NULL, r.id::text, problem
      FROM tx r
      LEFT JOIN applied before ON before.wallet_id = r.wallet_id AND before.refno = r.after_refno
      LEFT JOIN applied next ON next.wallet_id = r.wallet_id AND next.refno = r.after_refno + 1
      LEFT JOIN tx original ON r.reason = 'not_voidable' AND original.wallet_id = r.wallet_id
                           AND original.seq = transaction_seq_of(r.voids)
      LEFT JOIN applied voider ON voider.wallet_id = r.wallet_id AND voider.id = original.voided_by
      JOIN cap c ON c.wallet_id = r.wallet_id
      CROSS JOIN LATERAL (SELECT CASE
        WHEN r.after_refno > 0 AND before.refno IS NULL
          THEN format('follows refno %s, which is not an applied transaction', r.after_refno)
        WHEN r.oldbalance <> coalesce(before.newbalance, 0)
          THEN format('saw balance %s after refno %s, whose newbalance is %s', r.oldbalance, r.after_refno,
                      coalesce(before.newbalance, 0))
        WHEN before.finalized > r.finalized
          THEN format('decided at %s, before refno %s it follows (%s)', r.finalized, r.after_refno, before.finalized)
        WHEN next.finalized < r.finalized
          THEN format('decided at %s, after refno %s (%s): it saw a stale balance', r.finalized, next.refno,
                      next.finalized)
        WHEN r.reason = 'insufficient_funds' AND r.oldbalance - coalesce(r.seen_held, 0) + r.amount >= 0
          THEN CASE WHEN coalesce(r.seen_held, 0) = 0 THEN format('balance %s covers amount %s', r.oldbalance, r.amount)
               ELSE format('available balance %s (balance %s, held %s) covers amount %s',
                           r.oldbalance - r.seen_held, r.oldbalance, r.seen_held, r.amount) END
        WHEN r.reason = 'balance_limit_exceeded' AND r.oldbalance + r.amount <= c.max_balance
          THEN format('balance %s + amount %s is within the limit', r.oldbalance, r.amount)
        WHEN r.reason = 'not_voidable' AND (voider.refno IS NULL OR voider.refno > r.after_refno)
          THEN format('its original was still applied after refno %s', r.after_refno)
        WHEN r.reason NOT IN ('insufficient_funds', 'balance_limit_exceeded', 'not_voidable')
          THEN format('unknown reason %s', r.reason)
      END AS problem) AS judged
      WHERE r.status = 'rejected' AND r.after_refno IS NOT NULL AND judged.problem IS NOT NULL
      UNION ALL
      SELECT 'void-consistent', o.wallet_id, o.refno, o.id::text,
             format('voided by %s, which is %s', o.voided_by,
                    CASE WHEN v.id IS NULL THEN 'not an applied transaction of the wallet'
                         ELSE format('a reversal of %s for %s', v.voids, v.amount) END)
      FROM tx o LEFT JOIN applied v ON v.wallet_id = o.wallet_id AND v.id = o.voided_by
      WHERE o.status = 'voided' AND (v.id IS NULL OR v.voids IS DISTINCT FROM o.id OR v.amount <> -o.amount)
      UNION ALL
      SELECT 'void-consistent', v.wallet_id, v.refno, v.id::text, format('reverses %s, which is %s', v.voids,
             coalesce(o.status, 'missing'))
      FROM applied v LEFT JOIN tx o ON o.wallet_id = v.wallet_id AND o.seq = transaction_seq_of(v.voids)
      WHERE v.voids IS NOT NULL AND (o.status IS DISTINCT FROM 'voided' OR o.voided_by IS DISTINCT FROM v.id)
      UNION ALL
      SELECT 'transfer-legs', l.from_wallet, NULL, l.id::text, judged.problem
      FROM transfer_legs l CROSS JOIN LATERAL (SELECT CASE
        WHEN l.debit_transfer IS DISTINCT FROM l.id THEN 'its debit leg is missing'
        WHEN l.debit_amount <> -l.amount THEN format('a debit leg of %s for a transfer of %s', l.debit_amount, l.amount)
        WHEN l.from_currency IS DISTINCT FROM l.currency OR l.to_currency IS DISTINCT FROM l.currency
          THEN format('%s moved from a wallet of %s to a wallet of %s', l.currency, l.from_currency, l.to_currency)
        WHEN l.debit_status IN ('applied', 'voided') AND l.credit_seq IS NULL
          THEN 'its debit was applied, but it has no credit leg'
        WHEN l.debit_status NOT IN ('applied', 'voided') AND l.credit_seq IS NOT NULL
          THEN format('its debit is %s, but it has a credit leg', l.debit_status)
        WHEN l.credit_seq IS NOT NULL AND l.credit_transfer IS DISTINCT FROM l.id THEN 'its credit leg is missing'
        WHEN l.credit_amount <> l.amount THEN format('a credit leg of %s for a transfer of %s', l.credit_amount, l.amount)
        WHEN l.credit_status = 'rejected' THEN 'its credit leg was rejected'
        WHEN l.debit_status = 'voided' AND l.credit_status IS DISTINCT FROM 'voided'
          THEN 'its debit leg was voided, but not its credit leg'
        WHEN l.credit_status = 'voided' AND l.debit_status = 'applied' AND NOT l.debit_being_voided
          THEN 'its credit leg was voided, but its debit leg neither is nor is being voided'
      END AS problem) AS judged
      WHERE judged.problem IS NOT NULL
      UNION ALL
      SELECT 'transfer-legs', t.wallet_id, t.refno, t.id::text,
             format('names transfer %s, but is neither one of its legs nor the reversal of one', t.transfer_id)
      FROM tx t LEFT JOIN transfers tr ON tr.id = t.transfer_id
      WHERE t.transfer_id IS NOT NULL AND NOT coalesce(
        (tr.from_wallet = t.wallet_id AND tr.debit_seq = t.seq) OR (tr.to_wallet = t.wallet_id AND tr.credit_seq = t.seq)
        -- the reversals of its legs (its void), each in its leg's wallet
        OR (tr.to_wallet = t.wallet_id AND t.voids = transaction_id(tr.to_wallet, tr.credit_seq) AND t.amount = -tr.amount)
        OR (tr.from_wallet = t.wallet_id AND t.voids = transaction_id(tr.from_wallet, tr.debit_seq) AND t.amount = tr.amount),
        false)
      UNION ALL
      SELECT 'held-is-sum', id, NULL, NULL, format('held %s, live holds sum to %s', held, live)
      FROM hold_totals WHERE held <> live
      UNION ALL
      SELECT 'available-in-range', id, NULL, NULL, format('balance %s minus held %s is below zero', balance, held)
      FROM hold_totals WHERE balance - held < 0
      UNION ALL
      SELECT 'hold-capture', c.wallet_id, NULL, c.id::text, judged.problem
      FROM hold_captures c CROSS JOIN LATERAL (SELECT CASE
        WHEN c.status <> 'captured' AND c.debits > 0 THEN format('%s, but %s transaction(s) capture it', c.status, c.debits)
        WHEN c.status <> 'captured' THEN NULL
        WHEN c.debits <> 1 THEN format('captured, with %s debits', c.debits)
        WHEN c.debit_hold IS DISTINCT FROM c.id THEN 'captured, but its capture_seq is not its debit'
        WHEN c.captured_amount IS NULL OR c.captured_amount > c.amount
          THEN format('captured %s of a hold of %s', c.captured_amount, c.amount)
        WHEN c.debit_amount <> -c.captured_amount
          THEN format('a debit of %s for a capture of %s', c.debit_amount, c.captured_amount)
        WHEN c.debit_status = 'rejected' THEN 'its capture debit was rejected'
        WHEN c.held_released AND c.debit_status NOT IN ('applied', 'voided')
          THEN format('out of held, but its debit is %s', c.debit_status)
        WHEN NOT c.held_released AND c.debit_status IN ('applied', 'voided')
          THEN 'its debit was applied, but it still counts in held'
      END AS problem) AS judged
      WHERE judged.problem IS NOT NULL
      UNION ALL
      SELECT 'hold-capture', t.wallet_id, t.refno, t.id::text, format('names hold %s, which it does not capture', t.hold_id)
      FROM tx t LEFT JOIN holds h ON h.id = t.hold_id
      WHERE t.hold_id IS NOT NULL AND NOT coalesce(h.wallet_id = t.wallet_id AND h.capture_seq = t.seq, false)
      UNION ALL
      SELECT 'money-conserved', 0, NULL, NULL,
             format('%s: balances %s + transfer credits in flight %s, but deposits minus withdrawals %s',
                    currency, balances, in_flight, external)
      FROM conservation WHERE balances + in_flight <> external
      ORDER BY 2, 3 NULLS FIRST, 1
    `);
    return {
      wallets: counts.wallets,
      transactions: counts.transactions,
      unverifiableRejections: counts.unverifiable,
      violations: [...violations],
    };
  };
  // One snapshot for every rule.
  return pool.transaction(async (tx) => {
    await tx.query(sql.unsafe`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY`);
    return run(tx);
  });
}

/** One line per violation, for people. */
export function describeViolation(violation: LedgerViolation): string {
  const where = [
    `wallet ${violation.walletId}`,
    violation.refno === null ? null : `refno ${violation.refno}`,
    violation.transactionId === null ? null : `transaction ${violation.transactionId}`,
  ]
    .filter(Boolean)
    .join(', ');
  return `${violation.rule}: ${where}: ${violation.detail}`;
}
