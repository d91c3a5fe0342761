-- The same tables as migrations/sqlite, for PostgreSQL (several replicas on one database).
-- One row per code ever submitted, keyed by the keyed hash of the code (never the code itself).
-- `state` is pending (an exchange is under way until lease_until), succeeded, rejected (final
-- verdict from MondiaPay) or failed (no usable answer: the code may be tried again).
-- `attempt` counts claims; a completion only applies to the claim that made it.
CREATE TABLE exchanges (
    code_hash   TEXT PRIMARY KEY NOT NULL,
    state       TEXT NOT NULL,
    lease_until BIGINT,
    attempt     BIGINT NOT NULL,
    token_id    TEXT,
    error       TEXT,
    message     TEXT,
    http_status BIGINT,
    ref         TEXT,
    uuid        TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- `sealed` is AES-256-GCM over the access token, refresh token and unknown answer fields,
-- authenticated together with the row's id. `seq` orders rows inserted in the same second.
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY NOT NULL,
    seq         BIGINT GENERATED ALWAYS AS IDENTITY,
    sealed      BYTEA NOT NULL,
    token_type  TEXT NOT NULL,
    obtained_at BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    ref         TEXT,
    uuid        TEXT,
    code_hash   TEXT NOT NULL
);

CREATE INDEX tokens_by_ref ON tokens (ref, obtained_at);
CREATE INDEX tokens_by_uuid ON tokens (uuid, obtained_at);
CREATE INDEX tokens_by_expiry ON tokens (expires_at);
