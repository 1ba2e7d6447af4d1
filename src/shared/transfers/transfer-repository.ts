import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { reservationBookkeeping } from '../transactions/transaction-repository.js';

/**
 * Data access for the transfers table (migration 007). A transfer's state is read from its legs,
 * two rows of the transactions table: the debit of `from` (debit_seq) and, once the debit was
 * applied, the credit of `to` (credit_seq).
 */

export const transferStatusSchema = z.enum(['pending', 'completed', 'rejected', 'voiding', 'voided']);
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
  /** The credit leg's seq, for the void. */
  creditSeq: z.number().nullable(),
  created: z.string(),
});
export type TransferRow = z.infer<typeof transferRowSchema>;

/** The columns of a transfer `tr` with its debit leg `d` and credit leg `c` joined. */
const transferColumns = sql.fragment`
  tr.id, tr.seq, tr.fingerprint, tr.from_wallet AS "from", tr.to_wallet AS "to", tr.amount::text AS amount,
  tr.currency, tr.labels, tr.description,
  CASE WHEN d.status = 'rejected' THEN 'rejected'
       WHEN d.status = 'voided' THEN 'voided'
       WHEN c.status = 'voided' THEN 'voiding'
       WHEN c.status = 'applied' THEN 'completed'
       ELSE 'pending' END AS status,
  CASE WHEN d.status = 'rejected' THEN d.reason END AS reason,
  coalesce(d.id, transaction_id(d.wallet_id, d.seq)) AS "debitId",
  coalesce(c.id, transaction_id(c.wallet_id, c.seq)) AS "creditId", tr.credit_seq AS "creditSeq",
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
 * Reserves a group of transfers in one statement, as transactions are reserved in groups: their
 * transfer rows, their debit legs, one marker per source wallet and one outbox row for all. A
 * transfer whose fingerprint is taken (or repeated in the group) reserves nothing and has no row
 * in the result; the others come back with their position in `group`.
 */
export async function insertTransfers(
  db: CommonQueryMethods,
  group: readonly NewTransfer[],
): Promise<readonly (TransferRow & { ordinal: number })[]> {
  const tuples = group.map((transfer, index) => [
    index,
    transfer.fingerprint,
    transfer.from,
    transfer.to,
    transfer.amount,
    transfer.currency,
    JSON.stringify(transfer.labels),
    transfer.description,
    transfer.traceContext,
  ]);
  return db.any(sql.type(transferRowSchema.extend({ ordinal: z.number() }))`
    WITH input AS (
      SELECT * FROM ${sql.unnest(tuples, ['int4', 'text', 'int8', 'int8', 'numeric', 'text', 'jsonb', 'text', 'text'])}
        AS i (ordinal, fingerprint, from_wallet, to_wallet, amount, currency, labels, description, trace_context)
    ), first_of_each AS (
      SELECT DISTINCT ON (i.fingerprint) i.* FROM input i
      WHERE NOT EXISTS (SELECT 1 FROM transfers t WHERE t.fingerprint = i.fingerprint)
      ORDER BY i.fingerprint, i.ordinal
    ), fresh AS MATERIALIZED (
      -- The legs' seqs drawn in request order, so each transfer row names its debit from the start.
      SELECT f.*, gen_random_uuid() AS id, nextval(pg_get_serial_sequence('transactions', 'seq')) AS seq
      FROM (SELECT * FROM first_of_each ORDER BY ordinal) f
    ), tr AS (
      INSERT INTO transfers (id, fingerprint, from_wallet, to_wallet, amount, currency, labels, description, debit_seq)
      SELECT id, fingerprint, from_wallet, to_wallet, amount, currency, labels, description, seq FROM fresh ORDER BY ordinal
      ON CONFLICT (fingerprint) DO NOTHING
      RETURNING *
    ), reserved AS (
      INSERT INTO transactions (wallet_id, seq, amount, fingerprint, labels, description, trace_context, transfer_id)
      OVERRIDING SYSTEM VALUE
      SELECT tr.from_wallet, tr.debit_seq, -tr.amount, 'transfer:' || tr.id || ':debit', tr.labels, tr.description,
             f.trace_context, tr.id
      FROM tr JOIN fresh f USING (id)
      RETURNING *
    ), ${reservationBookkeeping}
    SELECT tr.id, tr.seq, tr.fingerprint, tr.from_wallet AS "from", tr.to_wallet AS "to",
           tr.amount::text AS amount, tr.currency, tr.labels, tr.description, 'pending' AS status, NULL AS reason,
           transaction_id(d.wallet_id, d.seq) AS "debitId", NULL AS "creditId", NULL::bigint AS "creditSeq", tr.created,
           f.ordinal
    FROM tr JOIN reserved d ON d.transfer_id = tr.id JOIN fresh f ON f.id = tr.id
  `);
}

/**
 * The id, source and state of every transfer made since migration 010 (the event audit's input):
 * older ones may lack events for good (before transfer events; a group's TransferCreated lost).
 */
export async function findTransferStatuses(
  db: CommonQueryMethods,
): Promise<readonly { id: string; from: number; status: TransferStatus }[]> {
  return db.any(sql.type(z.object({ id: z.string(), from: z.number(), status: transferStatusSchema }))`
    SELECT ${transferColumns} FROM transfers tr ${withLegs}
    WHERE tr.created >= coalesce((SELECT applied_at FROM schema_migrations WHERE name LIKE '010%'), '-infinity')
  `);
}

/** The transfers holding any of `fingerprints`. */
export async function findTransfersByFingerprints(
  db: CommonQueryMethods,
  fingerprints: readonly string[],
): Promise<readonly TransferRow[]> {
  return db.any(sql.type(transferRowSchema)`
    SELECT ${transferColumns} FROM transfers tr ${withLegs} WHERE tr.fingerprint = ANY(${sql.array(fingerprints, 'text')})
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
