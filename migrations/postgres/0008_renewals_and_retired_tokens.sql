-- The same as migrations/sqlite/0008_renewals_and_retired_tokens.sql, for PostgreSQL.
-- A token MondiaPay refused (401 TOKEN_NOT_FOUND, TOKEN_CONTEXT_IS_NOT_VALID) is retired: kept
-- until it expires and is purged, but never served again by any lookup.
ALTER TABLE tokens ADD COLUMN retired_at BIGINT;

-- One row per MondiaPay user (uuid) whose token this service renewed with
-- grant_type=user_credentials: the claim that makes it one renewal per user at a time, also
-- across replicas. `state` is pending (a renewal is under way until lease_until), succeeded
-- (`token_id` is the token it stored, or the live one it found), refused (MondiaPay's verdict on
-- the uuid: `error`, `http_status`) or failed (no usable answer, or the merchant's credentials
-- refused when `error` is set). `attempt` counts claims: a completion only applies to the claim
-- that made it, and a request that saw attempt n take its outcome from attempt n + 1.
CREATE TABLE renewals (
    uuid        TEXT PRIMARY KEY NOT NULL,
    state       TEXT NOT NULL,
    lease_until BIGINT,
    attempt     BIGINT NOT NULL,
    token_id    TEXT,
    error       TEXT,
    http_status BIGINT,
    updated_at  BIGINT NOT NULL
);
