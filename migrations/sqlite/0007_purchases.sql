-- One row per purchase this service started (`POST /v1/purchases`). Its id travels in the
-- redirect MondiaPay sends the browser back to (`purchase=<id>`), so the callback that ends it
-- belongs to it: the token and the outcome take the purchase's `ref`, not the query's.
-- `state` is started, succeeded, purchase_failed, code_rejected, unavailable (may still succeed
-- on a later callback) or expired (no callback within purchases.ttl_secs).
-- `purchase_token` is MondiaPay's, from Prepare Purchase: notifications name it, which confirms
-- the user's uuid (`uuid_confirmed`) and gives the subscription's id.
-- `code_hash` is the keyed hash of the code that completed the purchase: a callback with another
-- code is refused. `idempotency_key` is the caller's `Idempotency-Key` (kept 24 h), claimed
-- before MondiaPay is called: the row is `preparing` (no `redirect_url` yet) until Prepare
-- Purchase answers, held until `lease_until` (the database's clock); `request_hash` is a hash of
-- the request's body, so the same key with another body is refused.
CREATE TABLE purchases (
    id                   TEXT PRIMARY KEY NOT NULL,
    ref                  TEXT,
    state                TEXT NOT NULL,
    subscription_type_id INTEGER NOT NULL,
    purchase_token       TEXT UNIQUE,
    redirect_url         TEXT,
    code_hash            TEXT,
    token_id             TEXT,
    uuid                 TEXT,
    uuid_confirmed       INTEGER NOT NULL DEFAULT 0,
    subscription_id      TEXT,
    mondiapay_error      TEXT,
    idempotency_key      TEXT UNIQUE,
    request_hash         TEXT,
    lease_until          INTEGER,
    created_at           INTEGER NOT NULL,
    expires_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);

CREATE INDEX purchases_by_ref ON purchases (ref, created_at);
CREATE INDEX purchases_started_by_expiry ON purchases (expires_at) WHERE state = 'started';
