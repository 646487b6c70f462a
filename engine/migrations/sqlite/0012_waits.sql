-- A run that waits (an approval, an event, a long delay, a child run) holds no worker and no
-- memory: each waiting step is a row here, and the run is woken when one is resolved or due.
CREATE TABLE waits (
    run_id      TEXT NOT NULL,
    step_id     TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    kind        TEXT NOT NULL,              -- approval|event|delay|workflow
    wait_key    TEXT,                       -- the event's key; a child run's id
    detail      TEXT NOT NULL,              -- JSON: the rendered `with` (an approval's prompt, role, fields)
    created_at  BIGINT NOT NULL,
    due_at      BIGINT,                     -- a delay's end, a timeout
    resolved_at BIGINT,
    outcome     TEXT,                       -- JSON {"output": …} or {"error": {kind, message}, "output": …}
    PRIMARY KEY (run_id, step_id)
);
CREATE INDEX waits_by_key ON waits (wait_key) WHERE wait_key IS NOT NULL;

-- Events that arrived before anyone waited for them, kept for a while (FLOWSCOPE_EVENT_KEEP).
CREATE TABLE kept_events (
    event_key   TEXT NOT NULL,
    outcome     TEXT NOT NULL,              -- JSON {"output": payload}: what a wait resolves to
    received_at BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX kept_events_by_key ON kept_events (event_key, received_at);

-- A waiting run's earliest due time: the timer wakes it then.
ALTER TABLE runs ADD COLUMN wake_at BIGINT;
CREATE INDEX runs_by_wake ON runs (wake_at) WHERE wake_at IS NOT NULL;
-- Set by Pause: no new attempt starts until Resume clears it.
ALTER TABLE runs ADD COLUMN pause_requested BIGINT;
-- A child run (agent `workflow`): the run and step that wait for it.
ALTER TABLE runs ADD COLUMN caller_run_id TEXT;
ALTER TABLE runs ADD COLUMN caller_step_id TEXT;
CREATE INDEX runs_by_caller ON runs (caller_run_id) WHERE caller_run_id IS NOT NULL;
-- The run's outputs (the workflow's `outputs:`), JSON, once it succeeded.
ALTER TABLE runs ADD COLUMN outputs TEXT;
