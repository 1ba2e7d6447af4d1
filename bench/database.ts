import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createApiKey } from '../src/shared/auth/api-key-repository.js';
import { auditLedger } from '../src/shared/audit/ledger-audit.js';
import { createDatabasePool } from '../src/shared/infra/db.js';
import { createDatabaseIfMissing, dropDatabase, migrate } from '../src/shared/infra/migrate.js';

const REFERENCE_SCHEMA = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'reference-schema.sql');

/**
 * Drops the database if it is there, then creates it with the service's migrations or, for the
 * synchronous reference, with the original's own tables (bench/reference-schema.sql).
 */
export async function freshDatabase(url: string, design: Design = 'service'): Promise<void> {
  await dropDatabase(url);
  await createDatabaseIfMissing(url);
  if (design === 'service') {
    await migrate(url);
    return;
  }
  const db = await connect(url);
  try {
    await db.query(await readFile(REFERENCE_SCHEMA, 'utf8'));
  } finally {
    await db.end();
  }
}

/** Which tables a bench database holds: the service's, or the synchronous reference's. */
export type Design = 'service' | 'reference';

/** An admin API key in the bench database, for the bench's HTTP client. */
export async function createBenchApiKey(url: string): Promise<string> {
  const pool = await createDatabasePool({ DATABASE_URL: url, DB_POOL_SIZE: 1 });
  try {
    return (await createApiKey(pool, { name: 'bench', scopes: ['admin'] })).key;
  } finally {
    await pool.end();
  }
}

export async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return client;
}

/** Pending work, through the markers (a transaction is pending while its reservation's marker is there). */
export async function pendingCount(db: pg.Client): Promise<number> {
  const result = await db.query<{ n: string }>('SELECT count(*) AS n FROM pending_reservations WHERE wallet_id > 0');
  return Number(result.rows[0]!.n);
}

