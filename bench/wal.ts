import type pg from 'pg';

/**
 * WAL written for one database over a window, by record type, from `pg_walinspect`. WAL is one
 * stream for the whole server, so records are attributed to the bench database by the relation
 * they touch (`rel <tablespace>/<database oid>/...` in their block references) and, for records
 * without blocks (commits), by their transaction id. A temporary physical replication slot keeps
 * the window's WAL from being recycled by a checkpoint inside it.
 */
export interface WalRecordType {
  type: string;
  count: number;
  bytes: number;
  fpiBytes: number;
}

export interface WalUsage {
  bytes: number;
  fpiBytes: number;
  records: number;
  commits: number;
  /** Index entries written: btree leaf inserts (incl. the posting lists of dedup) and GIN inserts. */
  indexEntries: number;
  heapInserts: number;
  /** Non-HOT updates: a new entry in every index of the table. */
  heapUpdates: number;
  hotUpdates: number;
  heapDeletes: number;
  rowLocks: number;
  fullPageImages: number;
  byType: WalRecordType[];
  /** Bytes by the relation of a record's first block (tables, indexes, TOAST) and record type. */
  byRelation: { relation: string; type: string; count: number; bytes: number; fpiBytes: number }[];
}

export class WalWindow {
  private constructor(
    private readonly db: pg.Client,
    private readonly startLsn: string,
    private readonly slot: string,
  ) {}

  /** Starts a window on `db`'s session (it must stay open until `end`). */
  static async begin(db: pg.Client): Promise<WalWindow> {
    await db.query('CREATE EXTENSION IF NOT EXISTS pg_walinspect');
    const slot = `bench_wal_${process.pid}_${Date.now()}`;
    await db.query('SELECT pg_create_physical_replication_slot($1, true, true)', [slot]);
    const { rows } = await db.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
    return new WalWindow(db, rows[0]!.lsn, slot);
  }

  /** Ends the window and reads the bench database's share of it. */
  async end(): Promise<WalUsage> {
    try {
      // Flush what the window wrote, so that every record of it can be read.
      await this.db.query('SELECT pg_switch_wal()');
      const end = (await this.db.query<{ lsn: string }>('SELECT pg_current_wal_flush_lsn()::text AS lsn')).rows[0]!.lsn;
      const { rows } = await this.db.query<{
        type: string;
        count: number;
        bytes: string;
        fpi_bytes: string;
        fpis: number;
      }>(
        `WITH r AS (
           SELECT xid, resource_manager || '/' || record_type AS type, record_length, fpi_length, block_ref
           FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)
         ), ours AS (
           SELECT oid::text AS oid FROM pg_database WHERE datname = current_database()
         ), mine AS (
           SELECT r.* FROM r, ours
           WHERE r.block_ref ~ ('rel \\d+/' || ours.oid || '/')
              OR (r.xid::text <> '0' AND r.xid IN (
                    SELECT DISTINCT r2.xid FROM r r2, ours o2
                    WHERE r2.xid::text <> '0' AND r2.block_ref ~ ('rel \\d+/' || o2.oid || '/')))
         )
         SELECT type, count(*)::int AS count, sum(record_length)::text AS bytes, sum(fpi_length)::text AS fpi_bytes,
                count(*) FILTER (WHERE fpi_length > 0)::int AS fpis
         FROM mine GROUP BY type ORDER BY sum(record_length) DESC`,
        [this.startLsn, end],
      );
      const byRelation = (
        await this.db.query<{ relation: string; type: string; count: number; bytes: string; fpi_bytes: string }>(
          `WITH r AS (
             SELECT resource_manager || '/' || record_type AS type, record_length, fpi_length,
                    (regexp_match(block_ref, 'rel \\d+/(\\d+)/(\\d+)'))[1] AS db,
                    (regexp_match(block_ref, 'rel \\d+/(\\d+)/(\\d+)'))[2] AS filenode
             FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)
           )
           SELECT coalesce(c.relname, 'relfilenode ' || r.filenode) AS relation, r.type, count(*)::int AS count,
                  sum(r.record_length)::text AS bytes, sum(r.fpi_length)::text AS fpi_bytes
           FROM r JOIN pg_database d ON d.oid::text = r.db AND d.datname = current_database()
           LEFT JOIN pg_class c ON c.relfilenode::text = r.filenode
           GROUP BY 1, 2 ORDER BY sum(r.record_length) DESC`,
          [this.startLsn, end],
        )
      ).rows.map((row) => ({
        relation: row.relation,
        type: row.type,
        count: row.count,
        bytes: Number(row.bytes),
        fpiBytes: Number(row.fpi_bytes),
      }));
      const byType = rows.map((row) => ({
        type: row.type,
        count: row.count,
        bytes: Number(row.bytes),
        fpiBytes: Number(row.fpi_bytes),
      }));
      const count = (...types: string[]) =>
        byType.filter((row) => types.includes(row.type)).reduce((sum, row) => sum + row.count, 0);
      return {
        bytes: byType.reduce((sum, row) => sum + row.bytes, 0),
        fpiBytes: byType.reduce((sum, row) => sum + row.fpiBytes, 0),
        records: byType.reduce((sum, row) => sum + row.count, 0),
        commits: count('Transaction/COMMIT'),
        indexEntries: count('Btree/INSERT_LEAF', 'Btree/INSERT_POST', 'Gin/INSERT', 'Gin/UPDATE_META_PAGE'),
        heapInserts: count('Heap/INSERT', 'Heap/INSERT+INIT'),
        heapUpdates: count('Heap/UPDATE', 'Heap/UPDATE+INIT'),
        hotUpdates: count('Heap/HOT_UPDATE', 'Heap/HOT_UPDATE+INIT'),
        heapDeletes: count('Heap/DELETE'),
        rowLocks: count('Heap/LOCK', 'Heap2/LOCK_UPDATED'),
        fullPageImages: rows.reduce((sum, row) => sum + row.fpis, 0),
        byType,
        byRelation,
      };
    } finally {
      await this.db.query('SELECT pg_drop_replication_slot($1)', [this.slot]).catch(() => undefined);
    }
  }
}

/** WAL per transaction: each figure of `usage` divided by `count`. */
export function perTransaction(usage: WalUsage, count: number) {
  const per = (value: number) => value / count;
  return {
    bytes: per(usage.bytes),
    fpiBytes: per(usage.fpiBytes),
    records: per(usage.records),
    commits: per(usage.commits),
    indexEntries: per(usage.indexEntries),
    heapInserts: per(usage.heapInserts),
    heapUpdates: per(usage.heapUpdates),
    hotUpdates: per(usage.hotUpdates),
    heapDeletes: per(usage.heapDeletes),
    rowLocks: per(usage.rowLocks),
  };
}
