-- One row per notification MondiaPay sent (`POST /mondiapay/notifications/{secret}`), once per
-- `eventUUID`: a redelivery finds its row and stores nothing. `seq` is the event feed's cursor
-- (`GET /v1/events`). AUTOINCREMENT: a purge that empties the table must not let a new event
-- take a number a consumer already passed (plain rowids restart from the highest kept).
-- SQLite has one writer, so events become visible in the order of `seq`.
-- `purchase_id` and `ref` are those of the purchase whose `purchase_token` the notification
-- named, when one did. `raw` is the body as received.
CREATE TABLE events (
    seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
    event_uuid           TEXT NOT NULL UNIQUE,
    received_at          INTEGER NOT NULL,
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
