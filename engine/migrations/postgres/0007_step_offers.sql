-- Steps offered to other workers (see engine/src/executor/offers.rs).
--
-- A run's owner offers a ready step it has no free step slot for. Any worker claims an offer
-- (`FOR UPDATE SKIP LOCKED`), runs the agent, and writes the result here; the owner records
-- the outcome in the run's own rows (fenced as always) and deletes the offer in that commit.
-- The owner may withdraw an offer nobody has claimed yet, once it has a slot itself.
CREATE TABLE step_offers (
    run_id      TEXT NOT NULL,
    step_id     TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    owner       TEXT NOT NULL,                  -- the worker that offered it (the run's owner)
    agent       TEXT NOT NULL,                  -- claimers take only agents they have enabled
    payload     TEXT NOT NULL,                  -- JSON: rendered `with`, data, timeout, traceparent
    created_at  BIGINT NOT NULL,
    claimed_by  TEXT,                           -- a worker id; reset when its lease expires
    claimed_at  BIGINT,
    result      TEXT,                           -- JSON, written once by the claimer
    PRIMARY KEY (run_id, step_id)
);
CREATE INDEX step_offers_open ON step_offers (created_at) WHERE claimed_by IS NULL;
CREATE INDEX step_offers_claimed ON step_offers (claimed_by) WHERE claimed_by IS NOT NULL AND result IS NULL;

-- The worker (its name) that ran an attempt.
ALTER TABLE step_attempts ADD COLUMN worker TEXT;
