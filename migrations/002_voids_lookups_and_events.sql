-- Voids: a reversal transaction points at the original it voids; the original becomes 'voided'.
ALTER TABLE transactions DROP CONSTRAINT transactions_status_check;
ALTER TABLE transactions ADD CONSTRAINT transactions_status_check
  CHECK (status IN ('pending', 'applied', 'rejected', 'voided'));
-- A voided transaction keeps its refno and balances: it was applied, and its reversal undid it.
ALTER TABLE transactions DROP CONSTRAINT transactions_applied_has_refno;
ALTER TABLE transactions ADD CONSTRAINT transactions_applied_has_refno
  CHECK ((status IN ('applied', 'voided')) = (refno IS NOT NULL AND oldbalance IS NOT NULL AND newbalance IS NOT NULL));
ALTER TABLE transactions ADD COLUMN voids uuid REFERENCES transactions (id);
ALTER TABLE transactions ADD COLUMN voided_by uuid REFERENCES transactions (id);
ALTER TABLE transactions ADD CONSTRAINT transactions_voided_has_reversal CHECK ((status = 'voided') = (voided_by IS NOT NULL));
-- At most one live (pending or applied) reversal per original; a rejected one does not block another try.
CREATE UNIQUE INDEX transactions_one_live_void ON transactions (voids) WHERE voids IS NOT NULL AND status IN ('pending', 'applied');

-- Lookups and searches, newest first with keyset pagination.
CREATE INDEX transactions_by_wallet_newest ON transactions (wallet_id, seq DESC);
CREATE INDEX transactions_labels ON transactions USING gin (labels jsonb_path_ops);
CREATE INDEX wallets_labels ON wallets USING gin (labels jsonb_path_ops);

-- Transactional outbox: written in the same database transaction as the change it describes.
CREATE TABLE outbox_events (
  id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_id     uuid        NOT NULL DEFAULT gen_random_uuid() UNIQUE,
  wallet_id    bigint      NOT NULL,
  type         text        NOT NULL,
  subject      text,
  data         jsonb       NOT NULL,
  created      timestamptz NOT NULL DEFAULT now(),
  published_at timestamptz
);
CREATE INDEX outbox_events_unpublished ON outbox_events (id) WHERE published_at IS NULL;

-- Webhook subscribers and what each still has to receive, in event order.
CREATE TABLE webhook_subscriptions (
  id       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  url      text        NOT NULL,
  events   text[]      NOT NULL,
  secret   text        NOT NULL,
  active   boolean     NOT NULL DEFAULT true,
  created  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
  subscription_id bigint      NOT NULL REFERENCES webhook_subscriptions (id),
  event_id        bigint      NOT NULL REFERENCES outbox_events (id),
  delivered_at    timestamptz,
  attempts        integer     NOT NULL DEFAULT 0,
  last_error      text,
  PRIMARY KEY (subscription_id, event_id)
);
CREATE INDEX webhook_deliveries_undelivered ON webhook_deliveries (subscription_id, event_id) WHERE delivered_at IS NULL;
