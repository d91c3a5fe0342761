-- One row per handled browser callback (see migrations/sqlite/0002_callbacks.sql).
CREATE TABLE callbacks (
    id          TEXT PRIMARY KEY NOT NULL,
    seq         BIGINT GENERATED ALWAYS AS IDENTITY,
    replay_key  TEXT UNIQUE,
    outcome     TEXT NOT NULL,
    page_status BIGINT NOT NULL,
    request_id  TEXT NOT NULL,
    ref         TEXT,
    uuid        TEXT,
    status      TEXT,
    error       TEXT,
    message     TEXT,
    token_id    TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE INDEX callbacks_by_ref ON callbacks (ref, created_at);
