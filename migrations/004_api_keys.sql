-- API keys. Only a SHA-256 hash of each key is stored; the key itself is shown once, at creation.
CREATE TABLE api_keys (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name        text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
  -- The key's first characters ("wk_" and 8 more): not secret, lets an operator recognise a key.
  prefix      text        NOT NULL,
  key_hash    bytea       NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
  scopes      text[]      NOT NULL CHECK (cardinality(scopes) > 0),
  created     timestamptz NOT NULL DEFAULT now(),
  revoked     timestamptz
);
