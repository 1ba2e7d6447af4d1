-- Hold events (issue 16; docs/design.md "Hold events"). A hold's status changes (pending, then
-- active or rejected, then captured, released or expired), so its events cannot be built from it:
-- each decision writes, in the statement that makes it, an outbox row naming the holds it decided
-- by key (wallet_ids, seqs) and what it decided for each (`outcomes`), and the relay builds the
-- events from that record and the hold's columns that never change once decided. Kind
-- 'holds_decided' comes from the apply statement (active or rejected), kind 'holds_settled' from
-- the conditional update that captured, released or expired them. Every existing row is kept.
-- NOT VALID: existing rows passed the narrower check, so they pass this one; validating would scan
-- the whole outbox while every apply (each writes an outbox row) waits on the table's lock.
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check CHECK (kind IN (
  'wallet_created', 'transactions_reserved', 'transactions_decided', 'legacy', 'journal',
  'holds_decided', 'holds_settled')) NOT VALID;
-- Kinds holds_*: the outcome of each named hold, in the order of seqs. NULL for every other kind.
ALTER TABLE outbox ADD COLUMN outcomes text[];
ALTER TABLE outbox ADD CONSTRAINT outbox_hold_outcomes CHECK (
  (kind IN ('holds_decided', 'holds_settled')) = (outcomes IS NOT NULL)
  AND (outcomes IS NULL OR cardinality(outcomes) = cardinality(seqs))) NOT VALID;

-- A release made with a fingerprint keeps it, so that a replay answers the same release. Unique
-- among releases: another release with it is refused (fingerprint-reused).
ALTER TABLE holds ADD COLUMN release_fingerprint text
  CHECK (char_length(release_fingerprint) BETWEEN 1 AND 255);
CREATE UNIQUE INDEX holds_release_fingerprint ON holds (release_fingerprint) WHERE release_fingerprint IS NOT NULL;
