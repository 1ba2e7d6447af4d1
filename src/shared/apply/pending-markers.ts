import { sql, type CommonQueryMethods, type DatabasePool } from 'slonik';
import { z } from 'zod';

/**
 * The pending markers (`pending_reservations`) live in an UNLOGGED table: they cost no WAL, and
 * Postgres empties the table after a crash or on a promoted replica. The row of wallet 0 says that
 * the markers are complete; when it is missing, `ensurePendingMarkers` rebuilds every marker from
 * the transactions themselves, looking only where a pending one can be (reserved since the floor,
 * or before migration 005 while such rows were pending), and puts the sentinel back.
 */

// Two-key advisory locks: the one-key space is the wallets'. See outbox-repository.ts.
const LOCK_SPACE = 0x57_41_4c; // "WAL"
const MARKER_REBUILD_LOCK = 3;

/**
 * How far behind the oldest marker the floor stays: a reservation whose statement began earlier
 * may still commit (statements time out after 60 s), and ids come from the API hosts' clocks.
 */
const FLOOR_MARGIN = sql.fragment`interval '2 minutes'`;
const ID_CLOCK_MARGIN = sql.fragment`interval '10 minutes'`;

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
      WITH floor AS (
        SELECT f.legacy_pending, l.legacy_max_seq,
               (lpad(to_hex((extract(epoch FROM f.reserved_since - ${ID_CLOCK_MARGIN}) * 1000)::bigint), 12, '0')
                 || '70008000000000000000')::uuid AS id_floor
        FROM pending_reservations_floor f, ledger_layout l
      ), restored AS (
        INSERT INTO pending_reservations (wallet_id, first_seq, last_seq, created)
        SELECT t.wallet_id, min(t.seq), max(t.seq), min(t.created)
        FROM transactions t, floor f
        WHERE t.status = 'pending' AND (t.id >= f.id_floor OR (f.legacy_pending AND t.seq <= f.legacy_max_seq))
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
 * Moves the floor up to a little before the oldest marker (or now), never down, and only while
 * the markers are complete (otherwise they cannot say where the pending transactions are).
 * Once no transaction reserved before migration 005 is pending, a rebuild stops looking there.
 */
export async function advancePendingFloor(db: CommonQueryMethods): Promise<void> {
  await db.query(sql.unsafe`
    WITH complete AS (
      SELECT coalesce((SELECT min(created) FROM pending_reservations WHERE wallet_id > 0), now()) - ${FLOOR_MARGIN} AS since
      WHERE EXISTS (SELECT 1 FROM pending_reservations WHERE wallet_id = 0)
    )
    UPDATE pending_reservations_floor f
    SET reserved_since = greatest(f.reserved_since, c.since),
        legacy_pending = f.legacy_pending AND EXISTS (
          SELECT 1 FROM transactions t, ledger_layout l WHERE t.seq <= l.legacy_max_seq AND t.status = 'pending'
        )
    FROM complete c
    WHERE c.since > f.reserved_since OR f.legacy_pending
  `);
}

/** Reclaims the space of deleted markers (no WAL: the table is unlogged), whatever autovacuum does. */
export async function vacuumPendingMarkers(pool: DatabasePool): Promise<void> {
  await pool.query(sql.unsafe`VACUUM (SKIP_LOCKED) pending_reservations`);
}
