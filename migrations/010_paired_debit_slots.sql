-- Event slots of transfer debit legs (issue 16; docs/design.md "Transfers", Events). A row of debit
-- legs reserved as a group gave each debit's TransferCreated the slot of the previous debit's
-- TransactionCreated, and the relay dropped it. Rows written from here on give each debit two
-- slots (2k - 1, 2k). Rows written before keep the positions their events were published and their
-- webhook deliveries recorded under: the relay's cursor and the delivery rows name events by
-- position. The boundary is the first xid not yet assigned when this ran (its snapshot's xmax).
CREATE TABLE outbox_slot_layout (
  one_row            boolean PRIMARY KEY DEFAULT true CHECK (one_row),
  paired_debits_from xid8    NOT NULL
);
INSERT INTO outbox_slot_layout (paired_debits_from) VALUES (pg_snapshot_xmax(pg_current_snapshot()));
