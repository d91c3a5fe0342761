-- One row that readiness checks rewrite: a store that can be read but not written (disk full,
-- read-only) is not ready.
CREATE TABLE health (
    id         INTEGER PRIMARY KEY NOT NULL,
    checked_at INTEGER NOT NULL
);
