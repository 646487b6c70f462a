-- Steps offered to other workers: PostgreSQL only. Kept alike here; stays empty.
CREATE TABLE step_offers (
    run_id      TEXT NOT NULL,
    step_id     TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    owner       TEXT NOT NULL,
    agent       TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    claimed_by  TEXT,
    claimed_at  BIGINT,
    result      TEXT,
    PRIMARY KEY (run_id, step_id)
);

ALTER TABLE step_attempts ADD COLUMN worker TEXT;
