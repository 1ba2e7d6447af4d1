-- Wallets and their transactions. Money is NUMERIC; a balance can never go below zero.
CREATE TABLE wallets (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  external_id text        NOT NULL UNIQUE CHECK (char_length(external_id) BETWEEN 1 AND 255),
  labels      jsonb       NOT NULL DEFAULT '{}'::jsonb,
  balance     numeric(15, 2) NOT NULL DEFAULT 0 CHECK (balance >= 0),
  last_refno  bigint      NOT NULL DEFAULT 0,
  -- Optimistic concurrency: every balance change bumps it; a writer that finds another version lost.
  version     bigint      NOT NULL DEFAULT 0,
  created     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE transactions (
  id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  wallet_id   bigint      NOT NULL REFERENCES wallets (id),
  -- Reservation order: the worker applies a wallet's pending transactions by this.
  seq         bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
  amount      numeric(12, 2) NOT NULL CHECK (amount <= -1 OR amount >= 1),
  fingerprint text        NOT NULL UNIQUE CHECK (char_length(fingerprint) BETWEEN 1 AND 255),
  labels      jsonb       NOT NULL DEFAULT '{}'::jsonb,
  description text,
  status      text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'applied', 'rejected')),
  reason      text,
  refno       bigint,
  oldbalance  numeric(15, 2),
  newbalance  numeric(15, 2),
  created     timestamptz NOT NULL DEFAULT now(),
  finalized   timestamptz,
  UNIQUE (wallet_id, refno),
  CONSTRAINT transactions_applied_has_refno
    CHECK ((status = 'applied') = (refno IS NOT NULL AND oldbalance IS NOT NULL AND newbalance IS NOT NULL)),
  CONSTRAINT transactions_rejected_has_reason CHECK ((status = 'rejected') = (reason IS NOT NULL))
);

-- What the worker reads: a wallet's pending transactions in reservation order; and the sweeper's scan.
CREATE INDEX transactions_pending_by_wallet ON transactions (wallet_id, seq) WHERE status = 'pending';
CREATE INDEX transactions_pending_by_age ON transactions (created) WHERE status = 'pending';
