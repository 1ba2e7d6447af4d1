-- Transfers between wallets of one currency (issue 16; docs/design.md "Transfers"). A transfer is
-- two ordinary transactions, its legs: the debit of `from_wallet`, reserved with the transfer,
-- and the credit of `to_wallet`, reserved by the very statement that applies the debit (so a
-- credit exists exactly when its debit was applied). `debit_seq` and `credit_seq` are the legs'
-- keys in their wallets; the legs carry `transfer_id`. The transfer's state is read from its legs.
CREATE TABLE transfers (
  id          uuid        PRIMARY KEY,
  -- Listing order (a wallet's transfers, newest first).
  seq         bigint      GENERATED ALWAYS AS IDENTITY,
  fingerprint text        NOT NULL UNIQUE CHECK (char_length(fingerprint) BETWEEN 1 AND 255),
  from_wallet bigint      NOT NULL,
  to_wallet   bigint      NOT NULL CHECK (to_wallet <> from_wallet),
  amount      numeric     NOT NULL CHECK (amount >= 1),
  currency    text        NOT NULL,
  labels      jsonb       NOT NULL DEFAULT '{}'::jsonb,
  description text,
  debit_seq   bigint      NOT NULL,
  credit_seq  bigint,
  created     timestamptz NOT NULL DEFAULT now()
);
-- No foreign keys to wallets (their per-insert row lock writes WAL on the wallet rows that the
-- apply rewrites); wallets are never deleted and the reservation reads both first.
CREATE INDEX transfers_from_wallet ON transfers (from_wallet, seq);
CREATE INDEX transfers_to_wallet ON transfers (to_wallet, seq);

-- The legs. No index: a leg is found from its transfer (debit_seq, credit_seq), and an ordinary
-- transaction's row gains only a NULL here.
ALTER TABLE transactions ADD COLUMN transfer_id uuid;
