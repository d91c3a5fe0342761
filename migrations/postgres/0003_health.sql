-- One row that readiness checks rewrite: a database that can be read but not written is not ready.
CREATE TABLE health (
    id         BIGINT PRIMARY KEY NOT NULL,
    checked_at BIGINT NOT NULL
);
