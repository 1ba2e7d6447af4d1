import { sql, type CommonQueryMethods, type DatabasePool } from 'slonik';
import { z } from 'zod';

/**
 * The pending markers (`pending_reservations`) live in an UNLOGGED table: they cost no WAL, and
 * Postgres empties the table after a crash or on a promoted replica. The row of wallet 0 says that
 * the markers are complete; when it is missing, `ensurePendingMarkers` rebuilds every marker from
 * the journal (the outbox rows of reservations) written since the floor, the only place a pending
 * transaction can have been reserved, and puts the sentinel back.
 */

// Two-key advisory locks: the one-key space is the wallets'. See outbox-repository.ts.
const LOCK_SPACE = 0x57_41_4c; // "WAL"
const MARKER_REBUILD_LOCK = 3;

export interface MarkerCheck {
  /** The markers had been lost and were rebuilt by this call. */
  rebuilt: boolean;
  /** Markers written by the rebuild. */
  restored: number;
}

export async function ensurePendingMarkers(pool: DatabasePool): Promise<MarkerCheck> {
  if (await markersAreComplete(pool)) return { rebuilt: false, restored: 0 };
  return pool.transaction(async (tx) => {
    await tx.query(sql.unsafe`SELECT pg_advisory_xact_lock(${LOCK_SPACE}, ${MARKER_REBUILD_LOCK})`);
    // Another worker may have rebuilt them while this one waited for the lock.
    if (await markersAreComplete(tx)) return { rebuilt: false, restored: 0 };
    const restored = await tx.oneFirst(sql.type(z.object({ restored: z.number() }))`
      WITH reserved AS (
        SELECT o.xid, x.wallet_id, x.seq
        FROM outbox o CROSS JOIN LATERAL unnest(o.wallet_ids, o.seqs) AS x (wallet_id, seq)
        WHERE o.kind IN ('transactions_reserved', 'journal') AND o.xid >= (SELECT xid FROM pending_reservations_floor)
      ), restored AS (
        INSERT INTO pending_reservations (wallet_id, first_seq, last_seq, xid, created)
        SELECT t.wallet_id, min(t.seq), max(t.seq), min(r.xid), min(t.created)
        FROM reserved r JOIN transactions t USING (wallet_id, seq)
        WHERE t.status = 'pending'
        GROUP BY t.wallet_id
        ON CONFLICT DO NOTHING
        RETURNING 1
      )
      SELECT count(*)::int AS restored FROM restored
    `);
    await tx.query(sql.unsafe`
      INSERT INTO pending_reservations (wallet_id, first_seq, last_seq) VALUES (0, 0, 0) ON CONFLICT DO NOTHING
    `);
    return { rebuilt: true, restored };
  });
}

async function markersAreComplete(db: CommonQueryMethods): Promise<boolean> {
  return db.oneFirst(sql.type(z.object({ complete: z.boolean() }))`
    SELECT EXISTS (SELECT 1 FROM pending_reservations WHERE wallet_id = 0) AS complete
  `);
}

/**
 * Moves the floor up to the reserving xid of the oldest marker, or, without markers, to the oldest
 * transaction of this database still running (any later reservation gets a later xid), never down, and
 * only while the markers are complete (otherwise they cannot say where the pending transactions are).
 */
export async function advancePendingFloor(db: CommonQueryMethods): Promise<void> {
  await db.query(sql.unsafe`
    WITH complete AS (
      SELECT least(
        (SELECT min(xid) FROM pending_reservations WHERE wallet_id > 0),
        this_database_horizon()
      ) AS xid
      WHERE EXISTS (SELECT 1 FROM pending_reservations WHERE wallet_id = 0)
    )
    UPDATE pending_reservations_floor f SET xid = c.xid FROM complete c WHERE c.xid > f.xid
  `);
}

/** Reclaims the space of deleted markers (no WAL: the table is unlogged), whatever autovacuum does. */
export async function vacuumPendingMarkers(pool: DatabasePool): Promise<void> {
  await pool.query(sql.unsafe`VACUUM (SKIP_LOCKED) pending_reservations`);
}
