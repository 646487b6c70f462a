-- A run's own transitions as functions too (0008 did a step's): created, started, finished.
-- As plain statements in a commit's script they were parsed and planned afresh every time,
-- a fifth of PostgreSQL's time at 3,000 runs a second; in a function their plans are kept
-- per connection, and the calls join one `SELECT` with the steps' (and the fence).

-- A run is created with its steps: `p_steps` its step ids, `p_outputs` beside them the output
-- of each step a retry re-uses (NULL for the others). Labels and a caller are written apart.
CREATE FUNCTION flowscope_run_created(
    p_id TEXT, p_workflow TEXT, p_version BIGINT, p_trigger TEXT, p_actor TEXT, p_inputs TEXT,
    p_parent TEXT, p_traceparent TEXT, p_created BIGINT, p_concurrency BIGINT, p_owner TEXT,
    p_labels TEXT, p_steps TEXT[], p_outputs TEXT[]
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO runs (id, workflow_id, workflow_version, status, trigger, actor, inputs,
                      parent_run_id, traceparent, created_at, concurrency, owner, labels)
    VALUES (p_id, p_workflow, p_version, 'queued', p_trigger, p_actor, p_inputs, p_parent,
            p_traceparent, p_created, p_concurrency, p_owner, p_labels);
    INSERT INTO run_steps (run_id, step_id, status, output)
    SELECT p_id, s.step, CASE WHEN s.output IS NULL THEN 'pending' ELSE 'succeeded' END, s.output
    FROM unnest(p_steps, p_outputs) AS s (step, output);
END
$$;

CREATE FUNCTION flowscope_run_started(p_run TEXT, p_at BIGINT, p_trace TEXT, p_span TEXT)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE runs SET status = 'running', started_at = p_at, trace_id = p_trace, span_id = p_span
    WHERE id = p_run AND status = 'queued';
END
$$;

-- `p_outputs` is written only when given (most runs keep none); `p_search` is the text search
-- reads, once.
CREATE FUNCTION flowscope_run_finished(
    p_run TEXT, p_status TEXT, p_error TEXT, p_at BIGINT, p_outputs TEXT, p_search TEXT
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_outputs IS NULL THEN
        UPDATE runs SET status = p_status, error = p_error, finished_at = p_at,
                        started_at = COALESCE(started_at, p_at)
        WHERE id = p_run;
    ELSE
        UPDATE runs SET status = p_status, error = p_error, finished_at = p_at,
                        started_at = COALESCE(started_at, p_at), outputs = p_outputs
        WHERE id = p_run;
    END IF;
    IF p_search IS NOT NULL THEN
        INSERT INTO run_search (run_id, body) VALUES (p_run, p_search)
        ON CONFLICT (run_id) DO NOTHING;
    END IF;
END
$$;
