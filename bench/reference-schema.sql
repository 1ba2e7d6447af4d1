-- The synchronous design the service replaces, on the original Go service's own table design
-- (bench/sync-reference.ts; not part of the product): a wallet row, and one transaction row per
-- applied transaction with a primary key, a unique fingerprint and a unique (wallet_id, refno).
-- No events, no label index; a rejected withdrawal stores nothing.
CREATE TABLE wallets (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  external_id text           NOT NULL UNIQUE,
  labels      jsonb          NOT NULL DEFAULT '{}'::jsonb,
  balance     numeric(15, 2) NOT NULL DEFAULT 0 CHECK (balance >= 0),
  last_refno  bigint         NOT NULL DEFAULT 0,
  version     bigint         NOT NULL DEFAULT 0,
  created     timestamptz    NOT NULL DEFAULT now()
);

CREATE TABLE transactions (
  id          uuid           PRIMARY KEY DEFAULT gen_random_uuid(),
  wallet_id   bigint         NOT NULL REFERENCES wallets (id),
  refno       bigint         NOT NULL,
  amount      numeric(12, 2) NOT NULL,
  fingerprint text           NOT NULL UNIQUE,
  labels      jsonb          NOT NULL DEFAULT '{}'::jsonb,
  description text,
  created     timestamptz    NOT NULL DEFAULT now(),
  oldbalance  numeric(15, 2) NOT NULL,
  newbalance  numeric(15, 2) NOT NULL,
  UNIQUE (wallet_id, refno)
);
