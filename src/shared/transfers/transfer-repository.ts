import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';

/**
 * Data access for the transfers table (migration 007). A transfer's state is read from its legs,
 * two rows of the transactions table: the debit of `from` (debit_seq) and, once the debit was
 * applied, the credit of `to` (credit_seq).
 */

export const transferStatusSchema = z.enum(['pending', 'completed', 'rejected']);
export type TransferStatus = z.infer<typeof transferStatusSchema>;

export const transferRowSchema = z.object({
  id: z.string(),
  seq: z.number(),
  fingerprint: z.string(),
  from: z.number(),
  to: z.number(),
  amount: z.string(),
  currency: z.string(),
  labels: z.record(z.string(), z.string()),
  description: z.string().nullable(),
  status: transferStatusSchema,
  reason: z.string().nullable(),
  debitId: z.string(),
  creditId: z.string().nullable(),
  created: z.string(),
});
export type TransferRow = z.infer<typeof transferRowSchema>;

/** The columns of a transfer `tr` with its debit leg `d` and credit leg `c` joined. */
const transferColumns = sql.fragment`
  tr.id, tr.seq, tr.fingerprint, tr.from_wallet AS "from", tr.to_wallet AS "to", tr.amount::text AS amount,
  tr.currency, tr.labels, tr.description,
  CASE WHEN d.status = 'rejected' THEN 'rejected'
       WHEN c.status IN ('applied', 'voided') THEN 'completed'
       ELSE 'pending' END AS status,
  CASE WHEN d.status = 'rejected' THEN d.reason END AS reason,
  coalesce(d.id, transaction_id(d.wallet_id, d.seq)) AS "debitId",
  coalesce(c.id, transaction_id(c.wallet_id, c.seq)) AS "creditId",
  tr.created
`;
const withLegs = sql.fragment`
  JOIN transactions d ON d.wallet_id = tr.from_wallet AND d.seq = tr.debit_seq
  LEFT JOIN transactions c ON c.wallet_id = tr.to_wallet AND c.seq = tr.credit_seq
`;

export interface NewTransfer {
  fingerprint: string;
  from: number;
  to: number;
  /** Positive exact decimal text. */
  amount: string;
  currency: string;
  labels: Record<string, string>;
  description: string | null;
  traceContext: string | null;
}

/**
 * Reserves a transfer and its debit leg (a pending transaction of `from` for -amount, with its
 * marker and its outbox row) in one statement. Null when the fingerprint is taken. The leg's seq
 * is drawn first, so the transfer row names it from the start and is never updated for it.
 */
export async function insertTransfer(db: CommonQueryMethods, transfer: NewTransfer): Promise<TransferRow | null> {
  return db.maybeOne(sql.type(transferRowSchema)`
    WITH fresh AS MATERIALIZED (
      SELECT gen_random_uuid() AS id, nextval(pg_get_serial_sequence('transactions', 'seq')) AS seq
    ), tr AS (
      INSERT INTO transfers (id, fingerprint, from_wallet, to_wallet, amount, currency, labels, description, debit_seq)
      SELECT id, ${transfer.fingerprint}, ${transfer.from}, ${transfer.to}, ${transfer.amount}::numeric,
             ${transfer.currency}, ${sql.jsonb(transfer.labels)}, ${transfer.description}, seq
      FROM fresh
      ON CONFLICT (fingerprint) DO NOTHING
      RETURNING *
    ), reserved AS (
      INSERT INTO transactions (wallet_id, seq, amount, fingerprint, labels, description, trace_context, transfer_id)
      OVERRIDING SYSTEM VALUE
      SELECT from_wallet, debit_seq, -amount, 'transfer:' || id || ':debit', labels, description,
             ${transfer.traceContext}, id
      FROM tr
      RETURNING *
    ), marked AS (
      INSERT INTO pending_reservations (wallet_id, first_seq, last_seq) SELECT wallet_id, seq, seq FROM reserved
    ), announced AS (
      INSERT INTO outbox (kind, wallet_ids, seqs, labels)
      SELECT 'transactions_reserved', ARRAY[wallet_id], ARRAY[seq],
             CASE WHEN labels <> '{}'::jsonb THEN jsonb_build_array(labels) END
      FROM reserved
    )
    SELECT tr.id, tr.seq, tr.fingerprint, tr.from_wallet AS "from", tr.to_wallet AS "to",
           tr.amount::text AS amount, tr.currency, tr.labels, tr.description, 'pending' AS status, NULL AS reason,
           transaction_id(d.wallet_id, d.seq) AS "debitId", NULL AS "creditId", tr.created
    FROM tr JOIN reserved d ON d.transfer_id = tr.id
  `);
}

export async function findTransferById(db: CommonQueryMethods, id: string): Promise<TransferRow | null> {
  return db.maybeOne(
    sql.type(transferRowSchema)`SELECT ${transferColumns} FROM transfers tr ${withLegs} WHERE tr.id = ${id}`,
  );
}

export async function findTransferByFingerprint(
  db: CommonQueryMethods,
  fingerprint: string,
): Promise<TransferRow | null> {
  return db.maybeOne(sql.type(transferRowSchema)`
    SELECT ${transferColumns} FROM transfers tr ${withLegs} WHERE tr.fingerprint = ${fingerprint}
  `);
}

/** A wallet's transfers (either side), newest first, before `beforeSeq` when given. */
export async function findWalletTransfers(
  db: CommonQueryMethods,
  walletId: number,
  page: { beforeSeq: number | null; limit: number },
): Promise<readonly TransferRow[]> {
  const before = page.beforeSeq === null ? sql.fragment`true` : sql.fragment`seq < ${page.beforeSeq}`;
  return db.any(sql.type(transferRowSchema)`
    WITH mine AS (
      (SELECT * FROM transfers WHERE from_wallet = ${walletId} AND ${before} ORDER BY seq DESC LIMIT ${page.limit})
      UNION ALL
      (SELECT * FROM transfers WHERE to_wallet = ${walletId} AND ${before} ORDER BY seq DESC LIMIT ${page.limit})
    )
    SELECT ${transferColumns} FROM mine tr ${withLegs} ORDER BY tr.seq DESC LIMIT ${page.limit}
  `);
}
