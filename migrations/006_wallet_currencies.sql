-- Currencies (issue 16): each wallet has an ISO 4217 currency, fixed at creation, and the number
-- of minor units its amounts may carry (from ICU's data through Intl when the wallet is created,
-- so a later ICU change does not move the rule under an existing wallet). Wallets that exist
-- already get the deployment's DEFAULT_CURRENCY (migrate() passes it as wallet.default_currency
-- and its minor units as wallet.default_minor_units; EUR and 2 without them). They held amounts
-- with up to 2 fractional digits, so 2 stays their rule whatever their currency's own (under a JPY
-- default their cents stay spendable; under BHD they take no third digit, transfers included).
-- A constant default: adding the columns rewrites no row.
ALTER TABLE wallets
  ADD COLUMN currency text NOT NULL
    DEFAULT coalesce(nullif(current_setting('wallet.default_currency', true), ''), 'EUR')
    CHECK (currency ~ '^[A-Z]{3}$'),
  ADD COLUMN minor_units smallint NOT NULL DEFAULT 2 CHECK (minor_units BETWEEN 0 AND 3);
-- The service names both for every wallet it creates (DEFAULT_CURRENCY when the client names
-- none); for rows written by hand, the defaults become the deployment's currency at migration
-- (constants: the expressions above would read the setting at each insert).
DO $$
BEGIN
  EXECUTE format('ALTER TABLE wallets ALTER COLUMN currency SET DEFAULT %L, ALTER COLUMN minor_units SET DEFAULT %s',
    coalesce(nullif(current_setting('wallet.default_currency', true), ''), 'EUR'),
    coalesce(nullif(current_setting('wallet.default_minor_units', true), '')::smallint, 2));
END $$;

-- Money columns hold up to 3 fractional digits (BHD, KWD, ...): unconstrained NUMERIC keeps every
-- value exactly as written. Dropping a typmod is binary coercible: no row is rewritten, no index
-- rebuilt. The application bounds magnitudes and fractional digits (src/shared/ledger/money.ts).
ALTER TABLE wallets ALTER COLUMN balance TYPE numeric, ALTER COLUMN balance SET DEFAULT 0.00;
ALTER TABLE transactions
  ALTER COLUMN amount TYPE numeric,
  ALTER COLUMN oldbalance TYPE numeric,
  ALTER COLUMN newbalance TYPE numeric;
