-- Write each transaction once (docs/design.md "The schema, and what each write costs").
-- A transaction row is inserted pending and decided in place by one HOT update: no index holds a
-- column that the decision changes, and the pages keep room for the row's second version. A row
-- is keyed by (wallet_id, seq), and its id is computed from that key, so no index of ids is kept.
-- Pending work is found through small unlogged markers, events and listings through a write-once
-- outbox of references. Every existing row, pending transaction and unpublished event is kept.

-- Ids of transactions reserved from now on are computed from their key: a UUIDv8 (RFC 9562)
-- whose first 48 bits are the seq, then version 8 and the format 001, then the variant and the
-- wallet id in the last 62 bits. Rows reserved before keep the random id they were given.
CREATE FUNCTION transaction_id(wallet_id bigint, seq bigint) RETURNS uuid
  LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
  RETURN (lpad(to_hex(seq), 12, '0') || '8001' || lpad(to_hex((-9223372036854775807 - 1) | wallet_id), 16, '0'))::uuid;
-- The seq of a computed id (NULL for any other uuid), and its wallet.
CREATE FUNCTION transaction_id_seq(id uuid) RETURNS bigint
  LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
  RETURN CASE WHEN substr(id::text, 15, 4) = '8001' AND substr(id::text, 20, 1) IN ('8', '9', 'a', 'b')
    THEN ('x' || lpad(substr(replace(id::text, '-', ''), 1, 12), 16, '0'))::bit(64)::bigint END;
CREATE FUNCTION transaction_id_wallet(id uuid) RETURNS bigint
  LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
  RETURN CASE WHEN transaction_id_seq(id) IS NOT NULL
    THEN ('x' || substr(replace(id::text, '-', ''), 17, 16))::bit(64)::bigint & 4611686018427387903 END;

-- The key. (The reversal foreign keys named the id index; a reversal's original is checked when it
-- is requested, in the same wallet.)
ALTER TABLE transactions DROP CONSTRAINT transactions_voids_fkey;
ALTER TABLE transactions DROP CONSTRAINT transactions_voided_by_fkey;
ALTER TABLE transactions DROP CONSTRAINT transactions_pkey;
DROP INDEX transactions_by_wallet_newest;
ALTER TABLE transactions ADD CONSTRAINT transactions_pkey PRIMARY KEY (wallet_id, seq);
ALTER TABLE transactions ALTER COLUMN id DROP NOT NULL, ALTER COLUMN id DROP DEFAULT;
-- The random ids of the rows reserved until now; new rows store none (theirs is computed).
CREATE UNIQUE INDEX transactions_legacy_id ON transactions (id) WHERE id IS NOT NULL;

-- Indexes that no query needs, or whose columns or predicates the decision changes.
ALTER TABLE transactions DROP CONSTRAINT transactions_seq_key;
ALTER TABLE transactions DROP CONSTRAINT transactions_wallet_id_refno_key;
DROP INDEX transactions_pending_by_wallet;
DROP INDEX transactions_pending_by_age;
DROP INDEX transactions_one_live_void;
-- Labels are searched through the outbox rows of reservations (below): one GIN entry set per
-- reserving statement instead of one per transaction.
DROP INDEX transactions_labels;

-- The reservation checks the wallet in the same statement and wallets are never deleted, so the
-- foreign key's per-insert row lock (a WAL record each) buys nothing; the trigger keeps the rule.
ALTER TABLE transactions DROP CONSTRAINT transactions_wallet_id_fkey;
CREATE FUNCTION wallets_are_never_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'wallets are never deleted: their transactions refer to them';
END $$;
CREATE TRIGGER wallets_are_never_deleted BEFORE DELETE ON wallets
  FOR EACH STATEMENT EXECUTE FUNCTION wallets_are_never_deleted();

-- The id of any transaction, stored (reserved before this migration) or computed.
CREATE FUNCTION transaction_seq_of(id uuid) RETURNS bigint
  LANGUAGE sql STABLE PARALLEL SAFE STRICT
  RETURN coalesce(transaction_id_seq(id), (SELECT t.seq FROM transactions t WHERE t.id = transaction_seq_of.id));

