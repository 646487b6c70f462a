-- Several processes on one database: PostgreSQL only (an SQLite file serves one process).
-- The columns exist here too so both schemas stay alike; they stay empty.
ALTER TABLE runs ADD COLUMN owner TEXT;
ALTER TABLE runs ADD COLUMN concurrency BIGINT;

CREATE TABLE workers (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
