-- Write each transaction once (docs/design.md "The schema, and what each write costs").
-- A transaction row is inserted pending and decided in place by one HOT update: no index holds a
-- column that the decision changes, and the pages keep room for the row's second version.
-- Pending work is found through small per-reservation markers, and events through a write-once
-- outbox of references. Every existing row, pending transaction and unpublished event is kept.

-- Indexes that no query needs, or whose columns or predicates the decision changes.
-- A wallet's rows are listed and read in seq order through an ascending index: new rows land on
-- the right edge of their wallet's range, where a page split leaves the old page full.
DROP INDEX transactions_by_wallet_newest;
CREATE INDEX transactions_by_wallet ON transactions (wallet_id, seq);
ALTER TABLE transactions DROP CONSTRAINT transactions_seq_key;
ALTER TABLE transactions DROP CONSTRAINT transactions_wallet_id_refno_key;
DROP INDEX transactions_pending_by_wallet;
DROP INDEX transactions_pending_by_age;
DROP INDEX transactions_one_live_void;
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

-- Labels are searched through the outbox rows of reservations (below), one GIN entry set per
-- reserving statement instead of one per transaction.

-- From here on the service makes every id time-ordered (UUIDv7), so the primary key lists all
-- wallets' transactions newest first. Rows reserved before have random ids: they are listed by seq,
-- through an index of theirs alone (the literal bound keeps later rows out of it).
CREATE TABLE ledger_layout (
  singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  legacy_max_seq bigint  NOT NULL,
  -- Below every time-ordered id the service can make from now on (clocks a day behind included).
  id_floor       uuid    NOT NULL
);
INSERT INTO ledger_layout (legacy_max_seq, id_floor)
SELECT coalesce((SELECT max(seq) FROM transactions), 0),
       CASE WHEN EXISTS (SELECT 1 FROM transactions)
         THEN (lpad(to_hex((extract(epoch FROM now() - interval '1 day') * 1000)::bigint), 12, '0')
               || '70008000000000000000')::uuid
         ELSE '00000000-0000-0000-0000-000000000000'::uuid END;
DO $$
BEGIN
  EXECUTE format('CREATE INDEX transactions_legacy_newest ON transactions (seq) WHERE seq <= %s',
                 (SELECT legacy_max_seq FROM ledger_layout));
END $$;

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

-- Half of each new page stays free for the second version of its rows (the HOT update).
ALTER TABLE transactions SET (fillfactor = 50);

-- Raised inside a statement whose own bookkeeping does not add up, so that the whole statement
-- (an autocommitted apply) rolls back.
CREATE FUNCTION wallet_assertion_failed(message text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'wallet ledger assertion failed: %', message;
END $$;

-- One row per wallet per reserving statement while any of its transactions is pending: the worker
-- reads a wallet's pending transactions from its oldest marker on, and deletes a marker with the
-- decision of its last one. Markers are few (pending work only), and the sweeper scans them.
-- They are a cache of what the transactions table says, so the table is UNLOGGED: they cost no
-- WAL. After a crash (or on a promoted replica) Postgres empties it; the row of wallet 0 (a
-- sentinel that says "the markers are complete") is then gone too, and the sweeper rebuilds every
-- marker from the transactions reserved since pending_reservations_floor.reserved_since.
CREATE UNLOGGED TABLE pending_reservations (
  wallet_id  bigint      NOT NULL,
  first_seq  bigint      NOT NULL,
  last_seq   bigint      NOT NULL,
  created    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (wallet_id, first_seq)
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);
INSERT INTO pending_reservations (wallet_id, first_seq, last_seq, created)
SELECT wallet_id, min(seq), max(seq), min(created) FROM transactions WHERE status = 'pending' GROUP BY wallet_id;
INSERT INTO pending_reservations (wallet_id, first_seq, last_seq) VALUES (0, 0, 0);

-- Every transaction still pending was reserved at or after `reserved_since` (kept a few minutes
-- behind the oldest marker by the sweeper), or is one of the rows reserved before this migration
-- while `legacy_pending` holds: where a rebuild of the markers has to look.
CREATE TABLE pending_reservations_floor (
  singleton      boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
  reserved_since timestamptz NOT NULL,
  legacy_pending boolean     NOT NULL
);
INSERT INTO pending_reservations_floor (reserved_since, legacy_pending)
SELECT now(), EXISTS (SELECT 1 FROM transactions WHERE status = 'pending');

-- The outbox, written once and never updated: each row names what changed (a wallet, or the
-- transactions a statement reserved or decided, in order) and the relay builds the events from
-- those rows. Its position is (xid, id): the relay publishes only rows of transactions older than
-- every running one (pg_snapshot_xmin), so no row can appear behind its cursor.
-- A row of reserved transactions also carries the distinct label sets of its transactions
-- (`labels`, a JSON array, NULL when none has labels): the label search finds the rows whose array
-- holds the searched labels through a GIN index, then checks each of their transactions. Such
-- rows are kept for good; kind 'label_index' rows do the same for transactions reserved before.
CREATE TABLE outbox (
  xid              xid8        NOT NULL DEFAULT pg_current_xact_id(),
  id               bigint      GENERATED ALWAYS AS IDENTITY,
  kind             text        NOT NULL
    CHECK (kind IN ('wallet_created', 'transactions_reserved', 'transactions_decided', 'legacy', 'label_index')),
  wallet_id        bigint,
  transaction_ids  uuid[],
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

-- How far the relay has published: the position of the last event it handed to the stream.
CREATE TABLE outbox_relay_cursor (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  xid       xid8    NOT NULL,
  id        bigint  NOT NULL,
  ordinal   integer NOT NULL
);
INSERT INTO outbox_relay_cursor (xid, id, ordinal) VALUES ('0', 0, -1);

CREATE INDEX outbox_labels ON outbox USING gin (labels jsonb_path_ops) WHERE labels IS NOT NULL;

INSERT INTO outbox (kind, legacy_id, legacy_published, event_id, wallet_id, type, subject, data, created)
SELECT 'legacy', id, published_at IS NOT NULL, event_id, wallet_id, type, subject, data, created
FROM outbox_events ORDER BY id;

-- Labelled transactions reserved before this migration, 64 at a time in reservation order.
INSERT INTO outbox (kind, transaction_ids, labels, created)
SELECT 'label_index', array_agg(id ORDER BY seq), jsonb_agg(DISTINCT labels), min(created)
FROM transactions WHERE labels <> '{}'::jsonb
GROUP BY seq / 64 ORDER BY seq / 64;

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
