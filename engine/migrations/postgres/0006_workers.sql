-- Several processes on one database (see engine/src/executor/cluster.rs).
--
-- A run is driven by the worker that claimed it (`owner`); the claim lasts while that
-- worker's heartbeat is fresh. Unclaimed runs have no owner.
ALTER TABLE runs ADD COLUMN owner TEXT;
-- The workflow's `concurrency` when the run was created: claims keep to it across processes.
ALTER TABLE runs ADD COLUMN concurrency BIGINT;
-- Only unfinished runs are ever claimed: a small index however long the history.
CREATE INDEX runs_unfinished_by_owner ON runs (owner, id) WHERE status IN ('queued', 'running');

CREATE TABLE workers (
    id           TEXT PRIMARY KEY,              -- a new UUID per process life (and per rejoin)
    name         TEXT NOT NULL,                 -- host:pid, or FLOWSCOPE_WORKER_NAME
    kind         TEXT NOT NULL,                 -- serve|worker
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL                -- the database's clock, unix ms
);

-- The fence of every state change a worker commits: the runs it writes must still be its own,
-- locked against a concurrent takeover until the commit ends. A worker whose lease expired
-- and whose runs were taken over gets error FS001 and writes nothing.
CREATE FUNCTION flowscope_fence(me TEXT, ids TEXT[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM (SELECT owner FROM runs WHERE id = ANY(ids) ORDER BY id FOR SHARE) r
        WHERE r.owner IS DISTINCT FROM me
    ) THEN
        RAISE EXCEPTION 'flowscope: these runs are no longer claimed by worker %', me
            USING ERRCODE = 'FS001';
    END IF;
END
$$;

-- Claims of runs with a concurrency limit count their workflow's claimed unfinished runs.
CREATE INDEX runs_unfinished_limited ON runs (workflow_id) WHERE status IN ('queued', 'running') AND concurrency IS NOT NULL;
