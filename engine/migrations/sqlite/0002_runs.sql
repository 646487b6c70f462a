-- Runs, their steps and every attempt. A run is pinned to the workflow version it runs;
-- every state change is written here before the engine acts on it.
CREATE TABLE runs (
    id               TEXT PRIMARY KEY,          -- UUIDv7: time-ordered, so it is also the list cursor
    workflow_id      TEXT NOT NULL REFERENCES workflows (id),
    workflow_version BIGINT NOT NULL,
    status           TEXT NOT NULL,             -- queued|running|succeeded|failed|cancelled|timed_out
    trigger          TEXT NOT NULL,             -- manual|api|cron|webhook|retry|alert
    inputs           TEXT NOT NULL,             -- JSON object
    parent_run_id    TEXT,                      -- the run this one retries
    traceparent      TEXT,                      -- of the request that triggered it
    error            TEXT,
    cancel_requested BIGINT,                    -- set by Cancel; the executor stops the run
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT
);
CREATE INDEX runs_by_status ON runs (status, id);
CREATE INDEX runs_by_workflow ON runs (workflow_id, id);

CREATE TABLE run_steps (
    run_id        TEXT NOT NULL REFERENCES runs (id),
    step_id       TEXT NOT NULL,
    status        TEXT NOT NULL,                -- pending|running|retrying|succeeded|failed|skipped|cancelled
    attempts      BIGINT NOT NULL DEFAULT 0,
    output        TEXT,                         -- JSON of the successful attempt (reused by retry-from-failed)
    error_kind    TEXT,
    error_message TEXT,
    ready_at      BIGINT,
    started_at    BIGINT,
    finished_at   BIGINT,
    PRIMARY KEY (run_id, step_id)
);

CREATE TABLE step_attempts (
    run_id        TEXT NOT NULL,
    step_id       TEXT NOT NULL,
    attempt       BIGINT NOT NULL,
    status        TEXT NOT NULL,
    input         TEXT,                         -- rendered `with`, secrets redacted
    output        TEXT,
    error_kind    TEXT,
    error_message TEXT,
    logs          TEXT NOT NULL DEFAULT '[]',   -- JSON array of lines
    started_at    BIGINT NOT NULL,
    finished_at   BIGINT,
    PRIMARY KEY (run_id, step_id, attempt)
);
