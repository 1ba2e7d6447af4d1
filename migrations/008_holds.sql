-- Holds (two-phase; issue 16, docs/design.md "Holds"). A hold reserves part of a wallet's balance:
-- its `available` is balance minus `held`, the sum of its live holds, kept on the wallet row by the
-- apply statement (a column no index holds, so the wallet's update stays HOT, and an ordinary
-- transaction writes nothing more). A hold is decided through the wallet's queue like a pending
-- transaction (its seq is drawn from the transactions' sequence, so both are decided in one order);
-- capture, release and expiry each flip an active hold once (a conditional update), and the apply
-- statement then takes its amount out of `held`: a capture with its debit (an ordinary transaction
-- that names the hold in `hold_id`), a release or an expiry on its own (`held_released`).
ALTER TABLE wallets ADD COLUMN held numeric NOT NULL DEFAULT 0 CHECK (held >= 0);

CREATE TABLE holds (
  id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  wallet_id       bigint      NOT NULL,
  -- Drawn from the transactions' sequence: the order in which the wallet's queue decides it.
  seq             bigint      NOT NULL,
  fingerprint     text        NOT NULL UNIQUE CHECK (char_length(fingerprint) BETWEEN 1 AND 255),
  amount          numeric     NOT NULL CHECK (amount > 0),
  status          text        NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'active', 'rejected', 'captured', 'released', 'expired')),
  reason          text,
  labels          jsonb       NOT NULL DEFAULT '{}'::jsonb,
  description     text,
  expires_at      timestamptz NOT NULL,
  -- The available balance a decision saw.
  seen_available  numeric,
  -- A capture: its debit (transactions (wallet_id, capture_seq)) and the amount it takes.
  capture_seq     bigint,
  captured_amount numeric CHECK (captured_amount > 0 AND captured_amount <= amount),
  -- True once the wallet's `held` no longer counts this hold (it is decided active until then).
  held_released   boolean     NOT NULL DEFAULT false,
  created         timestamptz NOT NULL DEFAULT now(),
  decided         timestamptz,
  settled         timestamptz,
  CHECK ((status = 'captured') = (capture_seq IS NOT NULL))
);
CREATE INDEX holds_by_wallet ON holds (wallet_id, seq);
-- What a wallet's apply must still do about its holds: decide a new one, or take a released or
-- expired one out of `held`. Few rows at any time.
CREATE INDEX holds_to_apply ON holds (wallet_id, seq)
  WHERE status = 'pending' OR (status IN ('released', 'expired') AND NOT held_released);
-- Active holds by expiry, for the sweeper.
CREATE INDEX holds_expiring ON holds (expires_at) WHERE status = 'active';

-- The debit that captures a hold. No index: found from its hold; an ordinary row gains a NULL.
ALTER TABLE transactions ADD COLUMN hold_id uuid;

-- What a rejection saw of the wallet's holds: a debit is decided against balance minus held, so
-- replay (the audit's rejection-deserved) needs both. Set on rejected rows decided from now on
-- (by the decision's HOT update; no index holds it), NULL everywhere else.
ALTER TABLE transactions ADD COLUMN seen_held numeric;
