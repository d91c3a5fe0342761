-- One row per notification MondiaPay sent (see migrations/sqlite/0009_events.sql). Inserts are
-- serialised by a transaction-scoped advisory lock (src/store/events.rs), so a `seq` becomes
-- visible only after every smaller one: the feed's cursor never passes an event still to come.
CREATE TABLE events (
    seq                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_uuid           TEXT NOT NULL UNIQUE,
    received_at          BIGINT NOT NULL,
    event                TEXT NOT NULL,
    reason               TEXT,
    status               TEXT,
    sub_state            TEXT,
    uuid                 TEXT,
    subscription_id      TEXT,
    subscription_type_id TEXT,
    event_time           TEXT,
    purchase_token       TEXT,
    purchase_id          TEXT,
    ref                  TEXT,
    raw                  TEXT NOT NULL
);

CREATE INDEX events_by_received ON events (received_at);
