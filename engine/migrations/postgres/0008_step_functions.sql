-- A step's two transitions as functions, so their statements run on plans PostgreSQL keeps
-- per connection instead of being parsed and planned again in every commit. On the hot path
-- (a chain step: finish one attempt, start the next) that planning was about a third of the
-- commit's time. Values are computed by the engine; these only write them.

-- The fence (see 0006), one indexed lookup per run on a kept plan. The caller passes the ids
-- sorted, so every worker locks runs in the same order. A run that does not exist passes, as
-- before: a batch may create it.
CREATE OR REPLACE FUNCTION flowscope_fence(me TEXT, ids TEXT[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    rid TEXT;
    holder TEXT;
BEGIN
    FOREACH rid IN ARRAY ids LOOP
        SELECT owner INTO holder FROM runs WHERE id = rid FOR SHARE;
        IF FOUND AND holder IS DISTINCT FROM me THEN
            RAISE EXCEPTION 'flowscope: these runs are no longer claimed by worker %', me
                USING ERRCODE = 'FS001';
        END IF;
    END LOOP;
END
$$;

-- An attempt starts: the step is running, and the attempt row is written. A resumed attempt
-- first closes the attempts a stopped process left running, and may re-insert a number that
-- process had started. Without a worker name (a lone process) the row keeps the one it had.
CREATE FUNCTION flowscope_attempt_started(
    p_run TEXT, p_step TEXT, p_attempt BIGINT, p_ready_at BIGINT, p_at BIGINT, p_input TEXT,
    p_span_id TEXT, p_agent TEXT, p_worker TEXT, p_resumed BOOLEAN
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_resumed THEN
        UPDATE step_attempts SET status = 'failed', error_kind = 'interrupted',
            error_message = 'the process running this attempt stopped', finished_at = p_at
        WHERE run_id = p_run AND step_id = p_step AND attempt < p_attempt AND status = 'running';
    END IF;
    UPDATE run_steps SET status = 'running', attempts = p_attempt, ready_at = COALESCE(ready_at, p_ready_at),
        started_at = COALESCE(started_at, p_at), error_kind = NULL, error_message = NULL
    WHERE run_id = p_run AND step_id = p_step;
    INSERT INTO step_attempts (run_id, step_id, attempt, status, input, started_at, span_id, agent, worker)
    VALUES (p_run, p_step, p_attempt, 'running', p_input, p_at, p_span_id, p_agent, p_worker)
    ON CONFLICT (run_id, step_id, attempt) DO UPDATE SET status = 'running', input = excluded.input,
        started_at = excluded.started_at, span_id = excluded.span_id,
        worker = COALESCE(excluded.worker, step_attempts.worker);
END
$$;

-- An attempt ends: its row, and the step's (`p_step_status` may be `retrying`, which leaves
-- the step unfinished: `p_finished_at` is then NULL).
CREATE FUNCTION flowscope_attempt_finished(
    p_run TEXT, p_step TEXT, p_attempt BIGINT, p_attempt_status TEXT, p_step_status TEXT,
    p_output TEXT, p_error_kind TEXT, p_error_message TEXT, p_logs TEXT, p_at BIGINT,
    p_finished_at BIGINT
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE step_attempts SET status = p_attempt_status, output = p_output, error_kind = p_error_kind,
        error_message = p_error_message, logs = p_logs, finished_at = p_at
    WHERE run_id = p_run AND step_id = p_step AND attempt = p_attempt;
    UPDATE run_steps SET status = p_step_status, output = p_output, error_kind = p_error_kind,
        error_message = p_error_message, finished_at = p_finished_at
    WHERE run_id = p_run AND step_id = p_step;
END
$$;
