-- A child run's item, when a `for_each` step called it (its index).
ALTER TABLE runs ADD COLUMN caller_item INTEGER;
-- How a caller finds its call again (after a restart, in a retry): one child per run, step
-- and item, looked up once per call (a `for_each` of 10,000 calls must not scan them all).
CREATE INDEX runs_by_call ON runs (caller_run_id, caller_step_id, caller_item) WHERE caller_run_id IS NOT NULL;
