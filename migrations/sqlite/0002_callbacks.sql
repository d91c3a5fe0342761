-- One row per handled browser callback: what the user was shown, and why. A callback that
-- carried a valid code has a replay key derived from the code's keyed hash, so a replay finds
-- its first outcome. Failed purchases have a key of their own: a forged "failed" redirect with
-- someone's code cannot block that code's genuine callback.
-- `outcome` is succeeded, purchase_failed, code_rejected (final) or unavailable (MondiaPay gave
-- no usable answer; a later callback with the same code may try again).
CREATE TABLE callbacks (
    id          TEXT PRIMARY KEY NOT NULL,
    replay_key  TEXT UNIQUE,
    outcome     TEXT NOT NULL,
    page_status INTEGER NOT NULL,
    request_id  TEXT NOT NULL,
    ref         TEXT,
    uuid        TEXT,
    status      TEXT,
    error       TEXT,
    message     TEXT,
    token_id    TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE INDEX callbacks_by_ref ON callbacks (ref, created_at);