-- At most one live (pending or applied) reversal per original. `void_key` is the original's id
-- while the reversal is live and NULL once it is rejected, so a rejected void does not block
-- another try; unlike `status`, it never changes when an ordinary transaction is decided.
ALTER TABLE transactions ADD COLUMN void_key uuid;
UPDATE transactions SET void_key = voids WHERE voids IS NOT NULL AND status IN ('pending', 'applied');
CREATE UNIQUE INDEX transactions_one_live_void ON transactions (void_key) WHERE void_key IS NOT NULL;

-- What a rejection was decided against, so that replay can prove it deserved: `oldbalance` is the
-- balance it saw and `after_refno` the refno of the applied transaction it followed (0 if none).
-- Rows rejected before this migration have neither: the audit counts them as unverifiable.
ALTER TABLE transactions ADD COLUMN after_refno bigint;
ALTER TABLE transactions ADD CONSTRAINT transactions_rejected_has_decision
  CHECK (status <> 'rejected' OR (after_refno IS NOT NULL AND oldbalance IS NOT NULL)) NOT VALID;

-- Half of each new page stays free for the second version of its rows (the HOT update). A wallet
-- row is rewritten by every batch that moves its balance, many of them in one statement: the
-- same room keeps those updates HOT (a non-HOT one writes an entry into each of its indexes).
ALTER TABLE transactions SET (fillfactor = 50);
ALTER TABLE wallets SET (fillfactor = 50);

