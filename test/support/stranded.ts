import { randomUUID } from 'node:crypto';
import { sql, type CommonQueryMethods } from 'slonik';
import { insertPendingTransaction } from '../../src/shared/transactions/transaction-repository.js';

/**
 * Reserves a transaction the way the API does (row, pending marker, outbox row) but enqueues no
 * job, as if the API died right after its commit, and backdates it `ageSeconds`: only the sweeper
 * can get it applied. Returns its id.
 */
export async function reserveBehindTheQueue(
  db: CommonQueryMethods,
  walletId: number,
  options: { amount?: string; fingerprint?: string; ageSeconds?: number } = {},
): Promise<string> {
  const row = await insertPendingTransaction(db, {
    walletId,
    amount: options.amount ?? '10.00',
    fingerprint: options.fingerprint ?? `stranded-${randomUUID()}`,
    labels: {},
    description: null,
  });
  if (!row) throw new Error(`could not reserve on wallet ${walletId}`);
  const age = options.ageSeconds ?? 0;
  if (age > 0) {
    await db.query(sql.unsafe`
      WITH moved AS (
        UPDATE transactions SET created = created - make_interval(secs => ${age})
        WHERE wallet_id = ${walletId} AND fingerprint = ${row.fingerprint} RETURNING wallet_id, seq
      )
      UPDATE pending_reservations m SET created = m.created - make_interval(secs => ${age})
      FROM moved WHERE m.wallet_id = moved.wallet_id AND m.first_seq <= moved.seq AND moved.seq <= m.last_seq
    `);
  }
  return row.id;
}

/** How many transactions of the database are still pending (a full scan: tests only). */
export async function countPending(db: CommonQueryMethods): Promise<number> {
  return Number(await db.oneFirst(sql.unsafe`SELECT count(*)::int AS n FROM transactions WHERE status = 'pending'`));
}
