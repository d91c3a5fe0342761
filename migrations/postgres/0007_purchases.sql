-- One row per purchase this service started (see migrations/sqlite/0007_purchases.sql).
CREATE TABLE purchases (
    id                   TEXT PRIMARY KEY NOT NULL,
    ref                  TEXT,
    state                TEXT NOT NULL,
    subscription_type_id BIGINT NOT NULL,
    purchase_token       TEXT UNIQUE,
    redirect_url         TEXT,
    code_hash            TEXT,
    token_id             TEXT,
    uuid                 TEXT,
    uuid_confirmed       BOOLEAN NOT NULL DEFAULT FALSE,
    subscription_id      TEXT,
    mondiapay_error      TEXT,
    idempotency_key      TEXT UNIQUE,
    request_hash         TEXT,
    lease_until          BIGINT,
    created_at           BIGINT NOT NULL,
    expires_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    -- Insertion order, for "newest first" among purchases of the same second.
    seq                  BIGINT GENERATED ALWAYS AS IDENTITY
);

CREATE INDEX purchases_by_ref ON purchases (ref, created_at);
CREATE INDEX purchases_started_by_expiry ON purchases (expires_at) WHERE state = 'started';