-- Raised inside a statement whose own bookkeeping does not add up, so that the whole statement
-- (an autocommitted apply) rolls back.
CREATE FUNCTION wallet_assertion_failed(message text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'wallet ledger assertion failed: %', message;
END $$;

-- The oldest transaction of this database that may still be running, or, when none is, the next
-- xid: any row written later gets a later xid. pg_snapshot_xmin alone is the whole server's, so a
-- long transaction in another database would hold back every event. From the statement's own
-- snapshot, each running xid counts unless pg_stat_activity shows it held by another database's
-- backend; one that finished in between counts too (conservative). A list of backend_xid alone
-- is not enough: it is not read with the snapshot, and a relay using it lost rows under load.
CREATE FUNCTION this_database_horizon() RETURNS xid8 LANGUAGE sql STABLE AS $$
  SELECT coalesce(min(running.xid), pg_snapshot_xmax(pg_current_snapshot()))
  FROM pg_snapshot_xip(pg_current_snapshot()) AS running(xid)
  WHERE (running.xid::text::numeric % 4294967296)::text NOT IN (
    SELECT backend_xid::text FROM pg_stat_get_activity(NULL)
    WHERE backend_xid IS NOT NULL
      AND datid IS DISTINCT FROM (SELECT oid FROM pg_database WHERE datname = current_database()))
$$;

-- The outbox, written once and never updated: each row names what changed (a wallet, or the
-- transactions a statement reserved or decided, in order, by key) and the relay builds the events
-- from those rows. Its position is (xid, id): the relay publishes only rows of transactions older
-- than every running one of this database (this_database_horizon), so no row can appear behind
-- its cursor.
-- The rows of reserved transactions are kept for good: they are the journal of reservations, which
-- lists every wallet's transactions newest first and, with the distinct label sets of their
-- transactions (`labels`, a JSON array, NULL when none has labels), finds them by label through a
-- GIN index; kind 'journal' rows do the same for the transactions reserved before this migration.
CREATE TABLE outbox (
  xid              xid8        NOT NULL DEFAULT pg_current_xact_id(),
  id               bigint      GENERATED ALWAYS AS IDENTITY,
  kind             text        NOT NULL
    CHECK (kind IN ('wallet_created', 'transactions_reserved', 'transactions_decided', 'legacy', 'journal')),
  wallet_id        bigint,
  -- The transactions a row names, in order: (wallet_ids[i], seqs[i]).
  wallet_ids       bigint[],
  seqs             bigint[],
  labels           jsonb,
  -- kind 'legacy': an event of the per-event outbox this replaces, carried over as it was.
  legacy_id        bigint,
  legacy_published boolean,
  event_id         uuid,
  type             text,
  subject          text,
  data             jsonb,
  created          timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (xid, id)
);
CREATE INDEX outbox_labels ON outbox USING gin (labels jsonb_path_ops) WHERE labels IS NOT NULL;

-- How far the relay has published: the position of the last event it handed to the stream.
CREATE TABLE outbox_relay_cursor (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  xid       xid8    NOT NULL,
  id        bigint  NOT NULL,
  ordinal   integer NOT NULL
);
INSERT INTO outbox_relay_cursor (xid, id, ordinal) VALUES ('0', 0, -1);

INSERT INTO outbox (kind, legacy_id, legacy_published, event_id, wallet_id, type, subject, data, created)
SELECT 'legacy', id, published_at IS NOT NULL, event_id, wallet_id, type, subject, data, created
FROM outbox_events ORDER BY id;

-- The journal of the transactions reserved before this migration, 64 at a time in seq order.
INSERT INTO outbox (kind, wallet_ids, seqs, labels, created)
SELECT 'journal', array_agg(wallet_id ORDER BY seq), array_agg(seq ORDER BY seq),
       jsonb_agg(DISTINCT labels) FILTER (WHERE labels <> '{}'::jsonb), min(created)
FROM transactions GROUP BY seq / 64 ORDER BY seq / 64;

-- Webhook deliveries name the event by its outbox position.
CREATE TABLE webhook_event_deliveries (
  subscription_id bigint      NOT NULL REFERENCES webhook_subscriptions (id),
  event_xid       xid8        NOT NULL,
  event_row       bigint      NOT NULL,
  event_ordinal   integer     NOT NULL,
  delivered_at    timestamptz,
  attempts        integer     NOT NULL DEFAULT 0,
  last_error      text,
  PRIMARY KEY (subscription_id, event_xid, event_row, event_ordinal)
);
CREATE INDEX webhook_event_deliveries_by_event ON webhook_event_deliveries (event_xid, event_row);
CREATE INDEX webhook_event_deliveries_undelivered ON webhook_event_deliveries (subscription_id, event_xid, event_row, event_ordinal)
  WHERE delivered_at IS NULL;
INSERT INTO webhook_event_deliveries (subscription_id, event_xid, event_row, event_ordinal, delivered_at, attempts, last_error)
SELECT d.subscription_id, o.xid, o.id, 0, d.delivered_at, d.attempts, d.last_error
FROM webhook_deliveries d JOIN outbox o ON o.kind = 'legacy' AND o.legacy_id = d.event_id;

DROP TABLE webhook_deliveries;
DROP TABLE outbox_events;

-- One row per wallet per reserving statement while any of its transactions is pending: the worker
-- reads a wallet's pending transactions from its oldest marker on, and deletes a marker with the
-- decision of its last one. Markers are few (pending work only), and the sweeper scans them.
-- They are a cache of what the transactions table says, so the table is UNLOGGED: they cost no
-- WAL. After a crash (or on a promoted replica) Postgres empties it; the row of wallet 0 (a
-- sentinel that says "the markers are complete") is then gone too, and the sweeper rebuilds every
-- marker from the journal rows written since pending_reservations_floor.xid.
CREATE UNLOGGED TABLE pending_reservations (
  wallet_id  bigint      NOT NULL,
  first_seq  bigint      NOT NULL,
  last_seq   bigint      NOT NULL,
  -- The reserving database transaction.
  xid        xid8        NOT NULL DEFAULT pg_current_xact_id(),
  created    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (wallet_id, first_seq)
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);
INSERT INTO pending_reservations (wallet_id, first_seq, last_seq, created)
SELECT wallet_id, min(seq), max(seq), min(created) FROM transactions WHERE status = 'pending' GROUP BY wallet_id;
INSERT INTO pending_reservations (wallet_id, first_seq, last_seq) VALUES (0, 0, 0);

-- Every pending transaction was reserved by a database transaction whose xid is at least `xid`
-- (the sweeper keeps it at the oldest marker's, or at the oldest transaction still running): where
-- a rebuild of the markers has to look in the journal. It starts at this migration's own xid,
-- which wrote the journal of every row before.
CREATE TABLE pending_reservations_floor (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  xid       xid8    NOT NULL
);
INSERT INTO pending_reservations_floor (xid) VALUES (pg_current_xact_id());
