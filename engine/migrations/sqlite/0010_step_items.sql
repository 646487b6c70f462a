-- The items of `for_each` steps, each written once it has ended (after its retries): a run
-- resumed after a crash starts only the items not here.
CREATE TABLE step_items (
    run_id        TEXT NOT NULL,
    step_id       TEXT NOT NULL,
    item          BIGINT NOT NULL,              -- position in the list, from 0
    status        TEXT NOT NULL,                -- succeeded|failed
    attempts      BIGINT NOT NULL,
    input         TEXT,                         -- rendered `with` of the last attempt, secrets redacted
    output        TEXT,
    error_kind    TEXT,
    error_message TEXT,
    started_at    BIGINT NOT NULL,
    finished_at   BIGINT NOT NULL,
    PRIMARY KEY (run_id, step_id, item)
);