/** Waits until the relay has published every outbox row (its cursor is at the last one). */
export async function waitUntilRelayed(db: pg.Client, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await db.query<{ behind: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM outbox o, outbox_relay_cursor c WHERE (o.xid, o.id) > (c.xid, c.id)) AS behind`,
    );
    if (!rows[0]!.behind) return;
    if (Date.now() > deadline) throw new Error(`the relay did not catch up within ${timeoutMs} ms`);
    await sleep(25);
  }
}

/**
 * Polls until no transaction is pending. Fails when a service process died, or when the pending
 * count has not moved for `stallMs`.
 */
export async function waitUntilFinal(
  db: pg.Client,
  isServiceDown: () => string | null,
  stallMs = 60_000,
): Promise<number> {
  let last = -1;
  let lastChange = Date.now();
  for (;;) {
    const pending = await pendingCount(db);
    if (pending === 0) return Date.now();
    const down = isServiceDown();
    if (down) throw new Error(`${down} exited while ${pending} transactions were pending`);
    if (pending !== last) {
      last = pending;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > stallMs) {
      throw new Error(`${pending} transactions still pending, no progress for ${stallMs} ms`);
    }
    await sleep(25);
  }
}

export interface MeasuredOutcome {
  count: number;
  applied: number;
  rejected: number;
  pending: number;
  mustRejectNotRejected: number;
  /** Epoch ms (Postgres clock, same host) of the first and last finalization of a measured transaction. */
  firstFinalizedAt: number;
  lastFinalizedAt: number;
}

/** A measured-outcome query's row: counts and epoch-ms texts, as Postgres returns them. */
function outcomeOf(row: Record<string, string | null>, count = Number(row.count)): MeasuredOutcome {
  const applied = Number(row.applied);
  return {
    count,
    applied,
    // The reference stores no rejection: its rejected are what it did not apply.
    rejected: row.rejected === undefined ? count - applied : Number(row.rejected),
    pending: Number(row.pending ?? 0),
    mustRejectNotRejected: Number(row.must_reject_not_rejected ?? 0),
    firstFinalizedAt: Number(row.first_finalized),
    lastFinalizedAt: Number(row.last_finalized),
  };
}

/** Outcome of the measured transactions (fingerprints m-*), seeds excluded. */
export async function measuredOutcome(db: pg.Client): Promise<MeasuredOutcome> {
  const result = await db.query<Record<string, string>>(`
    SELECT count(*) AS count,
           count(*) FILTER (WHERE status = 'applied') AS applied,
           count(*) FILTER (WHERE status = 'rejected') AS rejected,
           count(*) FILTER (WHERE status = 'pending') AS pending,
           count(*) FILTER (WHERE fingerprint LIKE '%-x' AND status <> 'rejected') AS must_reject_not_rejected,
           (extract(epoch FROM min(finalized)) * 1000)::text AS first_finalized,
           (extract(epoch FROM max(finalized)) * 1000)::text AS last_finalized
      FROM transactions
     WHERE fingerprint LIKE 'm-%'`);
  return outcomeOf(result.rows[0]!);
}

/**
 * Outcome of the service's measured transfers (fingerprints m-*): completed once both legs are
 * applied, rejected with their debit; finalized when the last of their legs was.
 */
export async function measuredTransferOutcome(db: pg.Client): Promise<MeasuredOutcome> {
  const result = await db.query<Record<string, string>>(`
    SELECT count(*) AS count,
           count(*) FILTER (WHERE d.status = 'applied' AND c.status = 'applied') AS applied,
           count(*) FILTER (WHERE d.status = 'rejected') AS rejected,
           count(*) FILTER (WHERE d.status = 'pending' OR (d.status = 'applied' AND c.status IS DISTINCT FROM 'applied')) AS pending,
           (extract(epoch FROM min(d.finalized)) * 1000)::text AS first_finalized,
           (extract(epoch FROM max(greatest(d.finalized, c.finalized))) * 1000)::text AS last_finalized
      FROM transfers tr
      JOIN transactions d ON d.wallet_id = tr.from_wallet AND d.seq = tr.debit_seq
      LEFT JOIN transactions c ON c.wallet_id = tr.to_wallet AND c.seq = tr.credit_seq
     WHERE tr.fingerprint LIKE 'm-%'`);
  return outcomeOf(result.rows[0]!);
}

/**
 * Outcome of the reference's measured transactions or transfers: it stores only applied ones
 * (fingerprints m-*; a transfer's two legs m-<i>:debit and m-<i>:credit, counted once by its
 * debit), and a rejection answered 422 at once; `rejected` is what the load did not get applied.
 */
export async function measuredReferenceOutcome(db: pg.Client, count: number): Promise<MeasuredOutcome> {
  const result = await db.query<Record<string, string>>(`
    SELECT count(*) FILTER (WHERE fingerprint NOT LIKE '%:credit') AS applied,
           count(*) FILTER (WHERE fingerprint LIKE '%-x') AS must_reject_not_rejected,
           (extract(epoch FROM min(created)) * 1000)::text AS first_finalized,
           (extract(epoch FROM max(created)) * 1000)::text AS last_finalized
      FROM transactions
     WHERE fingerprint LIKE 'm-%'`);
  return outcomeOf(result.rows[0]!, count);
}

export interface LedgerCheck {
  wallets: number;
  /** Wallets whose balance differs from the sum of their applied amounts (NUMERIC, in SQL). */
  balanceMismatch: number;
  negativeBalance: number;
  /** Wallets whose refnos are not exactly 1..n with n = last_refno. */
  refnoGaps: number;
  /** Applied rows with newbalance <> oldbalance + amount, or a negative old/new balance. */
  badRows: number;
  /** Applied rows whose oldbalance is not the newbalance of the row before (0 for the first). */
  brokenChain: number;
  /**
   * Informational, not a failure: applied rows whose refno order differs from their seq order.
   * seq is taken at insert, and concurrent reservations commit in any order; a batch only sees
   * committed rows, so of two concurrent POSTs the later seq can be applied first. A POST that
   * answered before another was sent always has the lower seq and the lower refno.
   */
  outOfSeqOrder: number;
  /**
   * The service only: its own audit (`wallet audit --settled`, every rule of the ledger, the
   * deserved rejections included), by rule; the figures above are the same for both designs.
   */
  auditViolations: Record<string, number> | null;
  ok: boolean;
}

/** Every money check runs in SQL on NUMERIC values; nothing here goes through floating point. */
export async function checkLedger(db: pg.Client, url: string, design: Design = 'service'): Promise<LedgerCheck> {
  // The reference stores applied transactions only, and has no reservation order (seq).
  const applied = design === 'service' ? "status IN ('applied', 'voided')" : 'true';
  const order = design === 'service' ? 'seq' : 'refno';
  const totals = await db.query<Record<string, string>>(`
    WITH applied AS (
      SELECT wallet_id,
             sum(amount) AS total,
             count(*) AS n,
             min(refno) AS min_refno,
             max(refno) AS max_refno,
             count(DISTINCT refno) AS distinct_refnos,
             count(*) FILTER (WHERE newbalance <> oldbalance + amount OR newbalance < 0 OR oldbalance < 0) AS bad_rows
        FROM transactions
       WHERE ${applied}
       GROUP BY wallet_id
    )
    SELECT count(*) AS wallets,
           count(*) FILTER (WHERE w.balance <> coalesce(a.total, 0)) AS balance_mismatch,
           count(*) FILTER (WHERE w.balance < 0) AS negative_balance,
           count(*) FILTER (
             WHERE coalesce(a.n, 0) <> w.last_refno
                OR (a.n > 0 AND (a.min_refno <> 1 OR a.max_refno <> a.n OR a.distinct_refnos <> a.n))
           ) AS refno_gaps,
           coalesce(sum(a.bad_rows), 0) AS bad_rows
      FROM wallets w
      LEFT JOIN applied a ON a.wallet_id = w.id`);
  const chain = await db.query<Record<string, string>>(`
    SELECT count(*) FILTER (WHERE oldbalance <> previous_newbalance) AS broken_chain,
           count(*) FILTER (WHERE refno <> seq_rank) AS out_of_order
      FROM (
        SELECT oldbalance,
               refno,
               lag(newbalance, 1, 0::numeric) OVER (PARTITION BY wallet_id ORDER BY refno) AS previous_newbalance,
               row_number() OVER (PARTITION BY wallet_id ORDER BY ${order}) AS seq_rank
          FROM transactions
         WHERE ${applied}
      ) AS t`);
  const row = totals.rows[0]!;
  const chainRow = chain.rows[0]!;
  const check = {
    wallets: Number(row.wallets),
    balanceMismatch: Number(row.balance_mismatch),
    negativeBalance: Number(row.negative_balance),
    refnoGaps: Number(row.refno_gaps),
    badRows: Number(row.bad_rows),
    brokenChain: Number(chainRow.broken_chain),
    outOfSeqOrder: Number(chainRow.out_of_order),
  };
  let auditViolations: Record<string, number> | null = null;
  if (design === 'service') {
    const pool = await createDatabasePool({ DATABASE_URL: url, DB_POOL_SIZE: 1 }, 'wallet-audit');
    try {
      auditViolations = {};
      for (const violation of (await auditLedger(pool, { settled: true })).violations) {
        auditViolations[violation.rule] = (auditViolations[violation.rule] ?? 0) + 1;
      }
    } finally {
      await pool.end();
    }
  }
  const ok =
    check.balanceMismatch === 0 &&
    check.negativeBalance === 0 &&
    check.refnoGaps === 0 &&
    check.badRows === 0 &&
    check.brokenChain === 0 &&
    Object.keys(auditViolations ?? {}).length === 0;
  return { ...check, auditViolations, ok };
}

/** Backend pids of `database` and Postgres' own background processes, for CPU accounting. */
export async function postgresPids(
  db: pg.Client,
  database: string,
): Promise<{ bench: number[]; background: number[]; byApplication: Record<string, number[]> }> {
  const result = await db.query<{
    pid: number;
    datname: string | null;
    backend_type: string;
    application_name: string;
  }>('SELECT pid, datname, backend_type, application_name FROM pg_stat_activity');
  const bench = result.rows.filter((row) => row.datname === database && row.backend_type === 'client backend');
  const byApplication: Record<string, number[]> = {};
  for (const row of bench) (byApplication[row.application_name || 'other'] ??= []).push(row.pid);
  return {
    bench: bench.map((row) => row.pid),
    background: result.rows.filter((row) => row.backend_type !== 'client backend').map((row) => row.pid),
    byApplication,
  };
}

/**
 * Steady state: gives every wallet `perWallet` applied deposits of 1.00 of history (refnos from 1,
 * wallets interleaved in time as live traffic is), written in bulk by SQL in the design's own
 * tables, then vacuums, analyzes and checkpoints, so that the measured window starts on settled
 * tables. The service's rows get their journal rows too (its listings read them).
 */
export async function preloadHistory(url: string, design: Design, perWallet: number): Promise<number> {
  const db = await connect(url);
  try {
    const rows = design === 'service' ? SERVICE_HISTORY : REFERENCE_HISTORY;
    const inserted = await db.query(rows, [perWallet]);
    // The service's label search finds history through outbox rows, as the live ones are written.
    if (design === 'service') await db.query(SERVICE_HISTORY_LABELS);
    await db.query(
      'UPDATE wallets SET balance = balance + $1, last_refno = last_refno + $1::bigint, version = version + 1',
      [perWallet],
    );
    await db.query('VACUUM ANALYZE');
    await db.query('CHECKPOINT');
    return inserted.rowCount ?? 0;
  } finally {
    await db.end();
  }
}

const SERVICE_HISTORY = `
  WITH history AS (
    SELECT w.id AS wallet_id, g.i, row_number() OVER (ORDER BY g.i, w.id) AS n
    FROM wallets w CROSS JOIN generate_series(1, $1::int) AS g (i)
  )
  INSERT INTO transactions (wallet_id, amount, fingerprint, labels, status, refno, oldbalance, newbalance, created, finalized)
  SELECT wallet_id, 1.00, 'p-' || n, '{"bench": "history"}', 'applied', i, i - 1, i,
         now() - interval '2 days' + n * interval '100 microseconds', now() - interval '2 days' + n * interval '100 microseconds'
  FROM history ORDER BY n`;

const SERVICE_HISTORY_LABELS = `
  INSERT INTO outbox (kind, wallet_ids, seqs, labels, created)
  SELECT 'journal', array_agg(wallet_id ORDER BY seq), array_agg(seq ORDER BY seq), jsonb_agg(DISTINCT labels), min(created)
  FROM transactions WHERE fingerprint LIKE 'p-%' GROUP BY seq / 32 ORDER BY seq / 32`;

const REFERENCE_HISTORY = `
  WITH history AS (
    SELECT w.id AS wallet_id, g.i, row_number() OVER (ORDER BY g.i, w.id) AS n
    FROM wallets w CROSS JOIN generate_series(1, $1::int) AS g (i)
  )
  INSERT INTO transactions (wallet_id, refno, amount, fingerprint, labels, oldbalance, newbalance, created)
  SELECT wallet_id, i, 1.00, 'p-' || n, '{"bench": "history"}', i - 1, i, now() - interval '2 days' + n * interval '100 microseconds'
  FROM history ORDER BY n`;
